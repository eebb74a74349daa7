"""Scores of a colored frame against its ground truth, for `colorize.evaluate` and `colorize eval folder`:
region accuracy (a region is right when most of its pixels are within TOLERANCE of the truth), pixel
accuracy, palette-id accuracy of an index layer, PSNR, alpha IoU, SSIM, how well an engine's flags predict
its errors, segmentation recovery, and the error image of a contact sheet. Regions are H×W int ids (0: the
lines, not counted), read from an RGB region index map by `region_ids`."""

from __future__ import annotations

import cv2
import numpy as np

from colorize import images

TOLERANCE = 8  # pixel accuracy: largest difference per channel that still counts as right
CLIP_TOLERANCE = 32  # the same for frames without region maps (painted, codec-compressed finished frames)
MIN_AREA = 12  # region accuracy counts regions with at least this many pixels off the lines


def region_ids(region_map: np.ndarray) -> np.ndarray:
    """RGB(A) region index map -> H×W int ids, 0 for black (lines)."""
    rgb = region_map[..., :3].astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inv = np.unique(packed, return_inverse=True)
    return inv.reshape(packed.shape) + (0 if uniq[0] == 0 else 1)


def encode_ids(ids: np.ndarray) -> np.ndarray:
    """H×W int ids -> H×W×3 uint8 region index map (the inverse of `region_ids` up to renumbering)."""
    ids = ids.astype(np.int64)
    return np.dstack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255]).astype(np.uint8)


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


def _close(result: np.ndarray, gt: np.ndarray, tolerance: int) -> np.ndarray:
    """H×W bool: within `tolerance` in every channel (RGBA; the color of pixels transparent in both and
    of RGB results against RGB truth compare as is)."""
    a, b = images.output_array(result, "on").astype(np.int16), images.output_array(gt, "on").astype(np.int16)
    close = np.abs(a - b) <= tolerance
    clear = (a[..., 3] == 0) & (b[..., 3] == 0)
    return close.all(axis=-1) | (clear & close[..., 3])


def region_accuracy(
    result: np.ndarray,
    gt: np.ndarray,
    gt_ids: np.ndarray,
    min_area: int = 1,
    counted: np.ndarray | None = None,
    tolerance: int = TOLERANCE,
) -> tuple[float, np.ndarray]:
    """(share of regions colored right, H×W bool mask of wrong regions) over gt regions (id > 0).

    A region is right when most of its pixels are within `tolerance` of the truth (for flat colors: it
    has the truth's color; for shaded ones: its shading follows). RGBA compares alpha too: a region that
    should be transparent must come out transparent. Only regions with at least `min_area` pixels of
    `counted` (default: all pixels) take part.
    """
    n = int(gt_ids.max()) + 1
    ids = gt_ids.ravel()
    good = np.bincount(ids, weights=_close(result, gt, tolerance).ravel(), minlength=n)
    ok = good * 2 > np.bincount(ids, minlength=n)
    sel = gt_ids if counted is None else gt_ids[counted]
    present = np.bincount(sel.ravel(), minlength=n) >= max(1, min_area)
    present[0] = False
    wrong = present & ~ok
    return float(ok[present].mean()) if present.any() else 1.0, wrong[gt_ids]


def palette_id_accuracy(
    index: np.ndarray, truth: np.ndarray, gt_ids: np.ndarray, min_area: int = MIN_AREA
) -> float:
    """Share of ground-truth regions (of at least `min_area` pixels) whose most common index-layer id is
    the most common palette id of the truth there (`Palette.index` of the finished frame)."""
    lab = gt_ids.ravel()
    keep = lab > 0
    regions, inverse, areas = np.unique(lab[keep], return_inverse=True, return_counts=True)
    if len(regions) == 0:
        return float("nan")
    right = []
    for values in (index.ravel()[keep], truth.ravel()[keep]):
        pairs = inverse.astype(np.int64) * 65536 + values.astype(np.int64)
        uniq, counts = np.unique(pairs, return_counts=True)
        order = np.lexsort((-counts, uniq // 65536))
        first = order[np.r_[True, (uniq[order] // 65536)[1:] != (uniq[order] // 65536)[:-1]]]
        best = np.zeros(len(regions), np.int64)
        best[uniq[first] // 65536] = uniq[first] % 65536
        right.append(best)
    big = areas >= min_area
    return float((right[0] == right[1])[big].mean()) if big.any() else float("nan")


def flag_counts(wrong: np.ndarray, flagged: np.ndarray, gt_ids: np.ndarray, min_area: int) -> dict[str, int]:
    """How well the engine's flags (H×W bool: pixels of regions it calls low-confidence or unresolved)
    predict its errors (`wrong`, H×W bool from `region_accuracy`), over the ground-truth regions of at
    least `min_area` pixels: {"wrong": wrong regions, "wrong_flagged": wrong regions most of whose pixels
    are flagged, "flagged": regions most of whose pixels are flagged}. Recall = wrong_flagged / wrong,
    precision = wrong_flagged / flagged."""
    n = int(gt_ids.max()) + 1
    ids = gt_ids.ravel()
    area = np.bincount(ids, minlength=n)
    present = area >= max(1, min_area)
    present[0] = False
    bad = (np.bincount(ids, weights=wrong.ravel(), minlength=n) * 2 > area) & present
    marked = (np.bincount(ids, weights=flagged.ravel(), minlength=n) * 2 > area) & present
    return {"wrong": int(bad.sum()), "wrong_flagged": int((bad & marked).sum()), "flagged": int(marked.sum())}


def unpack_flags(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An H×W bool mask from its `np.packbits` form (`FlatEngine.flags`)."""
    return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)


def pixel_accuracy(
    result: np.ndarray, gt: np.ndarray, where: np.ndarray, tolerance: int = TOLERANCE
) -> float:
    """Share of `where` pixels within `tolerance` of the ground truth in every channel (see `_close`)."""
    return float(_close(result, gt, tolerance)[where].mean()) if where.any() else 1.0


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB of two images composited over white (8 bits), over the `where` pixels (H×W bool, default
    all); inf when equal there, nan when there is no such pixel."""
    x = images.to_uint8(images.over_white(a)).astype(np.float64)
    y = images.to_uint8(images.over_white(b)).astype(np.float64)
    err = (x - y) ** 2 if where is None else ((x - y) ** 2)[where]
    if not err.size:
        return float("nan")  # no pixel to score
    mse = float(np.mean(err))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def alpha_iou(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """IoU of the opaque (alpha >= 128) pixels of two images (of the `where` pixels, H×W bool, default all);
    RGB images are opaque everywhere."""
    ma, mb = images.output_array(a, "on")[..., 3] >= 128, images.output_array(b, "on")[..., 3] >= 128
    if where is not None:
        ma, mb = ma & where, mb & where
    union = int((ma | mb).sum())
    return float((ma & mb).sum() / union) if union else 1.0


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM on luma (of RGB over white) with the usual 11×11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03."""
    x = cv2.cvtColor(images.over_white(a), cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(images.over_white(b), cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean())  # the window's reach (5 px) off each border, as scikit-image does


def error_image(result: np.ndarray, gt: np.ndarray, wrong: np.ndarray | None = None) -> np.ndarray:
    """Dimmed ground truth; pixels that differ in red, whole wrongly colored regions in magenta."""
    gt_rgb = images.over_white(images.to_uint8(gt))
    base = cv2.cvtColor(cv2.cvtColor(gt_rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) // 2 + 64
    base[~_close(result, gt, TOLERANCE)] = (255, 0, 0)
    if wrong is not None:
        base[wrong] = (255, 0, 255)
    return base
