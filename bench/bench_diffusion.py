"""Diffusion-engine benchmarks on CPU with a tiny random model (a real model's speed is the same shape).

    python bench/bench_diffusion.py [--frames 16] [--steps 4] [--batches 4] [--temporals none,warp]
                                    [--anchor-every 4] [--resolution 128] [--repeat 3] [--rss 20,200]

Prints, for a shot of the sample's 384×256 line art (frames cycled from samples/shot001, two characters
with masks, a background reference, a keyframe at the first frame), per temporal mode and batch size:
wall time per frame of `colorize.runner.run_shot` (the real stream: reader threads with the engine's
preprocessing, the engine, writer threads; the model loaded beforehand), frames/s, the share of the time
spent outside the model's calls (UNet, sketch encoder, VAE, reference encoders), the UNet batches run and
their padding slots; then the ratio of each mode's time per frame to `temporal: none` at the same batch.
The best of `--repeat` runs is shown (the machine may be shared: the best run is the one least disturbed),
runs of the modes alternating. (b) with --rss: peak RSS of `colorize shot` in a fresh process for a short
and a long shot, 1 step, to show memory does not grow with shot length.

The issue-12 figure: `python bench/bench_diffusion.py --frames 16 --batches 4 --anchor-every 4` (warp must
cost at most 1.5× none per frame). GPU figures: bench/bench_gpu.py. Everything lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "shot001"
MODEL_CALLS = (
    "predict_v",
    "encode_sketch",
    "encode_image",
    "decode_latent",
    "reference_tokens",
    "background_features",
    "style_vectors",
)


def make_shot(folder: Path, frames: int) -> Path:
    """A shot of `frames` frames cycling the sample's line art and masks, with its references."""
    shot = folder / f"shot{frames}"
    for sub in ("lineart", "masks/hero", "masks/cat"):
        (shot / sub).mkdir(parents=True)
    shutil.copytree(SAMPLE / "refs", shot / "refs")
    shutil.copytree(SAMPLE / "keys", shot / "keys")
    sources = sorted((SAMPLE / "lineart").glob("*.png"))
    for i in range(frames):
        src = sources[i % len(sources)]
        name = f"sh001.{1001 + i:04d}.png"
        shutil.copy(src, shot / "lineart" / name)
        for c in ("hero", "cat"):
            shutil.copy(SAMPLE / "masks" / c / src.name, shot / "masks" / c / name)
    (shot / "refs.yaml").write_text((SAMPLE / "refs.yaml").read_text())
    return shot


def write_preset(
    folder: Path, steps: int, guided: bool, resolution: int = 128, anchor_every: int = 8
) -> Path:
    path = folder / f"bench-{steps}-{int(guided)}-{resolution}-{anchor_every}.yaml"
    scales = (
        "  ref_scale: 3.0\n  sketch_scale: 1.5\n" if guided else "  ref_scale: 1.0\n  sketch_scale: 1.0\n"
    )
    path.write_text(
        f"description: bench\ntemporal: none\ndiffusion:\n  steps: {steps}\n  resolution: {resolution}\n"
        f"  warp_anchor_every: {anchor_every}\n{scales}"
    )
    return path


