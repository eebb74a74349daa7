"""`colorize model …`: convert, describe and check diffusion model folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer
from colorize_cli.common import errors_to_exit

from colorize.errors import OutputError

if TYPE_CHECKING:
    import torch

app = typer.Typer(
    help="Diffusion model folders: convert official checkpoints, describe, check parity.\n\n"
    "Example: `colorize model convert v2-full.safetensors --out /models/colorize-v2`",
    no_args_is_help=True,
)

StoreDtype = Literal["keep", "fp32", "fp16", "bf16"]
_DTYPES = {"keep": None, "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _dtype(name: StoreDtype) -> torch.dtype | None:
    import torch

    torch_name = _DTYPES[name]
    return getattr(torch, torch_name) if torch_name else None


@app.command()
def convert(
    src: Path = typer.Argument(
        ..., help="Official checkpoint (v2-full.safetensors, original LDM key layout; .ckpt/.pt read safely)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to create."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Official config (v2.yaml, or a parity fixture's config.json). Default: released v2.",
    ),
    clip: Path | None = typer.Option(
        None,
        "--clip",
        help="CLIP ViT-H/14 to include: the OpenCLIP file (open_clip_pytorch_model.bin or .safetensors) or a "
        "local transformers folder (CLIPVisionModelWithProjection).",
    ),
    dtype: StoreDtype = typer.Option("keep", "--dtype", help="Store tensors as keep|fp32|fp16|bf16."),
) -> None:
    """Convert an official checkpoint into a model folder (offline; every key is checked).

    Example: `colorize model convert v2-full.safetensors --clip open_clip_pytorch_model.bin --out models/v2`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.config import ModelConfig, load_official_config
        from colorize.engines.diffusion.convert import convert_checkpoint
        from colorize.engines.diffusion.reference import load_clip
        from colorize.errors import ModelError

        model_config = load_official_config(config) if config else ModelConfig.v2()
        if (out / "model_index.json").exists():
            raise OutputError(f"{out}: already holds a model folder; choose another --out")
        start = time.perf_counter()
        encoder = load_clip(clip) if clip else None
        context_dim = model_config.unet["context_dim"]
        if encoder is not None and encoder.config.projection_dim != context_dim:
            raise ModelError(
                f"{clip}: CLIP projection_dim {encoder.config.projection_dim} != the UNet's context_dim {context_dim} "
                "(ColorizeDiffusion v2 needs ViT-H/14)"
            )
        model, notes = convert_checkpoint(src, model_config, dtype=_dtype(dtype))
        model.register_modules(clip=encoder)
        model.save(out, source=src.name)
        for note in notes:
            typer.echo(f"note: {src}: {note}", err=True)
        typer.echo(f"converted {src} -> {out} in {time.perf_counter() - start:.1f} s")


@app.command()
def info(folder: Path = typer.Argument(..., help="Model folder.")) -> None:
    """Describe a model folder (sizes, parameter counts, dtypes, scheduler, CLIP).

    Example: `colorize model info models/v2`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.model_folder import describe_model_folder

        for line in describe_model_folder(folder):
            typer.echo(line)


@app.command()
def parity(
    fixture: Path = typer.Argument(
        ..., help="Parity fixture folder: module (../shared/parity) or end-to-end."
    ),
) -> None:
    """Check the port against a fixture of official outputs and print each tensor's worst relative error.

    A module fixture passes when every tensor is within 1e-4; an end-to-end fixture (whole sampling runs,
    driven through the engine's own functions) when every final latent is within its tolerance, the other
    tensors showing where a mismatch starts. The weights come from the fixture's make_weights.py, through
    the real converter.

    Example: `colorize model parity ../shared/parity-e2e`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.parity import run_parity

        start = time.perf_counter()
        report = run_parity(fixture, log=lambda message: typer.echo(f"# {message}"))
        typer.echo(f"{'tensor':<24} {'shape':<22} {'rel. error':>11}  result")
        for row in report.rows:
            error = "missing" if row.rel_error is None else f"{row.rel_error:.3e}"
            verdict = {(True, True): "ok", (True, False): "FAIL", (False, False): "above tolerance"}.get(
                (row.decisive, row.ok), ""
            )
            if row.worst_step is not None:
                verdict = f"{verdict} (worst at step {row.worst_step})".strip()
            typer.echo(f"{row.name:<24} {str(list(row.shape)):<22} {error:>11}  {verdict}".rstrip())
        decisive = [r for r in report.rows if r.decisive]
        took = time.perf_counter() - start
        what = "final latents" if report.kind == "end-to-end" else "tensors"
        if report.failed:
            names = ", ".join(r.name for r in report.failed[:5])
            typer.echo(
                f"colorize: error: {fixture}: {report.kind} parity failed for {len(report.failed)} of "
                f"{len(decisive)} {what} (tolerance {decisive[0].tolerance:g}): {names}",
                err=True,
            )
            raise typer.Exit(1)
        worst = max(r.rel_error or 0.0 for r in decisive)
        typer.echo(
            f"parity ok ({report.kind}): {len(decisive)} {what} within {decisive[0].tolerance:g}, "
            f"worst {worst:.2e} ({took:.1f} s)"
        )


@app.command("init-random", no_args_is_help=True)
def init_random(
    folder: Path = typer.Argument(..., help="Model folder to create."),
    size: Literal["tiny", "full"] = typer.Option(
        "tiny", "--size", help="tiny (CPU tests, ~9 MB) or full (released v2 sizes)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights."),
    clip: bool = typer.Option(True, "--clip/--no-clip", help="Include a random CLIP vision model."),
    force: bool = typer.Option(False, "--force", help="Replace a model folder that is already there."),
) -> None:
    """Write a random-weight model folder in the same format as `convert` (for tests and benchmarks).

    A random model runs at the speed of a real one of the same size.

    Example: `colorize model init-random /tmp/tiny-model --size tiny`
    """
    with errors_to_exit():
        from colorize.engines.diffusion.model_folder import INDEX, random_model, remove_model_folder

        if (folder / INDEX).exists():
            if not force:
                raise OutputError(f"{folder}: already holds a model folder; pass --force to replace it")
            remove_model_folder(folder)
        model = random_model(size, seed=seed, with_clip=clip)
        model.save(folder, source=f"random ({size}, seed {seed})")
        typer.echo(f"wrote random {size} model to {folder}")
