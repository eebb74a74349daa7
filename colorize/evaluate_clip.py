"""Metrics for clips of finished frames (hand-drawn animation): scores that need no region maps.

- **PSNR off the lines**: PSNR (over white) over the pixels that are not line art, the line pixels (any
  ink) dilated by 1 px: what the engine paints, without the lines both sides copy from the line art.
- **Background-colour check**: a *background colour* is a colour (5 bits a channel, so codec noise and
  painted gradients fall together) that the keyframe has only in its background, the large regions open
  to the frame (touching two or more frame edges, at least BACKGROUND_AREA of the frame), and nowhere
  else. A frame *paints a character in a background colour* when one of its regions (the region map when
  the case has one, else the regions of the frame's line art) of at least `min_area` pixels is not
  background in the truth (at most half its pixels in the colours the keyframe's background owns: has
  more pixels of than its other regions, `background_owned`; the lighter tones of a sky's gradient that
  also show between a character's limbs are the sky's) but is in the output (more than half in background
  colours). The case figure is the longest run of consecutive frames that do.
"""

from __future__ import annotations

import cv2
import numpy as np

from colorize import images
from colorize.regions.segment import ink_u8

BACKGROUND_AREA = 0.05  # share of the frame a keyframe region needs to count as background
BACKGROUND_MIN_AREA = 0.0005  # share of the frame a region needs to count as a character part
QUANT = 3  # background colours compare the top 8 - QUANT bits of each channel


def off_lines(line: np.ndarray) -> np.ndarray:
    """H×W bool: pixels off the line art (RGBA frame), the line pixels (any ink) dilated by 1 px."""
    on = (ink_u8(line) > 0).astype(np.uint8)
    return cv2.dilate(on, np.ones((3, 3), np.uint8)) == 0


def quantized(image: np.ndarray) -> np.ndarray:
    """H×W int64 colour codes of an image over white, QUANT low bits of each channel dropped."""
    rgb = images.to_uint8(images.over_white(image)).astype(np.int64) >> QUANT
    bits = 8 - QUANT
    return (rgb[..., 0] << (2 * bits)) | (rgb[..., 1] << bits) | rgb[..., 2]


def open_background(ids: np.ndarray, area: float = BACKGROUND_AREA) -> np.ndarray:
    """H×W bool: pixels of the background regions of `ids` (H×W, 0 = lines): regions touching two or more
    frame edges with at least `area` of the frame."""
    n = int(ids.max()) + 1
    edges = np.zeros(n, np.int64)
    for side in (ids[0], ids[-1], ids[:, 0], ids[:, -1]):
        edges[np.unique(side)] += 1
    big = (edges >= 2) & (np.bincount(ids.ravel(), minlength=n) >= area * ids.size)
    big[0] = False
    return big[ids]


def background_colors(keyframe: np.ndarray, ids: np.ndarray, area: float = BACKGROUND_AREA) -> np.ndarray:
    """Sorted colour codes (`quantized`) the keyframe has only in its background regions: regions of `ids`
    (H×W, 0 = lines) touching two or more frame edges with at least `area` of the frame."""
    codes, inside = quantized(keyframe), open_background(ids, area)
    return np.setdiff1d(np.unique(codes[inside]), np.unique(codes[~inside & (ids > 0)]))


def background_owned(keyframe: np.ndarray, ids: np.ndarray, area: float = BACKGROUND_AREA) -> np.ndarray:
    """Sorted colour codes (`quantized`) the keyframe's background regions (as in `background_colors`) have
    more pixels of than its other regions: the background's own colours, the tones of its gradient that
    also show through a gap in a character included (what the truth of a region must mostly have to be
    background)."""
    codes, inside = quantized(keyframe), open_background(ids, area)
    size = 1 << (3 * (8 - QUANT))
    mine = np.bincount(codes[inside], minlength=size)
    others = np.bincount(codes[~inside & (ids > 0)], minlength=size)
    return np.flatnonzero(mine > others)


def painted_background(
    result: np.ndarray,
    truth: np.ndarray,
    ids: np.ndarray,
    colors: np.ndarray,
    min_area: int,
    truth_colors: np.ndarray | None = None,
) -> int:
    """Regions of `ids` (>= `min_area` px, id 0 = lines, not counted) that are not background in the truth
    (at most half their pixels in `truth_colors`, by default `colors`) but are in the result (more than
    half in `colors`)."""
    n = int(ids.max()) + 1
    flat = ids.ravel()
    area = np.bincount(flat, minlength=n)
    share = []
    for image, codes in ((truth, colors if truth_colors is None else truth_colors), (result, colors)):
        hits = np.isin(quantized(image), codes).ravel()
        share.append(np.bincount(flat, weights=hits, minlength=n) * 2 > area)
    bad = ~share[0] & share[1] & (area >= max(1, min_area))
    bad[0] = False
    return int(bad.sum())


def longest_run(frames: list[int]) -> int:
    """Longest run of consecutive frame numbers in `frames`."""
    best = run = 0
    prev = None
    for f in sorted(set(frames)):
        run = run + 1 if prev is not None and f == prev + 1 else 1
        best, prev = max(best, run), f
    return best
