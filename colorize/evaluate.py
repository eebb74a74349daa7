"""Evaluation of flat colorization: region metrics, PSNR/SSIM, contact sheets, real-data protocols.

Metrics
- segmentation recovery: share of ground-truth regions (a region index map) matched by one of our
  regions with IoU >= 0.9;
- region accuracy: share of ground-truth regions whose dominant result color equals their dominant
  ground-truth color;
- PSNR and SSIM (Gaussian-window SSIM on luma, OpenCV only) against ground-truth frames.

The real-data protocols (`eval_pbc`, `eval_sequence`) take paths; the data is never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from colorize.engines.base import FrameInput, ShotContext
from colorize.engines.flat import FlatEngine
from colorize.errors import InputDataError, MissingInputError, OutputError
from colorize.regions.palette import pack_rgb
from colorize.regions.segment import segment
from colorize.settings import Settings

# -- image IO -----------------------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """PNG/any image as RGBA uint8 (gray and RGB get an opaque alpha)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: file not found")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputDataError(f"{path}: not a readable image")
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGBA)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def over_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA -> RGB composited over white (transparent ground-truth backgrounds become paper)."""
    a = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path.parent}: cannot create folder ({error.strerror})") from None
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OutputError(f"{path}: cannot write image")


# -- metrics ------------------------------------------------------------------------------------------------


def region_ids(region_map: np.ndarray) -> np.ndarray:
    """RGB(A) region index map -> H×W int ids, 0 for black (lines)."""
    packed = pack_rgb(region_map[..., :3])
    uniq, inv = np.unique(packed, return_inverse=True)
    ids = inv.reshape(packed.shape) + (0 if uniq[0] == 0 else 1)
    return ids


def segmentation_recovery(labels: np.ndarray, gt_ids: np.ndarray, iou: float = 0.9) -> tuple[int, int]:
    """(recovered, total) ground-truth regions matched by one of `labels`' regions with IoU >= iou."""
    ng, nl = int(gt_ids.max()) + 1, int(labels.max()) + 1
    inter = np.bincount((gt_ids.astype(np.int64) * nl + labels).ravel(), minlength=ng * nl).reshape(ng, nl)
    ga, la = inter.sum(axis=1), inter.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ious = inter[:, 1:] / (ga[:, None] + la[None, 1:] - inter[:, 1:])
    best = np.nan_to_num(ious).max(axis=1) if nl > 1 else np.zeros(ng)
    present = ga > 0
    present[0] = False
    return int((best[present] >= iou).sum()), int(present.sum())


def _dominant(ids: np.ndarray, rgb: np.ndarray, n: int) -> np.ndarray:
    packed = pack_rgb(rgb).ravel()
    uniq, inv = np.unique(packed, return_inverse=True)
    votes = np.bincount(ids.ravel().astype(np.int64) * len(uniq) + inv, minlength=n * len(uniq))
    return uniq[votes.reshape(n, len(uniq)).argmax(axis=1)]


def region_accuracy(
    result: np.ndarray,
    gt: np.ndarray,
    gt_ids: np.ndarray,
    min_area: int = 1,
    counted: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """(share of regions colored right, H×W bool mask of wrong regions) over gt regions (id > 0).

    Only regions with at least `min_area` pixels of `counted` (default: all pixels) take part.
    """
    n = int(gt_ids.max()) + 1
    ok = _dominant(gt_ids, result, n) == _dominant(gt_ids, gt, n)
    sel = gt_ids if counted is None else gt_ids[counted]
    present = np.bincount(sel.ravel(), minlength=n) >= max(1, min_area)
    present[0] = False
    wrong = present & ~ok
    return float(ok[present].mean()) if present.any() else 1.0, wrong[gt_ids]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM on luma with the usual 11×11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m.mean())


# -- contact sheet ------------------------------------------------------------------------------------------


