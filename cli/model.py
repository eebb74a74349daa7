"""`colorize model …`: convert, describe and check diffusion model folders."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from colorize_cli.common import errors_to_exit

from colorize.errors import OutputError, UsageError

app = typer.Typer(
    help="Diffusion model folders: convert official checkpoints, describe, check parity.\n\n"
    "Example: `colorize model convert v2-full.safetensors --out /models/colorize-v2`",
    no_args_is_help=True,
)

_DTYPES = {"keep": None, "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _dtype(name: str):
    import torch

    if name not in _DTYPES:
        raise UsageError(f"--dtype {name!r}: choose one of {', '.join(_DTYPES)}")
    return getattr(torch, _DTYPES[name]) if _DTYPES[name] else None


@app.command()
def convert(
    src: Path = typer.Argument(
        ..., help="Official checkpoint (v2-full.safetensors, original LDM key layout)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to create."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Official config (v2.yaml, or a parity fixture's config.json). Default: released v2.",
    ),
    clip: Path | None = typer.Option(
        None, "--clip", help="Local transformers folder of the CLIP ViT-H/14 vision model to include."
    ),
    dtype: str = typer.Option("keep", "--dtype", help="Store tensors as keep|fp32|fp16|bf16."),
) -> None:
    """Convert an official checkpoint into a model folder (offline; every key is checked).

    Example: `colorize model convert models/v2-full.safetensors --out models/v2 --clip models/clip-vit-h`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.config import ModelConfig, load_official_config
        from colorize.engines.diffusion.convert import convert_checkpoint
        from colorize.engines.diffusion.model_folder import save_model_folder
        from colorize.engines.diffusion.reference import ClipReferenceEncoder

        model_config = load_official_config(config) if config else ModelConfig.v2()
        encoder = ClipReferenceEncoder.from_folder(clip, model_config.clip) if clip else None
        if encoder is not None:
            width = encoder.model.config.projection_dim
            if width != model_config.unet.context_dim:
                from colorize.errors import ModelError

                raise ModelError(
                    f"{clip}: CLIP projection_dim {width} != the UNet's context_dim {model_config.unet.context_dim}"
                )
        start = time.perf_counter()
        model = convert_checkpoint(src, model_config, dtype=_dtype(dtype))
        model.clip = encoder
        save_model_folder(model, out, source=src.name)
        typer.echo(f"converted {src} -> {out} in {time.perf_counter() - start:.1f} s")


@app.command()
def info(folder: Path = typer.Argument(..., help="Model folder.")) -> None:
    """Describe a model folder (sizes, parameter counts, dtypes, CLIP).

    Example: `colorize model info models/v2`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.model_folder import describe_model_folder

        for line in describe_model_folder(folder):
            typer.echo(line)


@app.command()
def parity(
    fixture: Path = typer.Argument(
        ..., help="Parity fixture folder (config.json, keys.json, make_weights.py, …)."
    ),
) -> None:
    """Check the port against a fixture of official outputs; exit 0 only if every tensor is within 1e-4.

    Builds the model from the fixture's config.json and keys.json, regenerates the weights with its
    make_weights.py, converts them with the real converter and prints each tensor's relative error.

    Example: `colorize model parity ../shared/parity`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.parity import TOLERANCE, run_parity

        start = time.perf_counter()
        rows = run_parity(fixture, log=lambda message: typer.echo(f"# {message}"))
        typer.echo(f"{'tensor':<20} {'shape':<20} {'rel. error':>11}  result")
        for row in rows:
            error = "missing" if row.rel_error is None else f"{row.rel_error:.3e}"
            typer.echo(f"{row.name:<20} {str(list(row.shape)):<20} {error:>11}  {'ok' if row.ok else 'FAIL'}")
        failed = [r.name for r in rows if not r.ok]
        took = time.perf_counter() - start
        if failed:
            typer.echo(
                f"colorize: error: parity failed for {len(failed)} of {len(rows)} tensors (tolerance {TOLERANCE:g}): "
                f"{', '.join(failed[:5])}",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"parity ok: {len(rows)} tensors within {TOLERANCE:g} ({took:.1f} s)")


@app.command("init-random", no_args_is_help=True)
def init_random(
    folder: Path = typer.Argument(..., help="Model folder to create."),
    size: str = typer.Option("tiny", "--size", help="tiny (CPU tests, ~9 MB) or full (released v2 sizes)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
    clip: bool = typer.Option(True, "--clip/--no-clip", help="Include a random CLIP vision model."),
    force: bool = typer.Option(False, "--force", help="Replace a model folder that is already there."),
) -> None:
    """Write a random-weight model folder in the same format as `convert` (for tests and benchmarks).

    A random model runs at the speed of a real one of the same size.

    Example: `colorize model init-random /tmp/tiny-model --size tiny`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.model_folder import INDEX, random_model, save_model_folder

        if size not in ("tiny", "full"):
            raise UsageError(f"--size {size!r}: choose tiny or full")
        if (folder / INDEX).exists():
            if not force:
                raise OutputError(f"{folder}: already holds a model folder; pass --force to replace it")
            _remove_model_folder(folder)
        model = random_model(size, seed=seed, with_clip=clip)
        save_model_folder(model, folder, source=f"random ({size}, seed {seed})")
        typer.echo(f"wrote random {size} model to {folder}")


def _remove_model_folder(folder: Path) -> None:
    """Delete only what a model folder holds (never other files the user keeps there)."""
    import shutil

    from colorize.engines.diffusion.model_folder import INDEX
    from colorize.engines.diffusion.modeling import COMPONENTS

    for name in (*COMPONENTS, "scheduler", "clip"):
        shutil.rmtree(folder / name, ignore_errors=True)
    (folder / INDEX).unlink(missing_ok=True)
