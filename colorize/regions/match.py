"""Drawing signatures (which drawing is this frame?) and region-level matching where flow votes are weak.

Signatures. Animation reuses drawings: holds, cycles, ping-pong timing, re-scans of the same sheet. A
frame's signature is the digest of its ink (exact repeats: same digest, same segmentation, same colors) and a small thumbnail of its ink; `similarity` is the best normalised cross-correlation of two
thumbnails over small shifts, so a drawing re-scanned a few pixels off still scores close to 1.

Region matching. Votes through the flow fail where a region moved far, was cut by lines drawn differently,
or sits in a part the flow could not follow. For such regions `match_regions` compares every nearby
source region on what the flow does not need: position after the global motion, area, shape (second
moments: elongation) and adjacency (how many of the region's already matched neighbours border the
candidate in the source frame).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from colorize.flow import Correspondence, shrink
from colorize.regions.palette import NO_COLOR
from colorize.regions.segment import Segmentation

THUMB = 192  # thumbnail long side (pixels): big enough to tell a blink or an open mouth
STATS_STEP = 4  # region statistics sample every STATS_STEP-th pixel of every STATS_STEP-th row
QUICK = 64  # long side of the thumbnail whose Fourier magnitudes give the quick first pick


@dataclass(frozen=True)
class Signature:
    digest: bytes  # of the ink: equal digests = the same drawing, the same regions
    thumb: np.ndarray  # uint8 ink thumbnail (blurred a little)
    spectrum: np.ndarray  # Fourier magnitudes of a smaller one, zero mean, unit norm: blind to position


def signature(ink: np.ndarray) -> Signature:
    """The signature of a frame from its ink (`segment.ink_u8`)."""
    # The segmentation is a function of the ink alone: equal ink, equal regions (line colors are the
    # frame's own when rendered), so the digest covers the ink (a quarter of the RGBA bytes).
    digest = hashlib.sha1(np.ascontiguousarray(ink).data).digest()
    thumb = cv2.GaussianBlur(shrink(ink, THUMB), (0, 0), 1.0)
    small = shrink(ink, QUICK).astype(np.float32)
    spectrum = cv2.magnitude(*cv2.split(cv2.dft(small - small.mean(), flags=cv2.DFT_COMPLEX_OUTPUT)))
    return Signature(digest, thumb, _unit(np.log1p(spectrum)))


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    norm = float(np.sqrt((x * x).sum()))
    return x / norm if norm > 0 else x


def quick_similarity(a: Signature, b: Signature) -> float:
    """Correlation of the small thumbnails' Fourier magnitudes: blind to where the drawing is in the frame,
    and cheap (a first pick among many drawings)."""
    if a.digest == b.digest:
        return 1.0
    return float(np.vdot(a.spectrum, b.spectrum)) if a.spectrum.shape == b.spectrum.shape else -1.0


def similarity(a: Signature, b: Signature) -> float:
    """1.0 for the same drawing; else the normalised cross-correlation of the thumbnails once the overall
    shift between them (a camera move, a re-scan off by some pixels; phase correlation) is taken out."""
    if a.digest == b.digest:
        return 1.0
    if a.thumb.shape != b.thumb.shape:
        return -1.0
    ta, tb = a.thumb.astype(np.float32), b.thumb.astype(np.float32)
    h, w = ta.shape
    (dx, dy), _ = cv2.phaseCorrelate(tb, ta, cv2.createHanningWindow((w, h), cv2.CV_32F))
    if not (np.isfinite(dx) and np.isfinite(dy)) or abs(dx) > w / 3 or abs(dy) > h / 3:
        dx = dy = 0.0
    moved = cv2.warpAffine(tb, np.array([[1, 0, dx], [0, 1, dy]], np.float32), (w, h), flags=cv2.INTER_LINEAR)
    mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
    x, y = _unit(ta[my : h - my, mx : w - mx]), _unit(moved[my : h - my, mx : w - mx])
    return float(np.vdot(x, y))


# -- region statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionStats:
    area: np.ndarray  # (n,) float64
    center: np.ndarray  # (n, 2) x, y
    elongation: np.ndarray  # (n,) sqrt(minor / major second moment), 1 for a disc, 0 for a line


def region_stats(seg: Segmentation) -> RegionStats:
    """Per-label area, centroid and elongation (cached on the segmentation)."""
    if "stats" in seg.cache:
        return seg.cache["stats"]
    n = seg.count + 1
    # Every 4th pixel of every 4th row: a 16th of the work, the moments of all but the tiniest regions
    # (those get no sample and no centroid: NaN, never a candidate).
    step = STATS_STEP
    sub = seg.labels[::step, ::step]
    h, w = sub.shape
    lab = sub.ravel()
    ys, xs = np.divmod(np.arange(lab.size, dtype=np.int64), w)
    xs, ys = step * xs.astype(np.float64), step * ys.astype(np.float64)
    area = np.bincount(lab, minlength=n).astype(np.float64)
    a = np.where(area > 0, area, np.nan)
    cx, cy = np.bincount(lab, xs, n) / a, np.bincount(lab, ys, n) / a
    sxx = np.bincount(lab, xs * xs, n) / a - cx * cx
    syy = np.bincount(lab, ys * ys, n) / a - cy * cy
    sxy = np.bincount(lab, xs * ys, n) / a - cx * cy
    tr, det = sxx + syy, sxx * syy - sxy * sxy
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    major, minor = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
    elong = np.sqrt(minor / np.maximum(major, 1e-9))
    stats = RegionStats(seg.areas.astype(np.float64), np.stack([cx, cy], axis=1), elong)
    seg.cache["stats"] = stats
    return stats


def adjacency(seg: Segmentation, reach: int = 2) -> set[tuple[int, int]]:
    """Pairs (a < b) of regions that face each other across a line (within `reach` pixels); cached."""
    if "adjacency" in seg.cache:
        return seg.cache["adjacency"]
    labels = seg.labels16 if seg.labels16 is not None else seg.labels.astype(np.float32)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    hi = cv2.dilate(labels, k)
    top = 65535 if labels.dtype == np.uint16 else float(seg.count + 1)
    lo = cv2.erode(np.where(labels > 0, labels, labels.dtype.type(top)), k)
    pts = cv2.findNonZero(cv2.bitwise_and(cv2.compare(lo, hi, cv2.CMP_LT), cv2.compare(lo, top, cv2.CMP_LT)))
    pairs: set[tuple[int, int]] = set()
    if pts is not None:
        pts = pts.reshape(-1, 2)
        a = lo[pts[:, 1], pts[:, 0]].astype(np.int64)
        b = hi[pts[:, 1], pts[:, 0]].astype(np.int64)
        keys = np.unique(a * (seg.count + 1) + b)
        pairs = {(int(k // (seg.count + 1)), int(k % (seg.count + 1))) for k in keys}
    seg.cache["adjacency"] = pairs
    return pairs


def match_regions(
    cur: Segmentation,
    prev: Segmentation,
    prev_colors: np.ndarray,
    affine: np.ndarray,
    weak: np.ndarray,
    colors: np.ndarray,
    source: np.ndarray,
    where: Correspondence,
    owners: tuple[np.ndarray, np.ndarray] | None = None,
    min_score: float = 0.15,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels matched, their confidences, their source labels) for the `weak` labels of `cur`.

    A candidate's score multiplies position, size, shape and neighbours' agreement; a match needs a score
    of `min_score` and a confidence (best / (best + best of another color + 0.05)) of 0.5.

    Where a region should be in `prev` is tried three ways, the best counting: where its pixels map to
    (`where`), where the global motion (`affine`, `cur` pixels to `prev` pixels) puts it, and where it is
    (still). `colors`/`source` are the current frame's confident results so far (NO_COLOR elsewhere),
    whose neighbours vouch for a candidate; with `owners` only regions of the same owner are candidates.
    """
    ids = np.flatnonzero(weak)
    ids = ids[ids > 0]
    empty = np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    cands = np.flatnonzero(prev_colors != NO_COLOR)
    cands = cands[cands > 0]
    if len(ids) == 0 or len(cands) == 0:
        return empty
    sc, sp = region_stats(cur), region_stats(prev)
    scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    radius = np.sqrt(np.maximum(sc.area[ids][:, None] * scale**2, sp.area[cands][None, :]))
    mapped = _mean_of_labels(cur, where, ids)
    position = np.zeros((len(ids), len(cands)))
    for at in (mapped, sc.center[ids] @ affine[:, :2].T + affine[:, 2], sc.center[ids]):
        dist = np.linalg.norm(at[:, None, :] - sp.center[cands][None, :, :], axis=2) / np.maximum(radius, 1)
        position = np.maximum(position, np.nan_to_num(np.exp(-0.5 * (dist / 0.75) ** 2)))
    ac, ap = sc.area[ids][:, None] * scale**2, sp.area[cands][None, :]
    size = np.minimum(ac, ap) / np.maximum(np.maximum(ac, ap), 1)
    shape = np.nan_to_num(1 - np.abs(sc.elongation[ids][:, None] - sp.elongation[cands][None, :]))
    # Occlusion cuts regions, so a region may be much smaller than its source; it cannot be much larger.
    score = position * np.where(ac <= ap, 0.5 + 0.5 * size, size) * shape
    if owners is not None:
        score *= owners[0][ids][:, None] == owners[1][cands][None, :]
    # Adjacency: matched neighbours of the weak region whose sources border the candidate (0.5: unknown).
    neighbours, prev_neighbours = _neighbour_lists(adjacency(cur)), _neighbour_lists(adjacency(prev))
    column = {int(c): j for j, c in enumerate(cands)}
    vouch = np.full(score.shape, 0.5)
    for i, c in enumerate(ids):
        srcs = [int(source[n]) for n in neighbours.get(int(c), ()) if colors[n] != NO_COLOR and source[n] > 0]
        if not srcs:
            continue
        hits = np.zeros(len(cands))
        for s_ in srcs:
            for other in prev_neighbours.get(s_, ()):
                if other in column:
                    hits[column[other]] += 1
        vouch[i] = hits / len(srcs)
    score = score * (0.6 + 0.4 * vouch)
    best = score.argmax(axis=1)
    top = score[np.arange(len(ids)), best]
    # Confidence: how clearly the best candidate beats the best one of another color.
    other = prev_colors[cands][None, :] != prev_colors[cands][best][:, None]
    second = np.where(other, score, 0).max(axis=1)
    conf = top / (top + second + 0.05)
    keep = (top >= min_score) & (conf >= 0.5)
    return ids[keep], conf[keep].astype(np.float32), cands[best[keep]]


def _neighbour_lists(pairs: set[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for a, b in sorted(pairs):
        out.setdefault(a, []).append(b)
        out.setdefault(b, []).append(a)
    return out


def _mean_of_labels(seg: Segmentation, where: Correspondence, ids: np.ndarray) -> np.ndarray:
    """(len(ids), 2) mean of the positions `where` gives over the pixels of each label in `ids` (few,
    small regions)."""
    which = np.zeros(seg.count + 1, np.uint8)
    which[ids] = 1
    pts = cv2.findNonZero(seg.per_pixel(which)).reshape(-1, 2)
    lab = seg.labels[pts[:, 1], pts[:, 0]]
    at = where.at(pts[:, 0], pts[:, 1])
    area = np.maximum(np.bincount(lab, minlength=seg.count + 1), 1)
    mean = np.stack([np.bincount(lab, at[:, c], seg.count + 1) / area for c in range(2)], axis=1)
    return mean[ids]
