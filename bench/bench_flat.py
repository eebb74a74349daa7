"""Flat-engine shot throughput on a generated 1080p shot, next to plain PNG read + write of the same frames.

    python bench/bench_flat.py [--frames 100] [--size 1080x1920] [--batch 4] [--cli] [--profile N] [--layers]
                               [--default-malloc]

Prints frames/s of
(a) IO only: `colorize.images.read_rgba` each line-art PNG and `colorize.images.write_image` it as an RGB
    PNG, one thread, one frame after the other (measured before and after (b), the mean is the baseline:
    the machine's load drifts);
(b) the flat engine shot as a user runs it: `colorize.runner.run_shot` (reader thread -> engine batches
    -> writer thread), keyframe at frame 0, every other frame propagated; with --cli the `colorize shot`
    console script in a subprocess instead (adds interpreter start-up and imports);
and the ratio (b)/(a). `--layers`: the shot also writes all three layers (index, paint, line PNGs) with a
palette extracted from its keyframe (the IO baseline stays one PNG per frame: the ratio shows their cost). `--profile N` instead runs cProfile over the engine alone for N frames.
The process keeps freed memory as the `colorize` command does (`colorize.allocator`); `--default-malloc`
leaves glibc's allocator as it is.
Everything happens in a temporary folder; nothing is kept.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synth import make_frame  # tests/synth.py: generated cel drawings

from colorize import colormodel, images
from colorize.allocator import keep_freed_memory
from colorize.engines.base import EngineBase, FrameInput
from colorize.engines.flat import FlatEngine
from colorize.events import Events
from colorize.runner import run_shot, shot_context
from colorize.shot import plan_shot

MANIFEST = """version: 1
lineart: line/b.####.png
output: {output}/b.####.png
keyframes: keys/b.####.png
engine: flat
preset: default
seed: 0
"""


LAYERS = """palette: palette.yaml
layers: {index: layers/i.####.png, paint: layers/p.####.png, line: layers/l.####.png}
"""


def _make_shot(root: Path, frames: int, h: int, w: int, layers: bool = False) -> None:
    (root / "line").mkdir()
    (root / "keys").mkdir()
    for f in range(frames):
        # A character drifting and turning slightly, like a slow pan; 40 speckle dots, a few line gaps.
        fr = make_frame(h, w, shift=(1.5 * f, 0.5 * f), angle=0.1 * f, dots=40, gaps=6, seed=0)
        cv2.imwrite(str(root / "line" / f"b.{f:04d}.png"), cv2.cvtColor(fr.lineart, cv2.COLOR_RGBA2BGRA))
        if f == 0:
            images.write_image(root / "keys" / "b.0000.png", fr.color)
    (root / "refs.yaml").write_text(MANIFEST.format(output="out_flat") + (LAYERS if layers else ""))
    if layers:
        key = images.read_rgba(root / "keys" / "b.0000.png")
        text = colormodel.palette_yaml(colormodel.extract([key]), ["b.0000.png"])
        (root / "palette.yaml").write_text(text)


def _io_only(root: Path, frames: int) -> float:
    out = root / "out_io"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for f in range(frames):
        rgba = images.read_rgba(root / "line" / f"b.{f:04d}.png")
        images.write_image(out / f"b.{f:04d}.png", np.ascontiguousarray(rgba[..., :3]))
    return time.perf_counter() - t0


class _TimedEngine(EngineBase):
    """FlatEngine with the time spent inside colorize() summed up (the main thread's share)."""

    def __init__(self, engine: FlatEngine):
        super().__init__()
        self.engine = engine
        self.name = engine.name
        self.native_depth = engine.native_depth
        self.notes = engine.notes
        self.seconds = 0.0

    def close(self) -> None:
        self.engine.close()

    def prepare(self, shot) -> None:
        self.engine.prepare(shot)

    def preprocess(self, frame_input):
        return self.engine.preprocess(frame_input)  # in the runner's reader threads, as for the bare engine

    def colorize(self, batch):
        t0 = time.perf_counter()
        try:
            return self.engine.colorize(batch)
        finally:
            self.seconds += time.perf_counter() - t0


def _runner_shot(root: Path, batch: int) -> tuple[float, float, int]:
    plan = plan_shot(root / "refs.yaml", overrides={"batch": batch})
    engine = _TimedEngine(FlatEngine(plan.settings))
    stream = io.StringIO()
    h, w = images.image_size(plan.lineart_paths[plan.frames[0]])
    t0 = time.perf_counter()
    summary = run_shot(plan, engine, Events(json_stream=stream), size=(h, w), overwrite=True)
    seconds = time.perf_counter() - t0
    if summary.failed or summary.done != len(plan.selected):
        raise SystemExit(f"run failed: {summary}")
    unresolved = sum(
        r.get("unresolved", 0)
        for r in map(json.loads, stream.getvalue().splitlines())
        if r["event"] == "frame_done"
    )
    return seconds, engine.seconds, unresolved


def _cli_shot(root: Path, batch: int) -> float:
    exe = Path(sys.executable).with_name("colorize")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from colorize_cli.app import main; main()"]
    t0 = time.perf_counter()
    subprocess.run(
        [*cmd, "shot", str(root), "--overwrite", "--quiet", "--batch", str(batch)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def _profile(root: Path, frames: int) -> None:
    plan = plan_shot(root / "refs.yaml")
    h, w = images.image_size(plan.lineart_paths[plan.frames[0]])
    engine = FlatEngine(plan.settings)
    engine.prepare(shot_context(plan, (h, w)))
    inputs = [
        FrameInput(
            f,
            images.read_rgba(plan.lineart_paths[f]),
            {},
            images.read_rgb(plan.keyframe_paths[f]) if f in plan.keyframe_paths else None,
        )
        for f in plan.frames[:frames]
    ]
    engine.colorize(inputs[:1])  # keyframe: once per chain start, not per frame
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    engine.colorize(inputs[1:])
    prof.disable()
    n = max(1, len(inputs) - 1)
    print(f"engine: {1000 * (time.perf_counter() - t0) / n:.1f} ms/frame over {n} propagated frames")
    pstats.Stats(prof).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="1080x1920", help="HxW")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--cli", action="store_true", help="run the shot through the `colorize shot` subprocess")
    ap.add_argument("--layers", action="store_true", help="also write index, paint and line layers")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the engine over N frames")
    ap.add_argument(
        "--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's choice)"
    )
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's allocator as it is (the `colorize` command keeps freed memory: colorize.allocator)",
    )
    args = ap.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    tuned = False if args.default_malloc else keep_freed_memory()
    print(f"allocator: {'freed memory kept (as the colorize command does)' if tuned else 'default'}")
    h, w = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="bench_flat_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        n = args.profile or args.frames
        _make_shot(root, n, h, w, args.layers)
        print(
            f"generated {n} frames {h}x{w} in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f}"
        )
        if args.profile:
            _profile(root, n)
            return
        io1 = _io_only(root, n)
        engine_s, unresolved = float("nan"), -1
        if args.cli:
            flat_s = _cli_shot(root, args.batch)
        else:
            flat_s, engine_s, unresolved = _runner_shot(root, args.batch)
        io2 = _io_only(root, n)
        io_s = (io1 + io2) / 2
        load = os.getloadavg()[0]

    how = "`colorize shot` subprocess" if args.cli else "run_shot"
    print(
        f"IO only (read_rgba + write_image): {n / io_s:6.2f} frames/s ({1000 * io_s / n:.1f} ms/frame; "
        f"before {1000 * io1 / n:.1f}, after {1000 * io2 / n:.1f})"
    )
    how += " with index, paint and line layers" if args.layers else ""
    print(f"flat engine shot ({how}):   {n / flat_s:6.2f} frames/s ({1000 * flat_s / n:.1f} ms/frame)")
    if not args.cli:
        print(f"  of which engine (main thread):  {1000 * engine_s / n:.1f} ms/frame")
    tail = "" if args.cli else f"   unresolved regions total: {unresolved}"
    print(f"ratio flat / IO: {io_s / flat_s:.2f}   (target >= 0.60){tail}")
    print(f"OpenCV threads: {cv2.getNumThreads()}, CPUs: {os.cpu_count()}, load average now {load:.2f}")


if __name__ == "__main__":
    main()
