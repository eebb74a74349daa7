#!/usr/bin/env python3
"""Peak memory of `colorize shot` (flat engine) vs shot length: it must not grow with the frame count.

    python bench/bench_memory.py [--frames 20 200] [--engine flat]

Builds shots of N frames by cycling the bundled sample's 24 drawings (one keyframe at the first frame),
runs the real CLI in a subprocess for each, and prints peak RSS and frames/s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "shot001"


def make_shot(root: Path, n: int) -> Path:
    shot = root / f"shot{n}"
    for sub in ("lineart", "masks/hero", "masks/cat", "keys"):
        (shot / sub).mkdir(parents=True)
    shutil.copytree(SAMPLE / "refs", shot / "refs")
    shutil.copy(SAMPLE / "refs.yaml", shot / "refs.yaml")
    shutil.copy(SAMPLE / "keys" / "sh001.1001.png", shot / "keys" / "sh001.1001.png")
    for i in range(n):
        src = 1001 + i % 24
        dst = 1001 + i
        for sub in ("lineart", "masks/hero", "masks/cat"):
            (shot / sub / f"sh001.{dst}.png").symlink_to(SAMPLE / sub / f"sh001.{src}.png")
    return shot


def run(shot: Path, engine: str) -> tuple[float, float]:
    exe = Path(sys.executable).with_name("colorize")
    start = time.perf_counter()
    subprocess.run([str(exe), "shot", str(shot), "--engine", engine, "--quiet"], check=True)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children run so far
    return peak_kib / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--engine", default="flat")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'frames':>7} {'peak RSS MiB':>13} {'seconds':>8} {'frames/s':>9}")
        for n in sorted(args.frames):  # ascending: ru_maxrss is a running maximum over children
            shot = make_shot(Path(tmp), n)
            rss, seconds = run(shot, args.engine)
            print(f"{n:>7} {rss:>13.1f} {seconds:>8.2f} {n / seconds:>9.2f}")


if __name__ == "__main__":
    main()