def timed_run(
    shot: Path, model: Path, preset: Path, frames: int, batch: int, temporal: str
) -> dict[str, float]:
    """One run of the real stream with an engine loaded beforehand; times and UNet batch counts."""
    from colorize.engines.diffusion.engine import DiffusionEngine
    from colorize.events import Events
    from colorize.runner import run_shot
    from colorize.shot import plan_shot
    from colorize.validate import validate_plan

    out = shot.parent / f"out-{temporal}-b{batch}"
    plan = plan_shot(
        shot / "refs.yaml",
        frames=f"1001-{1000 + frames}",
        out_dir=out,
        preset=str(preset),
        overrides={"engine": "diffusion", "model": str(model), "batch": batch, "temporal": temporal},
    )
    size = validate_plan(plan, deep=False)
    engine = DiffusionEngine(plan.settings)
    inside = {"model": 0.0}
    for name in MODEL_CALLS:
        original = getattr(engine.model, name)

        def timed(*args, _f=original, **kwargs):
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                inside["model"] += time.perf_counter() - start

        setattr(engine.model, name, timed)
    start = time.perf_counter()
    summary = run_shot(plan, engine, Events(), size=size, overwrite=True)
    wall = time.perf_counter() - start
    assert summary.done == frames, summary
    shutil.rmtree(out)
    counts = engine.counts
    return {
        "wall": wall,
        "model": inside["model"],
        "per_frame": wall / frames,
        "fps": frames / wall,
        "unet_batches": counts["unet_batches"],
        "padding": counts["padding"],
    }


def peak_rss(shot: Path, model: Path, preset: Path, frames: int) -> float:
    """Peak RSS (MiB) of a `colorize shot` run in a fresh process."""
    code = (
        "import resource, sys\n"
        "from colorize_cli.app import main\n"
        f"sys.argv = ['colorize', 'shot', {str(shot)!r}, '--engine', 'diffusion', '--model', {str(model)!r},"
        f" '--preset', {str(preset)!r}, '--batch', '4', '--quiet', '--overwrite', '--frames', '1001-{1000 + frames}']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batches", default="4")
    parser.add_argument("--temporals", default="none,warp")
    parser.add_argument("--anchor-every", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (the best is shown)")
    parser.add_argument("--rss", default="", help="shot lengths for peak RSS, e.g. 20,200 ('' to skip)")
    args = parser.parse_args(argv)

    from colorize.engines.diffusion.model_folder import random_model

    with tempfile.TemporaryDirectory(prefix="colorize-bench-") as tmp:
        tmp_path = Path(tmp)
        model = random_model("tiny", seed=0).save(tmp_path / "model")
        lengths = [int(n) for n in args.rss.split(",") if n]
        shot = make_shot(tmp_path, max([args.frames, *lengths]))
        guided = write_preset(tmp_path, args.steps, True, args.resolution, args.anchor_every)
        temporals = args.temporals.split(",")
        batches = [int(b) for b in args.batches.split(",")]
        print(
            f"tiny model, {args.frames} frames 384x256 at resolution {args.resolution}, {args.steps} steps, "
            f"ref+sketch guidance (3 branches), warp anchors every {args.anchor_every}, best of {args.repeat}"
        )
        best: dict[tuple[str, int], dict[str, float]] = {}
        for _ in range(args.repeat):
            for batch in batches:
                for temporal in temporals:
                    r = timed_run(shot, model, guided, args.frames, batch, temporal)
                    key = (temporal, batch)
                    if key not in best or r["wall"] < best[key]["wall"]:
                        best[key] = r
        print(
            f"{'temporal':>8} {'batch':>5} {'s/frame':>8} {'frames/s':>9} {'outside model':>14} "
            f"{'UNet batches':>13} {'padding':>8} {'vs none':>8}"
        )
        for batch in batches:
            for temporal in temporals:
                r = best[(temporal, batch)]
                share = 1 - r["model"] / r["wall"]
                base = best.get(("none", batch))
                ratio = f"{r['per_frame'] / base['per_frame']:.2f}x" if base else "-"
                print(
                    f"{temporal:>8} {batch:>5} {r['per_frame']:>8.3f} {r['fps']:>9.2f} {share:>13.1%} "
                    f"{r['unet_batches']:>13} {r['padding']:>8} {ratio:>8}"
                )
        if lengths:
            plain = write_preset(tmp_path, 1, False, args.resolution, args.anchor_every)
            for n in lengths:
                print(
                    f"peak RSS, {n:>4}-frame shot (1 step, batch 4, subprocess): {peak_rss(shot, model, plain, n):.0f} MiB"
                )


if __name__ == "__main__":
    main()
