"""Flat-engine throughput on a generated 1080p shot, next to plain PNG read + write of the same frames.

    python bench/bench_flat.py [--frames 100] [--size 1080x1920] [--batch 4]

Prints frames/s of (a) IO only: read each line-art PNG, write it as an RGB PNG; (b) the flat engine shot:
read line art, colorize (keyframe at frame 0, the rest propagated), write the result PNG; and the ratio.
Everything happens in a temporary folder; nothing is kept.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from colorize.engines.base import FrameInput, ShotContext
from colorize.engines.flat import FlatEngine
from colorize.regions.synth import make_frame
from colorize.settings import Settings


def _read_rgba(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="1080x1920", help="HxW")
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="bench_flat_") as tmp:
        root = Path(tmp)
        (root / "line").mkdir()
        (root / "out_io").mkdir()
        (root / "out_flat").mkdir()
        t0 = time.perf_counter()
        key = None
        for f in range(args.frames):
            # A character drifting and turning slightly, like a slow pan; 40 speckle dots, a few line gaps.
            fr = make_frame(h, w, shift=(1.5 * f, 0.5 * f), angle=0.1 * f, dots=40, gaps=6, seed=0)
            cv2.imwrite(str(root / "line" / f"{f:04d}.png"), cv2.cvtColor(fr.lineart, cv2.COLOR_RGBA2BGRA))
            if f == 0:
                key = fr.color
        print(f"generated {args.frames} frames {h}x{w} in {time.perf_counter() - t0:.1f} s")
        paths = [root / "line" / f"{f:04d}.png" for f in range(args.frames)]

        t0 = time.perf_counter()
        for f, p in enumerate(paths):
            rgba = _read_rgba(p)
            _write_rgb(root / "out_io" / f"{f:04d}.png", np.ascontiguousarray(rgba[..., :3]))
        io_s = time.perf_counter() - t0

        settings = Settings()
        shot = ShotContext(
            frames=tuple(range(args.frames)),
            keyframes=(0,),
            size=(h, w),
            characters=(),
            background=None,
            settings=settings,
            load_lineart=lambda f: _read_rgba(paths[f]),
            load_keyframe=lambda f: key,
            load_masks=lambda f: {},
        )
        engine = FlatEngine(settings)
        t0 = time.perf_counter()
        engine.prepare(shot)
        engine_s = 0.0
        unresolved = 0
        for start in range(0, args.frames, args.batch):
            batch = [
                FrameInput(f, _read_rgba(paths[f]), {}, key if f == 0 else None)
                for f in range(start, min(args.frames, start + args.batch))
            ]
            te = time.perf_counter()
            results = engine.colorize(batch)
            engine_s += time.perf_counter() - te
            for r in results:
                unresolved += r.info["unresolved"]
                _write_rgb(root / "out_flat" / f"{r.frame:04d}.png", r.image)
        flat_s = time.perf_counter() - t0

    n = args.frames
    print(f"IO only (PNG read + write):      {n / io_s:6.2f} frames/s ({1000 * io_s / n:.1f} ms/frame)")
    print(f"flat engine shot (read+run+write): {n / flat_s:6.2f} frames/s ({1000 * flat_s / n:.1f} ms/frame)")
    print(f"  of which engine:               {1000 * engine_s / n:.1f} ms/frame")
    print(f"ratio flat / IO: {io_s / flat_s:.2f}   (target >= 0.60)   unresolved regions total: {unresolved}")
    print(f"OpenCV threads: {cv2.getNumThreads()}")


if __name__ == "__main__":
    main()
