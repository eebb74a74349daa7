"""Evaluation cases: writing a case folder (`write_case`, `case_from_folders`), and the transforms and
protocols that make cases from real data without the engine taking part in their truth (`moved`,
`moved_lineart`, `moved_truth`, `region_truth`, `eval_pbc`). See `colorize.evaluate` for the folder layout
and the figures; `bench/make_eval_set.py` and `bench/make_handdrawn.py` build the evaluation sets with these.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from colorize import images
from colorize.errors import InputDataError, MissingInputError
from colorize.evaluate import CaseReport, engine_segmentation, evaluate_case
from colorize.metrics import encode_ids, region_ids, segmentation_recovery
from colorize.sequences import find_sequence
from colorize.settings import Settings

# -- transforms and real-data protocols ---------------------------------------------------------------------


def moved(img: np.ndarray, shift: tuple[float, float], angle: float, linear: bool = False) -> np.ndarray:
    """The image moved by `shift` (x, y) pixels and rotated by `angle` degrees about its center.

    Nearest sampling for label and color maps; `linear` for line art, as a redrawn frame would be
    anti-aliased (nearest sampling of a rotated 1-px line breaks it into diagonal steps that leak).
    Edges are replicated: drawings are cut by the frame, and lines and regions that reach the edge go on
    beyond it; a blank border would open every region cut by the frame into its neighbours.
    """
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += shift
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    return cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def moved_lineart(line: np.ndarray, shift: tuple[float, float], angle: float) -> np.ndarray:
    """Line art moved like a redrawn frame: bilinear, then binarised conservatively where the lines are in
    alpha and binary (every touched pixel is line)."""
    out = moved(line, shift, angle, linear=True)
    if images.has_transparency(line) and len(np.unique(line[..., 3])) <= 2:
        out[..., 3] = np.where(out[..., 3] > 0, 255, 0).astype(np.uint8)
    return out


def moved_truth(
    gt: np.ndarray, ids: np.ndarray, moved_line: np.ndarray, shift: tuple[float, float], angle: float
) -> np.ndarray:
    """Ground truth of a moved frame: `gt` (the finished frame of the region map `ids`) moved like the
    drawing, each region in its own color, with the moved line art's line layer on top (see
    `region_truth`). Nothing of the engine (segmentation, rendering) takes part."""
    return region_truth(moved(gt, shift, angle), moved(ids.astype(np.float32), shift, angle), moved_line)


def region_truth(paint: np.ndarray, ids: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The finished frame of line art `line` whose truth regions are `ids` (H×W, 0 = none: the old lines)
    and whose region pixels have the colors `paint` (a finished frame moved or bent with `ids`, nearest
    sampling, so a region pixel and its color come from the same source pixel).

    Pixels of no region (old line pixels no longer under a line) take the color of the nearest region
    pixel; the line art's main lines are composited over (lines in alpha: "over"; opaque line art on white
    paper: multiplied, the same for black and gray lines); colored lines (trace lines, painted over in cel
    finishing) are left out, so they show the paint beneath."""
    paint = paint.copy()
    none = (ids == 0).astype(np.uint8)
    if none.any() and not none.all():
        # Each pixel's nearest region pixel: one label per zero pixel of `none` (the region pixels), so the
        # colors are looked up by label, whatever order OpenCV numbers them in.
        _, near = cv2.distanceTransformWithLabels(none, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        table = np.zeros((int(near.max()) + 1, paint.shape[2]), paint.dtype)
        table[near[none == 0]] = paint[none == 0]
        paint[none > 0] = table[near[none > 0]]
    rgb = line[..., :3].astype(np.float32)
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    if images.has_transparency(line):
        a = line[..., 3].astype(np.float32) / 255
        a[chroma > 80] = 0  # colored lines: painted over
        top = a[..., None] * rgb + (1 - a[..., None]) * paint[..., :3].astype(np.float32)
    else:
        dark = 255 - rgb.min(axis=-1)
        keep = ~(chroma * 255 > dark * 80)  # colored lines (chroma beyond ~0.3 of the ink): painted over
        top = np.where(keep[..., None], paint[..., :3].astype(np.float32) * rgb / 255, paint[..., :3])
    out = paint.copy()
    out[..., :3] = np.clip(top + 0.5, 0, 255).astype(paint.dtype)
    if paint.shape[2] == 4 and images.has_transparency(line):
        out[..., 3] = np.maximum(paint[..., 3], np.where(chroma > 80, 0, line[..., 3]))
    return out


MANIFEST = """version: 1
lineart: line/f.####.png
keyframes: keys/f.####.png
output: out/f.####.png
engine: flat
preset: default
seed: 0
"""


def write_case(
    folder: Path,
    lines: list[np.ndarray],
    keys: dict[int, np.ndarray],
    gts: dict[int, np.ndarray],
    regions: dict[int, np.ndarray],
    description: str,
    shaded: bool = False,
    masks: dict[str, list[np.ndarray]] | None = None,
    trace: bool = False,
    palette: str | None = None,
    references: dict[str, np.ndarray] | None = None,
    unscored: dict[int, np.ndarray] | None = None,
) -> Path:
    """Write a case folder (frames numbered from 1): line art, keyframes, ground truth, region id maps.
    `palette`: a palette file's text: the case then runs with it and writes the index layer (scored as
    palette id accuracy); `references`: characters given by a reference image only (no mask);
    `unscored`: per frame, H×W bool pixels no figure counts (written white on black)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("line", "keys", "gt", "regions"):
        (folder / sub).mkdir(parents=True)
    for i, line in enumerate(lines):
        images.write_image(folder / "line" / f"f.{i + 1:04d}.png", line)
    for group, items in (("keys", keys), ("gt", gts)):
        for i, img in items.items():
            images.write_image(folder / group / f"f.{i + 1:04d}.png", img)
    for i, ids in regions.items():
        images.write_image(folder / "regions" / f"f.{i + 1:04d}.png", encode_ids(ids))
    if unscored:
        (folder / "unscored").mkdir()
        for i, mask in unscored.items():
            images.write_image(folder / "unscored" / f"f.{i + 1:04d}.png", mask.astype(np.uint8) * 255)
    manifest = MANIFEST if keys else MANIFEST.replace("keyframes: keys/f.####.png\n", "")
    if references:
        manifest += "characters:\n"
        for name, ref in references.items():
            images.write_image(folder / f"{name}_ref.png", ref)
            manifest += f"  {name}:\n    reference: {name}_ref.png\n"
    if masks:
        manifest += "characters:\n"
        for name, seq in masks.items():
            (folder / "masks" / name).mkdir(parents=True)
            for i, mask in enumerate(seq):
                images.write_image(
                    folder / "masks" / name / f"f.{i + 1:04d}.png", mask.astype(np.uint8) * 255
                )
            images.write_image(folder / "masks" / f"{name}_ref.png", np.full((8, 8, 3), 128, np.uint8))
            manifest += f"  {name}:\n    reference: masks/{name}_ref.png\n    mask: masks/{name}/f.####.png\n"
    if palette is not None:
        (folder / "palette.yaml").write_text(palette)
        manifest += "palette: palette.yaml\nlayers: {index: index/f.####.png}\n"
    (folder / "refs.yaml").write_text(manifest)
    meta = {"description": description, "shaded": shaded, **({"trace": True} if trace else {})}
    (folder / "case.json").write_text(json.dumps(meta, indent=1))
    return folder


def eval_pbc(
    folder: Path,
    out_dir: Path,
    overrides: dict[str, Any] | None = None,
    shift: tuple[float, float] = (40.0, 0.0),
    angle: float = 3.0,
) -> tuple[dict[str, Any], CaseReport]:
    """(a) segmentation recovery on seg.png; (b) the case "keyframe, then the drawing moved by `shift`
    and rotated by `angle`" (engine and baseline)."""
    folder, out_dir = Path(folder), Path(out_dir)
    line = images.read_rgba(folder / "line.png")
    gt = images.read_rgba(folder / "gt.png")
    seg_map = images.read_rgba(folder / "seg.png")
    if not (line.shape[:2] == gt.shape[:2] == seg_map.shape[:2]):
        raise InputDataError(f"{folder}: line.png, gt.png and seg.png differ in size")
    ids = region_ids(seg_map)
    settings = Settings.model_validate({"engine": "flat", **(overrides or {})})
    seg = engine_segmentation(line, settings)
    rec, total = segmentation_recovery(seg.labels, ids)
    figures: dict[str, Any] = {"regions_recovered": f"{rec}/{total} ({100 * rec / total:.1f} %)"}
    line1 = moved_lineart(line, shift, angle)
    ids1 = moved(ids.astype(np.float32), shift, angle).astype(np.int64)
    ids1[line1[..., 3] > 0] = 0  # pixels under the moved lines are not counted
    case = write_case(
        out_dir / "case",
        [line, line1],
        {0: gt},
        {1: moved_truth(gt, ids, line1, shift, angle)},
        {1: ids1},
        f"pbc0242 moved {shift} px, rotated {angle} deg",
    )
    report = evaluate_case(case, out_dir / "result", overrides)
    figures["motion"] = f"shift {shift} px, rotation {angle} deg"
    figures.update(
        {k: v for k, v in report.figures.items() if "acc" in k or "psnr" in k or k == "unresolved"}
    )
    return figures, report


def case_from_folders(
    line_dir: Path, key_dir: Path, out_dir: Path, gt_dir: Path | None = None, region_dir: Path | None = None
) -> Path:
    """A case folder for a line-art folder, colored keyframes with the same frame numbers (and ground truth
    and region maps where given). Frames are found with fileseq; the files are copied, never modified."""
    line_dir, key_dir = Path(line_dir), Path(key_dir)
    lines = find_sequence(line_dir, images.IMAGE_EXTS)
    if not lines:
        raise MissingInputError(f"{line_dir}: no numbered line-art frames")
    keys = {f: p for f, p in find_sequence(key_dir, images.IMAGE_EXTS).items() if f in lines}
    if not keys:
        raise MissingInputError(f"{key_dir}: no keyframe with the frame number of a line-art frame")
    order = sorted(lines)
    gts = find_sequence(Path(gt_dir), images.IMAGE_EXTS) if gt_dir else keys
    regs = find_sequence(Path(region_dir), images.IMAGE_EXTS) if region_dir else {}
    settings = Settings()
    region_maps = {}
    for f in order:
        if f in gts and f not in regs:
            # No region maps: the line-enclosed regions of the line art stand in for them.
            region_maps[order.index(f)] = engine_segmentation(images.read_rgba(lines[f]), settings).labels
        elif f in regs:
            region_maps[order.index(f)] = region_ids(images.read_rgba(regs[f]))
    return write_case(
        Path(out_dir) / "case",
        [images.read_image(lines[f]) for f in order],
        {order.index(f): images.read_image(p) for f, p in keys.items()},
        {order.index(f): images.read_image(p) for f, p in gts.items() if f in lines},
        region_maps,
        f"{line_dir} colored from {key_dir}",
    )
