"""Write the flat engine's evaluation set: case folders for `colorize eval set`.

    python bench/make_eval_set.py OUT_DIR [--realdata ../shared/realdata] [--size 360x640]

Every case is a shot folder (line art, keyframes, refs.yaml) with its answers (finished ground-truth
frames, region id maps); see `colorize.evaluate`. Nothing here is third-party data: the synthetic cases are
generated drawings (tests/synth.py), the real-data cases are transforms of the frames in --realdata
(read in place, written only into OUT_DIR; skipped when the folder is absent).

Synthetic cases (generated cel drawings, --size):
  syn_move_rotate   moves of 6 % of the frame width and 3 degrees per frame, there and back
  syn_cycle_hold    a 4-drawing cycle on twos (holds), three times; the later cycles re-drawn 1-2 px off
  syn_occlusion     a cat walking in front of a post (character masks given)
  syn_new_parts     ornaments appearing one by one while the drawing moves; keyframes first and last
  syn_shaded        a painted (shaded, textured) keyframe, the drawing moving
  syn_rgba          lines in alpha, keyframe with a transparent background (a production cel)
Real-data cases (transforms of --realdata):
  pbc_move          pbc0242 panned 40 px and turned 3 degrees per frame
  pbc_cycle         pbc0242 on a cycle of four positions, three times (exact repeats)
  pbc_palette       pbc_move's first four frames with a palette of the keyframe's colours and the index
                    layer: palette ids scored per region (`palette ids` column)
  pbc_nearest       pbc_move's path with nearest-neighbour resampled line art (1-2 px line gaps, steps; default settings)
  pbc_gaps          pbc_move's path with 300 gaps of 1-3 px cut into the lines of every moved frame
  pbc_bend          synthetic non-rigid motion: one part of pbc0242 (around the left of the middle) pushed up
                    to 35 px against its neighbours by a smooth local displacement, and back
  pbc_reference     pbc0242 with no keyframe, its finished frame given as the character's reference:
                    the colors are palette guesses, so what counts is that they are flagged
  lg_pan            laughing_girl frame 0 moved 80 px and turned 3 degrees per frame, there and back
  lg_nearest        lg_pan's path with nearest-neighbour resampled line art (as pbc_nearest)
  lg_gaps           lg_pan's path with 300 gaps of 1-3 px cut into the lines of every moved frame (as pbc_gaps)
  lg_pingpong_shake laughing_girl's four drawings ping-pong under a camera shake; truth on drawing 0
  lg_pingpong       the four drawings ping-pong (0 1 2 3 2 1 ...) for 96 frames from one keyframe;
                    truth only for the keyframe, so it checks the repeats (byte-identical, 0 unresolved)
  lg_trace          the four drawings from the finished frame 0: colour-trace lines (the keyframe's frame
                    equals the finished frame; trace pixels of frames 1-3 on their role's side)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synth import (  # noqa: E402  tests/synth.py: generated cel drawings
    alpha_lines,
    finished,
    make_frame,
    make_overlap_frame,
    region_map,
    shaded,
    shading,
    transparent_background,
)

from colorize import images  # noqa: E402
from colorize.colormodel import extract, palette_yaml  # noqa: E402
from colorize.evaluate_cases import (  # noqa: E402
    moved,
    moved_lineart,
    moved_truth,
    region_truth,
    write_case,
)
from colorize.metrics import region_ids  # noqa: E402
from colorize.regions.palette import pack_color  # noqa: E402


def syn_move_rotate(out: Path, h: int, w: int) -> None:
    steps = [0, 1, 2, 3, 4, 3, 2, 1, 0, -1, -2]
    frames = [make_frame(h, w, shift=(0.06 * w * k, 0.02 * h * k), angle=3.0 * k, dots=10) for k in steps]
    _synthetic(out / "syn_move_rotate", frames, [0], "moves of 6 % of the width and 3 deg per frame")


def syn_cycle_hold(out: Path, h: int, w: int) -> None:
    poses = [(0.0, 0.0, 0.0), (0.05, 0.01, 2.5), (0.1, 0.0, 5.0), (0.05, -0.01, 2.5)]
    frames = []
    for cycle in range(3):
        jitter = (0.0, 0.0) if cycle == 0 else (1.0 * cycle, -0.5 * cycle)  # re-drawn a little off
        for dx, dy, a in poses:
            f = make_frame(h, w, shift=(dx * w + jitter[0], dy * h + jitter[1]), angle=a, dots=10)
            frames += [f, f]  # on twos: every drawing held for two frames
    _synthetic(out / "syn_cycle_hold", frames, [0], "a 4-drawing cycle on twos, three times, re-drawn off")


def syn_occlusion(out: Path, h: int, w: int) -> None:
    n = 16
    frames = [make_overlap_frame(h, w, i / (n - 1), post_speed=0.1, tail=6) for i in range(n)]
    masks = {name: [f.masks[name] for f in frames] for name in ("post", "cat")}
    _synthetic(out / "syn_occlusion", frames, [0], "a cat walking in front of a post (masks)", masks=masks)


def syn_new_parts(out: Path, h: int, w: int) -> None:
    n = 9
    frames = [
        make_frame(h, w, shift=(0.03 * w * i, 0.01 * h * i), angle=1.0 * i, dots=2 * i) for i in range(n)
    ]
    _synthetic(out / "syn_new_parts", frames, [0, n - 1], "ornaments appear one by one; keys first and last")


def syn_shaded(out: Path, h: int, w: int) -> None:
    steps = [0, 1, 2, 3, 4, 5, 4, 3]
    motion = [((0.05 * w * k, 0.015 * h * k), 2.0 * k) for k in steps]
    frames = [make_frame(h, w, shift=s, angle=a, dots=10) for s, a in motion]
    colors = [shaded(f.color, shading(h, w, s, a)) for f, (s, a) in zip(frames, motion, strict=True)]
    _synthetic(
        out / "syn_shaded", frames, [0], "a painted (shaded) keyframe, the drawing moving", colors, True
    )


def syn_rgba(out: Path, h: int, w: int) -> None:
    steps = [0, 1, 2, 3, 2, 1, 0, -1]
    frames = [make_frame(h, w, shift=(0.05 * w * k, -0.02 * h * k), angle=2.5 * k, dots=10) for k in steps]
    for f in frames:
        f.lineart = alpha_lines(f.lineart)
    colors = [transparent_background(f.color) for f in frames]
    _synthetic(out / "syn_rgba", frames, [0], "lines in alpha, transparent background", colors)


def _synthetic(
    folder: Path,
    frames: list,
    keys: list[int],
    description: str,
    colors: list[np.ndarray] | None = None,
    is_shaded: bool = False,
    masks: dict | None = None,
) -> None:
    colors = colors or [f.color for f in frames]
    truth = {i: finished(f, c) for i, (f, c) in enumerate(zip(frames, colors, strict=True))}
    write_case(
        folder,
        [f.lineart for f in frames],
        {k: truth[k] for k in keys},
        truth,
        {i: region_map(f) for i, f in enumerate(frames)},
        description,
        shaded=is_shaded,
        masks=masks,
        unscored={i: f.unscored for i, f in enumerate(frames)},
    )


# -- real data ----------------------------------------------------------------------------------------------


def _moved_frame(line, gt, ids, shift, angle, lines=None):
    """(line art, truth, region ids) of the drawing moved by `shift` and turned by `angle`; `lines`
    makes the moved line art (default: anti-aliased, as redrawn)."""
    line1 = (lines or moved_lineart)(line, shift, angle)
    ids1 = moved(ids.astype(np.float32), shift, angle).astype(np.int64)
    ids1[line1[..., 3] > 0] = 0  # pixels under the moved lines are not counted
    return line1, moved_truth(gt, ids, line1, shift, angle), ids1


def _real_case(
    folder: Path,
    line,
    gt,
    ids,
    path,
    keys,
    description,
    truth_for=None,
    lines_of=None,
    references=None,
    settings="",
    palette=None,
) -> None:
    lines, gts, regs = [], {}, {}
    for i, (shift, angle) in enumerate(path):
        l1, g1, r1 = (
            _moved_frame(line, gt, ids, shift, angle, lines_of)
            if (shift, angle) != ((0, 0), 0)
            else (line, gt, ids)
        )
        lines.append(l1)
        if truth_for is None or i in truth_for:
            gts[i], regs[i] = g1, r1
    write_case(
        folder,
        lines,
        {k: gts[k] for k in keys},
        gts,
        regs,
        description,
        references=references,
        palette=palette,
    )
    if settings:  # manifest settings of the case (e.g. close_breaks for broken lines)
        with open(folder / "refs.yaml", "a") as manifest:
            manifest.write(settings)


def nearest_lineart(line: np.ndarray, shift, angle) -> np.ndarray:
    """Line art moved with nearest-neighbour resampling (as aliased exports and some scans are): thin
    lines break into steps with 1-px gaps."""
    return moved(line, shift, angle)


def bent(img: np.ndarray, k: float, linear: bool = False) -> np.ndarray:
    """`img` with one part pushed against its neighbours (a local, smooth displacement: a hand or a
    head moving while the rest stays): up to 7·k px right and 4·k px down, fading out with distance
    from a point left of the drawing's middle (sigma: 12 % of the width). Nearest sampling for maps."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, sigma = 0.42 * w, 0.5 * h, 0.12 * w
    bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
    # Inverse map, approximately: a destination pixel reads from where the bump pushed it from.
    map_x, map_y = xs - 7.0 * k * bump, ys - 4.0 * k * bump
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    return cv2.remap(img, map_x, map_y, flags, borderMode=cv2.BORDER_REPLICATE)