def _tile(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    out = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def contact_sheet(rows: list[list[np.ndarray | None]], labels: list[str], tile: int = 400) -> np.ndarray:
    """Grid of RGB images (None = blank tile), one row per frame, a caption per row."""
    out_rows = []
    for row, label in zip(rows, labels, strict=True):
        tiles = []
        height = None
        for img in row:
            if img is not None:
                t = _tile(img, tile)
                height = t.shape[0]
                tiles.append(t)
            else:
                tiles.append(None)
        height = height or tile
        tiles = [t if t is not None else np.full((height, tile, 3), 128, np.uint8) for t in tiles]
        strip = np.concatenate(
            [np.pad(t, ((0, 0), (2, 2), (0, 0)), constant_values=40) for t in tiles], axis=1
        )
        band = np.full((28, strip.shape[1], 3), 40, np.uint8)
        cv2.putText(band, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        out_rows.append(np.concatenate([band, strip], axis=0))
    width = max(r.shape[1] for r in out_rows)
    out_rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=40) for r in out_rows]
    return np.concatenate(out_rows, axis=0)


def line_preview(lineart: np.ndarray) -> np.ndarray:
    return over_white(lineart)


def error_image(result: np.ndarray, gt: np.ndarray, wrong: np.ndarray | None = None) -> np.ndarray:
    """Dimmed ground truth; pixels that differ in red, whole wrongly colored regions in magenta."""
    base = cv2.cvtColor(cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) // 2 + 64
    base[(result != gt).any(axis=-1)] = (255, 0, 0)
    if wrong is not None:
        base[wrong] = (255, 0, 255)
    return base


# -- protocols ----------------------------------------------------------------------------------------------


@dataclass
class EvalReport:
    figures: dict[str, Any] = field(default_factory=dict)
    sheets: list[Path] = field(default_factory=list)


def run_flat(
    linearts: list[np.ndarray], keyframes: dict[int, np.ndarray], settings: Settings, batch: int = 4
) -> list[Any]:
    """Run the flat engine over an in-memory shot (frames 0..n-1); returns FrameResults."""
    h, w = linearts[0].shape[:2]
    shot = ShotContext(
        frames=tuple(range(len(linearts))),
        keyframes=tuple(sorted(keyframes)),
        size=(h, w),
        characters=(),
        background=None,
        settings=settings,
        load_lineart=lambda f: linearts[f],
        load_keyframe=lambda f: keyframes[f],
        load_masks=lambda f: {},
    )
    engine = FlatEngine(settings)
    engine.prepare(shot)
    results = []
    for s in range(0, len(linearts), batch):
        results += engine.colorize(
            [
                FrameInput(f, linearts[f], {}, keyframes.get(f))
                for f in range(s, min(len(linearts), s + batch))
            ]
        )
    return results


def moved(img: np.ndarray, shift: tuple[float, float], angle: float, linear: bool = False) -> np.ndarray:
    """The image moved by `shift` (x, y) pixels and rotated by `angle` degrees about its center.

    Nearest sampling for label and color maps; `linear` for line art, as a redrawn frame would be
    anti-aliased (nearest sampling of a rotated 1-px line breaks it into diagonal steps that leak).
    """
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += shift
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    # Replicated edges: drawings are cut by the frame, and the lines and regions that reach the edge go on
    # beyond it; a blank border would open every region cut by the frame into its neighbours.
    return cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def eval_pbc(
    folder: Path,
    out_dir: Path,
    settings: Settings,
    shift: tuple[float, float] = (6.0, 4.0),
    angle: float = 2.0,
) -> EvalReport:
    """(a) segmentation recovery on seg.png; (b) propagation to a moved + rotated copy; contact sheet."""
    folder = Path(folder)
    line = read_image(folder / "line.png")
    gt = over_white(read_image(folder / "gt.png"))
    seg_map = read_image(folder / "seg.png")
    if not (line.shape[:2] == gt.shape[:2] == seg_map.shape[:2]):
        raise InputDataError(f"{folder}: line.png, gt.png and seg.png differ in size")
    gt_ids = region_ids(seg_map)
    fs = settings.flat
    seg = segment(line, fs.gap_close, fs.min_region, fs.line_threshold)
    rec, total = segmentation_recovery(seg.labels, gt_ids)
    report = EvalReport()
    report.figures["a_regions_recovered"] = f"{rec}/{total} ({100 * rec / total:.1f} %)"

    # The next frame is the line art moved bilinearly, then binarised conservatively (every touched pixel
    # is line), like a redrawn binary frame: nearest sampling would break rotated 1-px lines into leaks.
    line1 = moved(line, shift, angle, linear=True)
    line1[..., 3] = np.where(line1[..., 3] > 0, 255, 0).astype(np.uint8)
    gt1 = moved(gt, shift, angle)
    ids1 = moved(gt_ids.astype(np.float32), shift, angle).astype(np.int64)
    r0, r1 = run_flat([line, line1], {0: gt}, settings)
    acc0, wrong0 = region_accuracy(r0.image, gt, gt_ids)
    acc1, wrong1 = region_accuracy(r1.image, gt1, ids1)
    report.figures["keyframe_region_accuracy"] = f"{100 * acc0:.1f} %"
    report.figures["b_propagated_region_accuracy"] = f"{100 * acc1:.1f} %"
    # Moving 1-px line art by a rotation thickens lines (conservative rasterisation) and swallows the
    # smallest regions: also count only regions that still exist off the lines of the moved frame
    # (>= 1 pixel), and those with >= 12 / >= 50 such pixels.
    paper1 = line1[..., 3] == 0
    for area in (1, 12, 50):
        acc, _ = region_accuracy(r1.image, gt1, ids1, min_area=area, counted=paper1)
        report.figures[f"b_propagated_region_accuracy_regions_ge{area}px"] = f"{100 * acc:.1f} %"
    report.figures["b_motion"] = f"shift {shift} px, rotation {angle} deg"
    report.figures["b_unresolved_regions"] = r1.info["unresolved"]
    report.figures["b_psnr"] = round(psnr(r1.image, gt1), 2)
    report.figures["b_ssim"] = round(ssim(r1.image, gt1), 4)
    sheet = contact_sheet(
        [
            [line_preview(line), r0.image, gt, error_image(r0.image, gt, wrong0)],
            [line_preview(line1), r1.image, gt1, error_image(r1.image, gt1, wrong1)],
        ],
        [
            f"pbc0242 keyframe fill: region acc {100 * acc0:.1f} %   (line | result | gt | error)",
            f"moved {shift} px, {angle} deg: region acc {100 * acc1:.1f} %, unresolved {r1.info['unresolved']}",
        ],
    )
    path = Path(out_dir) / "pbc0242_sheet.png"
    write_png(path, sheet)
    report.sheets.append(path)
    return report


