"""Output writing: PNG encode + atomic write of 1080p frames, by compression level and writer threads.

Prints frames/s and MiB per frame for `output_compression` 0/1/3/6/9 with 1 writer and with the runner's
pool (`colorize.runner.WRITERS` threads), on a flat-color frame (flat engine) and on a noisy one (diffusion
engine output has no large uniform areas). Pixels are identical at every level (checked).

    python bench/bench_write.py [--frames 16] [--size 1080x1920]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from colorize import images
from colorize.runner import WRITERS


def frames(h: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    flat = np.zeros((h, w, 3), np.uint8)
    for _ in range(60):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(h // 36, h // 4))
        cv2.circle(flat, (x, y), r, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        cv2.circle(flat, (x, y), r, (0, 0, 0), 3, lineType=cv2.LINE_AA)
    noisy = np.clip(flat.astype(np.int16) + rng.integers(-3, 4, flat.shape), 0, 255).astype(np.uint8)
    return {"flat": flat, "noisy": noisy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="1080x1920", help="HxW")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for kind, image in frames(h, w).items():
            for level in (0, 1, 3, 6, 9):
                for threads in sorted({1, WRITERS}):
                    paths = [out / f"{kind}.{level}.{i:04d}.png" for i in range(args.frames)]
                    start = time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(
                            pool.map(
                                lambda p, i=image, c=level: images.write_image(p, i, compression=c), paths
                            )
                        )
                    seconds = time.perf_counter() - start
                    size = np.mean([p.stat().st_size for p in paths]) / 2**20
                    assert np.array_equal(cv2.imread(str(paths[0]))[..., ::-1], image)
                    print(
                        f"{kind:5s} level {level}  {threads} writer(s): {args.frames / seconds:6.1f} frames/s "
                        f"({1000 * seconds / args.frames:6.1f} ms/frame), {size:5.2f} MiB/frame"
                    )
                    for p in paths:
                        p.unlink()


if __name__ == "__main__":
    main()
