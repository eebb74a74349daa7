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

_GRIDS: dict[tuple[int, int], np.ndarray] = {}
_PAIR_BINS = 1 << 22  # (cur regions) x (prev regions) histograms up to this size (16 MB float32)


def _grid(h: int, w: int) -> np.ndarray:
    """H×W×2 float32 pixel coordinates (x, y)."""
    key = (h, w)
    if key not in _GRIDS:
        if len(_GRIDS) > 4:
            _GRIDS.clear()
        xs = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
        ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
        _GRIDS[key] = cv2.merge([np.ascontiguousarray(xs), np.ascontiguousarray(ys)])
    return _GRIDS[key]


def flow_scale(shape: tuple[int, int], work: int = 512) -> int:
    """Downscale factor so the flow works on about `work` pixels along the long side."""
    return max(1, round(max(shape) / work))


def flow_image(ink: np.ndarray, scale: int) -> np.ndarray:
    """The image DIS sees: ink at 1/scale, blurred, stretched to the full range (lines are faint there)."""
    h, w = ink.shape
    size = (max(8, w // scale), max(8, h // scale))
    a = cv2.GaussianBlur(cv2.resize(ink, size, interpolation=cv2.INTER_AREA), (0, 0), 1.5)
    return cv2.normalize(a, None, 0, 255, cv2.NORM_MINMAX)


def seg_flow_image(seg: Segmentation, scale: int) -> np.ndarray:
    """`flow_image` of a segmentation's ink, computed once (a frame is "current" once and "previous" once)."""
    key = ("flow_image", scale)
    if key not in seg.cache:
        seg.cache[key] = flow_image(seg.ink, scale)
    return seg.cache[key]


def line_flow(ink_cur: np.ndarray, ink_prev: np.ndarray, scale: int) -> np.ndarray:
    """Flow at 1/scale resolution: cur(x) ≈ prev(x + flow(x)), in small-image pixels (h×w×2 float32)."""
    return flow_between(flow_image(ink_cur, scale), flow_image(ink_prev, scale))


def flow_between(cur_image: np.ndarray, prev_image: np.ndarray) -> np.ndarray:
    """DIS flow between two `flow_image`s."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(cur_image, prev_image, None)


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
    # Palette index per prev label: 0 = line / outside, 1..n_pal = palette entry, n_pal+1 = unresolved region.
    idx_of_label = np.full(len(prev_colors), n_pal + 1, np.uint16)
    idx_of_label[0] = 0
    idx_of_label[valid_prev] = (np.searchsorted(palette, prev_colors[valid_prev]) + 1).astype(np.uint16)
    bins = n_pal + 2

    # Where each pixel of cur came from in prev (full resolution, nearest).
    small = flow * np.float32(scale) if scale != 1 else flow
    maps = cv2.add(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), _grid(h, w))
    cur16, prev16 = cur.labels16, prev.labels16
    nc, np_ = cur.count + 1, prev.count + 1
    if cur16 is not None and prev16 is not None and nc * np_ <= _PAIR_BINS and cur.labels.size < 1 << 24:
        # Votes per (cur label, prev label) in one 2-D histogram (no full-frame gathers), then per color.
        warped = cv2.remap(
            prev16, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        # A 1-D histogram of cur * np_ + prev (uint16 keys when they fit, else float32, exact below 2^24):
        # several times faster than a 2-D calcHist or a bincount of int64 keys.
        if nc * np_ <= 65536:
            keys = cur16 * np.uint16(np_) + warped  # the largest key is nc * np_ - 1: no wrap-around
        else:
            keys = cv2.add(cv2.multiply(cur16, np_, dtype=cv2.CV_32F), warped, dtype=cv2.CV_32F)
        pairs = cv2.calcHist([keys], [0], None, [nc * np_], [0, nc * np_]).reshape(nc, np_)
        votes = np.zeros((nc, bins), np.float64)
        np.add.at(votes.T, idx_of_label, pairs.T.astype(np.float64))
        votes = votes.astype(np.int64)
    else:
        prev_idx = np.take(idx_of_label, prev.labels)
        warped = cv2.remap(
            prev_idx, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        votes = np.bincount(
            (cur.labels.ravel().astype(np.int64) * bins + warped.ravel()), minlength=nc * bins
        ).reshape(nc, bins)
    counted = votes[:, 1:].sum(axis=1)
    colors = np.full(nc, NO_COLOR, np.int32)
    conf = np.zeros(nc, np.float32)
    if n_pal == 0:
        return colors, conf
    best = votes[:, 1 : n_pal + 1].argmax(axis=1)
    top = votes[np.arange(nc), best + 1]
    ok = top > 0
    ok[0] = False
    colors[ok] = palette[best[ok]]
    conf[ok] = top[ok] / np.maximum(counted[ok], 1)
    # Votes that fell on lines say nothing; a region whose pixels mostly land on lines is a weak match.
    coverage = counted / np.maximum(cur.areas, 1)
    conf *= np.clip(coverage * 2.0, 0.0, 1.0).astype(np.float32)
    return colors, conf