def bent_case(folder: Path, line, gt, ids, steps: list[int]) -> None:
    """The drawing with one part bent further each frame (see `bent`); keyframe = the first frame."""
    lines, gts, regs = [], {}, {}
    for i, k in enumerate(steps):
        if k == 0:
            l1, g1, r1 = line, gt, ids
        else:
            l1 = bent(line, k, linear=True)
            l1[..., 3] = np.where(l1[..., 3] > 0, 255, 0).astype(np.uint8)  # binary lines, as drawn
            r1 = bent(ids.astype(np.float32), k).astype(np.int64)
            g1 = region_truth(bent(gt, k), r1, l1)
            r1[l1[..., 3] > 0] = 0
        lines.append(l1)
        gts[i], regs[i] = g1, r1
    write_case(folder, lines, {0: gts[0]}, gts, regs, "a part bent against its neighbours (synthetic)")
    with open(folder / "refs.yaml", "a") as manifest:  # its binarised lines break where they thin
        manifest.write("flat:\n  close_breaks: true\n")


def with_gaps(line: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Line art (lines in alpha) with `count` gaps of 1-3 px cut into its lines at random places (a
    scan's breaks, a hand-drawn stroke stopping short)."""
    out = line.copy()
    ys, xs = np.nonzero(line[..., 3] > 0)
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(ys), size=min(count, len(ys)), replace=False):
        r = int(rng.integers(1, 3))  # a disc of radius 1 or 2: gaps of 1-3 px across a thin line
        cv2.circle(out, (int(xs[i]), int(ys[i])), r - 1, (0, 0, 0, 0), -1)
    return out


def color_regions(gt: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Region ids of a finished frame without a region map: connected areas of one color off the lines."""
    packed = pack_color(gt)
    off = line[..., 3] == 0 if images.has_transparency(line) else line[..., :3].min(axis=-1) == 255
    ids = np.zeros(packed.shape, np.int64)
    n = 0
    for color in np.unique(packed[off]):
        count, comp = cv2.connectedComponents((off & (packed == color)).astype(np.uint8), connectivity=4)
        ids[comp > 0] = comp[comp > 0] + n
        n += count - 1
    return ids


def lg_imperfect(out: Path, line, gt, ids, path) -> None:
    """lg_pan's path with imperfect lines: nearest-neighbour resampled, and 300 gaps of 1-3 px cut."""
    _real_case(
        out / "lg_nearest",
        line,
        gt,
        ids,
        path,
        [0],
        "laughing_girl moved 80 px, 3 deg per frame, nearest-neighbour resampled (1-px line gaps)",
        lines_of=nearest_lineart,  # default settings: close_breaks "auto" closes its breaks
    )
    _real_case(
        out / "lg_gaps",
        line,
        gt,
        ids,
        path,
        [0],
        "laughing_girl moved 80 px, 3 deg per frame, 300 line gaps of 1-3 px cut into every moved frame",
        # Seeded by the shift (>= -80 px on this path): a position revisited gets the same gaps.
        lines_of=lambda ln, shift, angle: with_gaps(
            moved_lineart(ln, shift, angle), 300, 1000 + int(shift[0])
        ),
        settings="flat:\n  close_breaks: true\n",
    )


def real_cases(out: Path, realdata: Path) -> None:
    pbc = realdata / "pbc0242"
    if pbc.is_dir():
        line, gt = images.read_rgba(pbc / "line.png"), images.read_rgba(pbc / "gt.png")
        ids = region_ids(images.read_rgba(pbc / "seg.png"))
        path = [((40.0 * k, 12.0 * k), 3.0 * k) for k in range(6)]
        _real_case(
            out / "pbc_move", line, gt, ids, path, [0], "pbc0242 panned 40 px and turned 3 deg per frame"
        )
        _real_case(
            out / "pbc_nearest",
            line,
            gt,
            ids,
            path,
            [0],
            "pbc0242 panned and turned, nearest-neighbour resampled (1-px line gaps)",
            lines_of=nearest_lineart,  # default settings: close_breaks "auto" closes its breaks
        )
        _real_case(
            out / "pbc_gaps",
            line,
            gt,
            ids,
            path,
            [0],
            "pbc0242 panned and turned, 300 line gaps of 1-3 px cut into every moved frame",
            lines_of=lambda ln, shift, angle: with_gaps(moved_lineart(ln, shift, angle), 300, int(shift[0])),
            settings="flat:\n  close_breaks: true\n",
        )
        _real_case(
            out / "pbc_reference",
            line,
            gt,
            ids,
            path[:3],
            [],
            "pbc0242 from its finished frame given as a reference only (no keyframe)",
            references={"girl": gt},
        )
        bent_case(out / "pbc_bend", line, gt, ids, [0, 1, 2, 3, 4, 5, 4, 3])
        cycle = [((40.0 * k, 0.0), 3.0 * k) for k in (0, 1, 2, 3)] * 3
        _real_case(out / "pbc_cycle", line, gt, ids, cycle, [0], "pbc0242 on a cycle of 4 positions, 3 times")
        palette = palette_yaml(extract([gt]), ["pbc0242/gt.png"])
        _real_case(
            out / "pbc_palette", line, gt, ids, path[:4], [0], "pbc_move with a palette: ids", palette=palette
        )
    girl = realdata / "laughing_girl"
    if girl.is_dir():
        drawings = [images.read_rgba(girl / "line" / f"{i:04d}.png") for i in range(4)]
        gt = images.read_rgba(girl / "gt" / "0000.png")
        ids = color_regions(gt, drawings[0])
        steps = [0, 1, 2, 3, 2, 1, 0, -1]
        path = [((80.0 * k, 25.0 * k), 3.0 * k) for k in steps]
        _real_case(
            out / "lg_pan", drawings[0], gt, ids, path, [0], "laughing_girl moved 80 px, 3 deg per frame"
        )
        lg_imperfect(out, drawings[0], gt, ids, path)
        order = [0, 1, 2, 3, 2, 1]
        rng = np.random.default_rng(11)
        shake = [((0.0, 0.0), 0.0)] + [
            ((float(x), float(y)), float(a))
            for x, y, a in zip(
                rng.uniform(-60, 60, 23), rng.uniform(-40, 40, 23), rng.uniform(-2, 2, 23), strict=True
            )
        ]
        lines, gts, regs = [], {}, {}
        for i, (shift, angle) in enumerate(shake):
            d = order[i % len(order)]
            line1 = drawings[d] if i == 0 else moved_lineart(drawings[d], shift, angle)
            lines.append(line1)
            if d == 0:
                gts[i] = gt if i == 0 else moved_truth(gt, ids, line1, shift, angle)
                r = ids if i == 0 else moved(ids.astype(np.float32), shift, angle).astype(np.int64)
                r[line1[..., 3] > 0] = 0
                regs[i] = r
        write_case(
            out / "lg_pingpong_shake",
            lines,
            {0: gt},
            gts,
            regs,
            "laughing_girl ping-pong under a camera shake",
        )
        write_case(
            out / "lg_trace",
            drawings,
            {0: gt},
            {0: gt},
            {0: ids},
            "laughing_girl's four drawings from its finished frame 0: colour-trace lines",
            trace=True,
        )
        pingpong = [drawings[order[i % len(order)]] for i in range(96)]
        write_case(
            out / "lg_pingpong", pingpong, {0: gt}, {0: gt}, {0: ids}, "laughing_girl ping-pong, 96 frames"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument(
        "--realdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata"
    )
    ap.add_argument("--size", default="360x640", help="HxW of the synthetic cases")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for make in (syn_move_rotate, syn_cycle_hold, syn_occlusion, syn_new_parts, syn_shaded, syn_rgba):
        make(args.out, h, w)
        print(f"wrote {args.out / make.__name__}")
    if args.realdata.is_dir():
        real_cases(args.out, args.realdata)
        print(f"wrote the real-data cases from {args.realdata}")
    else:
        print(f"{args.realdata} not found: real-data cases skipped")


if __name__ == "__main__":
    main()
