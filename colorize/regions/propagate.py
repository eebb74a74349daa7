"""Region color propagation between two frames of a shot.

Optical flow is computed on the line art itself (OpenCV DIS at reduced resolution on blurred ink, so the
sparse lines give the flow something to lock on). Every pixel of a region in the current frame looks up
where it came from in the previous frame and votes for that region's color; a region takes the color
with most votes. Confidence is the winning share of the votes, scaled down when the region's size changed
much against the matched source area (a region that appeared or was split/merged).
"""

from __future__ import annotations

import cv2
import numpy as np

from colorize.regions.palette import NO_COLOR
from colorize.regions.segment import Segmentation

_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    key = (h, w)
    if key not in _GRIDS:
        if len(_GRIDS) > 4:
            _GRIDS.clear()
        _GRIDS[key] = (
            np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)),
            np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)),
        )
    return _GRIDS[key]


def flow_scale(shape: tuple[int, int], work: int = 512) -> int:
    """Downscale factor so the flow works on about `work` pixels along the long side."""
    return max(1, round(max(shape) / work))


def line_flow(ink_cur: np.ndarray, ink_prev: np.ndarray, scale: int) -> np.ndarray:
    """Flow at 1/scale resolution: cur(x) ≈ prev(x + flow(x)), in small-image pixels (h×w×2 float32)."""
    h, w = ink_cur.shape
    size = (max(8, w // scale), max(8, h // scale))
    a = cv2.GaussianBlur(cv2.resize(ink_cur, size, interpolation=cv2.INTER_AREA), (0, 0), 1.5)
    b = cv2.GaussianBlur(cv2.resize(ink_prev, size, interpolation=cv2.INTER_AREA), (0, 0), 1.5)
    # Lines at reduced size are faint: stretch them so DIS sees contrast.
    a = cv2.normalize(a, None, 0, 255, cv2.NORM_MINMAX)
    b = cv2.normalize(b, None, 0, 255, cv2.NORM_MINMAX)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)


def propagate(
    cur: Segmentation,
    prev: Segmentation,
    prev_colors: np.ndarray,
    flow: np.ndarray,
    scale: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Colors and confidences (per label of `cur`) voted from `prev`'s region colors through `flow`."""
    h, w = cur.labels.shape
    valid_prev = prev_colors != NO_COLOR
    palette = np.unique(prev_colors[valid_prev])
    n_pal = len(palette)
    # Index image of prev: 0 = line / outside, 1..n_pal = palette entry, n_pal+1 = unresolved region.
    idx_of_label = np.full(len(prev_colors), n_pal + 1, np.uint16)
    idx_of_label[0] = 0
    idx_of_label[valid_prev] = (np.searchsorted(palette, prev_colors[valid_prev]) + 1).astype(np.uint16)
    prev_idx = idx_of_label[prev.labels]

    fx = cv2.resize(flow[..., 0], (w, h), interpolation=cv2.INTER_LINEAR)
    fy = cv2.resize(flow[..., 1], (w, h), interpolation=cv2.INTER_LINEAR)
    gx, gy = _grid(h, w)
    if scale != 1:
        fx *= scale
        fy *= scale
    fx += gx
    fy += gy
    warped = cv2.remap(prev_idx, fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    bins = n_pal + 2
    votes = np.bincount(
        (cur.labels.ravel().astype(np.int64) * bins + warped.ravel()), minlength=(cur.count + 1) * bins
    ).reshape(cur.count + 1, bins)
    counted = votes[:, 1:].sum(axis=1)
    colors = np.full(cur.count + 1, NO_COLOR, np.int32)
    conf = np.zeros(cur.count + 1, np.float32)
    if n_pal == 0:
        return colors, conf
    best = votes[:, 1 : n_pal + 1].argmax(axis=1)
    top = votes[np.arange(cur.count + 1), best + 1]
    ok = top > 0
    ok[0] = False
    colors[ok] = palette[best[ok]]
    conf[ok] = top[ok] / np.maximum(counted[ok], 1)
    # Votes that fell on lines say nothing; a region whose pixels mostly land on lines is a weak match.
    coverage = counted / np.maximum(cur.areas, 1)
    conf *= np.clip(coverage * 2.0, 0.0, 1.0).astype(np.float32)
    return colors, conf
