"""Region color propagation between two frames of a shot.

Optical flow is computed on the line art itself (OpenCV DIS at reduced resolution on blurred ink, so the
sparse lines give the flow something to lock on). Every pixel of a region in the current frame looks up
where it came from in the previous frame and votes for that region's color; a region takes the color
with most votes. Confidence is the winning share of the votes, scaled down when the region's size changed
much against the matched source area (a region that appeared or was split/merged).

With owners (per region: 0 = background, 1.. = a character, from the shot's character masks), a region
only counts votes from previous-frame pixels of its own owner, so colors cannot cross from one character
to another where they overlap; a region with no such vote falls back to all votes.
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
    owners: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Colors and confidences (per label of `cur`) voted from `prev`'s region colors through `flow`.

    `owners`: (owner per label of `cur`, owner per label of `prev`), small non-negative ints; see the
    module docstring.
    """
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
    all_votes = None  # with owners: unconstrained votes (per-pixel path), else from `pairs`
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
        if owners is None:
            votes = _color_votes(pairs, idx_of_label, bins)
        else:
            same = owners[0][:, None] == owners[1][None, :]
            votes = _color_votes(np.where(same, pairs, np.float32(0)), idx_of_label, bins)
            landed = pairs[:, 1:].sum(axis=1).astype(np.int64)
    else:
        prev_idx = np.take(idx_of_label, prev.labels)
        warped = cv2.remap(
            prev_idx, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        keys = cur.labels.ravel().astype(np.int64) * bins + warped.ravel()
        votes = np.bincount(keys, minlength=nc * bins).reshape(nc, bins)
        if owners is not None:
            all_votes = votes
            landed = all_votes[:, 1:].sum(axis=1)
            prev_owner = np.take(owners[1].astype(np.float32), prev.labels)
            warped_owner = cv2.remap(
                prev_owner, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=-1
            )
            same_px = (warped_owner == np.take(owners[0], cur.labels)).ravel()
            votes = np.bincount(keys[same_px], minlength=nc * bins).reshape(nc, bins)
    if owners is not None:
        # Regions whose every vote fell on another owner (cut off by an occluder, or the flow followed the
        # occluder): votes from the nearest previous pixels of their own owner, else from everything.
        lost = (votes[:, 1:].sum(axis=1) == 0) & (landed > 0)
        lost[0] = False
        if lost.any():
            votes[lost] = _nearest_owner_votes(cur, prev, owners, maps, lost, idx_of_label, bins)[lost]
            lost &= votes[:, 1:].sum(axis=1) == 0
            if lost.any():
                votes[lost] = (
                    all_votes[lost]
                    if all_votes is not None
                    else _color_votes(pairs[lost], idx_of_label, bins)
                )
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
    # (Votes that fell on another owner's regions were dropped as occlusion, not as "no match".)
    coverage = (counted if owners is None else np.maximum(counted, landed)) / np.maximum(cur.areas, 1)
    conf *= np.clip(coverage * 2.0, 0.0, 1.0).astype(np.float32)
    return colors, conf


def _color_votes(pairs: np.ndarray, idx_of_label: np.ndarray, bins: int) -> np.ndarray:
    """Votes per (cur label, palette index) from a (cur label, prev label) histogram, as int64."""
    votes = np.zeros((len(pairs), bins), np.float64)
    np.add.at(votes.T, idx_of_label, pairs.T.astype(np.float64))
    return votes.astype(np.int64)


def _nearest_owner_votes(
    cur: Segmentation,
    prev: Segmentation,
    owners: tuple[np.ndarray, np.ndarray],
    maps: np.ndarray,
    lost: np.ndarray,
    idx_of_label: np.ndarray,
    bins: int,
) -> np.ndarray:
    """Votes (nc × bins, rows of `lost` only) of each pixel of a `lost` region for the previous-frame
    region of the same owner nearest to where the flow says the pixel came from."""
    cur_owner, prev_owner = owners
    votes = np.zeros((cur.count + 1, bins), np.int64)
    h, w = prev.labels.shape
    ys, xs = np.nonzero(np.take(lost.view(np.uint8), cur.labels))
    labels = cur.labels[ys, xs]
    px_owner = cur_owner[labels]
    src_x = np.clip(np.rint(maps[ys, xs, 0]), 0, w - 1).astype(np.intp)
    src_y = np.clip(np.rint(maps[ys, xs, 1]), 0, h - 1).astype(np.intp)
    prev_px_owner = np.take(prev_owner, prev.labels)
    for o in np.unique(px_owner):
        src = (prev_px_owner == o) & (prev.labels > 0)
        if not src.any():
            continue
        # Index (raster order among `src` pixels, from 1) of the nearest `src` pixel, for every pixel.
        _, near = cv2.distanceTransformWithLabels(
            np.where(src, 0, 255).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        mine = px_owner == o
        source_labels = prev.labels[src][near[src_y[mine], src_x[mine]] - 1]
        keys = labels[mine].astype(np.int64) * bins + idx_of_label[source_labels]
        votes += np.bincount(keys, minlength=votes.size).reshape(votes.shape)
    return votes
