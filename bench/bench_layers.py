"""Colour model and layers on real line art: pbc0242 as keyframe and a moved + rotated copy.

    python bench/bench_layers.py [--realdata ../shared/realdata] [--work DIR] [--shift 40,12] [--angle 3]

Builds a two-frame shot (frame 1: pbc0242's line art with its finished frame as keyframe; frame 2: the
drawing panned and turned), extracts a palette from the keyframe (`colorize palette extract`), runs
`colorize shot` with all three layers and a `.tga` output, then prints:

- `line` over `paint` against the output: the largest channel difference (in 1/255);
- painted pixels of `paint` that are not `palette[index]`, and index-0 pixels where paint is not transparent
  (and the other way round);
- region ids on the moved frame: the share of pbc0242's regions (seg.png, moved like the drawing, pixels
  under the moved lines left out) whose index-layer id (majority) is the palette id of their colour in
  gt.png (moved alike);
- `check` with one keyframe colour dropped from the palette: its exit code and line;
- a chunked run (`--frames 1`, `--frames 2`) against the whole run, file by file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from colorize import images
from colorize.colormodel import load_palette
from colorize.evaluate_cases import moved, moved_lineart
from colorize.metrics import region_ids

MANIFEST = """version: 1
lineart: line/f.####.png
keyframes: keys/f.####.png
output: out/f.####.tga
palette: show.palette.yaml
layers: {index: layers/index/f.####.png, paint: layers/paint/f.####.png, line: layers/line/f.####.png}
"""


def colorize(*args: str | Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("colorize")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)


def over(line: np.ndarray, paint: np.ndarray) -> np.ndarray:
    """Straight-alpha `line` over straight-alpha `paint` (float, 0-255), as a compositor does."""
    la, pa = line[..., 3:4] / 255.0, paint[..., 3:4] / 255.0
    out_a = la + pa * (1 - la)
    rgb = (line[..., :3] * la + paint[..., :3] * pa * (1 - la)) / np.maximum(out_a, 1e-9)
    return np.dstack([np.where(out_a > 0, rgb, 0), out_a * 255])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--realdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata"
    )
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--shift", default="40,12")
    parser.add_argument("--angle", type=float, default=3.0)
    args = parser.parse_args()
    pbc = args.realdata / "pbc0242"
    if not pbc.is_dir():
        sys.exit(f"{pbc} not found")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-layers-"))
    shot = work / "shot"
    shutil.rmtree(shot, ignore_errors=True)
    (shot / "line").mkdir(parents=True)
    (shot / "keys").mkdir()
    shift = tuple(float(v) for v in args.shift.split(","))
    line, gt = images.read_rgba(pbc / "line.png"), images.read_rgba(pbc / "gt.png")
    line2 = moved_lineart(line, shift, args.angle)
    images.write_image(shot / "line" / "f.0001.png", line)
    images.write_image(shot / "line" / "f.0002.png", line2)
    images.write_image(shot / "keys" / "f.0001.png", gt)
    (shot / "refs.yaml").write_text(MANIFEST)
    got = colorize("palette", "extract", shot / "keys" / "f.0001.png", "--out", shot / "show.palette.yaml")
    print(got.stdout.strip() or got.stderr.strip())
    run = colorize("shot", shot, "--quiet")
    print(f"shot: exit {run.returncode} {run.stderr.strip()}")
    palette = load_palette(shot / "show.palette.yaml")
    worst, off_palette, index_mismatch = 0.0, 0, 0
    for f in (1, 2):
        out = np.asarray(Image.open(shot / "out" / f"f.{f:04d}.tga").convert("RGBA")).astype(np.float64)
        paint = images.read_rgba(shot / "layers" / "paint" / f"f.{f:04d}.png")
        lines = images.read_rgba(shot / "layers" / "line" / f"f.{f:04d}.png")
        index = np.asarray(Image.open(shot / "layers" / "index" / f"f.{f:04d}.png"))
        comp = over(lines.astype(np.float64), paint.astype(np.float64))
        visible = (comp[..., 3] > 0) | (out[..., 3] > 0)
        diff = np.abs(np.round(comp) - out)[visible]
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
        painted = paint[..., 3] > 0
        lut = {int(i): palette.rgba[k] for k, i in enumerate(palette.ids)}
        known = np.isin(index, palette.ids)
        expect = np.zeros_like(paint)
        for i, rgba in lut.items():
            expect[index == i] = rgba
        off_palette += int((painted & (~known | (expect != paint).any(-1))).sum())
        index_mismatch += int(((index == 0) != ~painted).sum())
        print(f"frame {f}: index {index.dtype} {index.shape}, ids {sorted(np.unique(index).tolist())[:6]}...")
    print(f"line over paint vs output: max difference {worst:.0f}/255")
    print(
        f"painted pixels of paint not palette[index]: {off_palette}; index 0 != transparent: {index_mismatch}"
    )
    # Region ids on the moved frame.
    seg2 = moved(region_ids(images.read_rgba(pbc / "seg.png")).astype(np.float32), shift, args.angle).astype(
        np.int64
    )
    gt2 = moved(gt, shift, args.angle)
    seg2[line2[..., 3] > 0] = 0
    index2 = np.asarray(Image.open(shot / "layers" / "index" / "f.0002.png")).astype(np.int64)
    truth_id = palette.index(gt2).astype(np.int64)
    right = total = 0
    for r in np.unique(seg2[seg2 > 0]):
        mine = seg2 == r
        want = np.bincount(truth_id[mine]).argmax()
        total += 1
        right += int(np.bincount(index2[mine]).argmax() == want)
    print(f"region ids right on the moved frame: {right}/{total} = {right / max(total, 1):.4f}")
    # A colour dropped from the palette.
    text = (shot / "show.palette.yaml").read_text().splitlines()
    entry = next(i for i, t in enumerate(text) if t.strip().startswith("- {id: 2,"))
    dropped = text.pop(entry)
    (shot / "show.palette.yaml").write_text("\n".join(text) + "\n")
    check = colorize("check", shot)
    print(f"check without {dropped.strip()}: exit {check.returncode}: {check.stderr.strip()[:400]}")
    (shot / "show.palette.yaml").write_text("\n".join(text[:entry] + [dropped] + text[entry:]) + "\n")
    # Chunks equal the whole run, for every file.
    whole = {
        p.relative_to(shot): p.read_bytes()
        for p in sorted(shot.rglob("f.000*"))
        if not str(p.relative_to(shot)).startswith("line/")
    }
    outputs = [p for p in whole if str(p).startswith(("out", "layers"))]
    for p in outputs:
        (shot / p).unlink()
    for chunk in ("1", "2"):
        colorize("shot", shot, "--frames", chunk, "--quiet")
    same = sum((shot / p).read_bytes() == whole[p] for p in outputs)
    print(f"chunked run equals the whole run: {same}/{len(outputs)} files")
    status = colorize("status", shot)
    print("status: " + " | ".join(status.stdout.split("\n")[1:3]))


if __name__ == "__main__":
    main()
