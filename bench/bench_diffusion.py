"""Diffusion-engine benchmarks on CPU with a tiny random model (a real model's speed is the same shape).

    python bench/bench_diffusion.py [--frames 8] [--steps 4] [--batches 1,2,4] [--rss 20,200]

Prints, for a shot of the sample's 384×256 line art (frames cycled from samples/shot001):
(a) overhead: wall time per frame of `colorize.runner.run_shot` (reader/writer threads, masks, sketch
    normalisation, scheduler, cel finish off) against the time spent inside the model's UNet
    (`predict_v`), sketch encoder and VAE calls, per batch size; frames/s per batch size;
(b) peak RSS of `colorize shot` in a fresh process for a short and a long shot (--rss), 1 step, to show
    memory does not grow with shot length.
GPU figures are out of scope here (no GPU in this task). Everything lives in a temporary folder.
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


def write_preset(folder: Path, steps: int, guided: bool) -> Path:
    path = folder / f"bench-{steps}-{int(guided)}.yaml"
    scales = (
        "  ref_scale: 3.0\n  sketch_scale: 1.5\n" if guided else "  ref_scale: 1.0\n  sketch_scale: 1.0\n"
    )
    path.write_text(f"description: bench\ntemporal: none\ndiffusion:\n  steps: {steps}\n{scales}")
    return path


def overhead(shot: Path, model: Path, preset: Path, frames: int, batch: int) -> dict[str, float]:
    from colorize.engines.diffusion.engine import DiffusionEngine
    from colorize.events import Events
    from colorize.runner import run_shot
    from colorize.shot import plan_shot, validate_plan

    out = shot.parent / f"out-b{batch}"
    plan = plan_shot(
        shot / "refs.yaml",
        frames=f"1001-{1000 + frames}",
        out_dir=out,
        preset=str(preset),
        overrides={"engine": "diffusion", "model": str(model), "batch": batch},
    )
    size = validate_plan(plan, deep=False)
    engine = DiffusionEngine(plan.settings)
    inside = {"model": 0.0}
    for name in (
        "predict_v",
        "encode_sketch",
        "encode_image",
        "decode_latent",
        "reference_tokens",
        "background_features",
        "style_vectors",
    ):
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
    return {"wall": wall, "model": inside["model"], "per_frame": wall / frames, "fps": frames / wall}


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--rss", default="20,200", help="shot lengths for peak RSS ('' to skip)")
    args = parser.parse_args()

    from colorize.engines.diffusion.model_folder import random_model

    with tempfile.TemporaryDirectory(prefix="colorize-bench-") as tmp:
        tmp_path = Path(tmp)
        model = random_model("tiny", seed=0).save_pretrained(tmp_path / "model")
        lengths = [int(n) for n in args.rss.split(",") if n]
        shot = make_shot(tmp_path, max([args.frames, *lengths]))
        guided = write_preset(tmp_path, args.steps, guided=True)
        print(
            f"tiny model, {args.frames} frames 384x256, {args.steps} steps, ref+sketch guidance (3 branches)"
        )
        print(f"{'batch':>5} {'s/frame':>8} {'frames/s':>9} {'in model':>9} {'overhead':>9}")
        for batch in (int(b) for b in args.batches.split(",")):
            r = overhead(shot, model, guided, args.frames, batch)
            share = 1 - r["model"] / r["wall"]
            print(f"{batch:>5} {r['per_frame']:>8.3f} {r['fps']:>9.2f} {r['model']:>8.2f}s {share:>8.1%}")
        if lengths:
            plain = write_preset(tmp_path, 1, guided=False)
            for n in lengths:
                print(
                    f"peak RSS, {n:>4}-frame shot (1 step, batch 4, subprocess): {peak_rss(shot, model, plain, n):.0f} MiB"
                )


if __name__ == "__main__":
    main()