def eval_sequence(
    line_dir: Path, key_dir: Path, out_dir: Path, settings: Settings, gt_dir: Path | None = None
) -> EvalReport:
    """Color a line-art folder from the colored keyframes found in `key_dir` (same file names).

    Writes the results and a contact sheet (line | result | ground truth or keyframe | error); PSNR/SSIM per
    frame where `gt_dir` (default: `key_dir`) has that frame.
    """
    line_dir, key_dir = Path(line_dir), Path(key_dir)
    gt_dir = Path(gt_dir) if gt_dir else key_dir
    if not line_dir.is_dir():
        raise MissingInputError(f"{line_dir}: folder not found")
    names = sorted(p.name for p in line_dir.glob("*.png"))
    if not names:
        raise MissingInputError(f"{line_dir}: no PNG line-art frames")
    linearts = [read_image(line_dir / n) for n in names]
    keyframes = {
        i: over_white(read_image(key_dir / n)) for i, n in enumerate(names) if (key_dir / n).is_file()
    }
    if not keyframes:
        raise MissingInputError(f"{key_dir}: no keyframe with the name of a line-art frame")
    results = run_flat(linearts, keyframes, settings)
    report = EvalReport()
    rows, captions = [], []
    out_dir = Path(out_dir)
    for name, line, res in zip(names, linearts, results, strict=True):
        write_png(out_dir / "frames" / name, res.image)
        gt = over_white(read_image(gt_dir / name)) if (gt_dir / name).is_file() else None
        caption = f"{name}: {res.info['regions']} regions, {res.info['unresolved']} unresolved"
        if gt is not None:
            p, s = psnr(res.image, gt), ssim(res.image, gt)
            report.figures[f"{name}_psnr"] = round(p, 2)
            report.figures[f"{name}_ssim"] = round(s, 4)
            caption += f", PSNR {p:.2f} dB, SSIM {s:.4f}"
        report.figures[f"{name}_unresolved"] = res.info["unresolved"]
        ref = gt if gt is not None else keyframes[min(keyframes, key=lambda k: abs(k - names.index(name)))]
        rows.append(
            [line_preview(line), res.image, ref, error_image(res.image, gt) if gt is not None else None]
        )
        captions.append(caption + ("" if gt is not None else "  (no ground truth: keyframe shown)"))
    path = out_dir / "sequence_sheet.png"
    write_png(path, contact_sheet(rows, captions))
    report.sheets.append(path)
    return report
