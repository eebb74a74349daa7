"""Region colors: dominant color of each region in a colored image, reference palettes.

Colors travel as packed ints (0xAARRGGBB in int64) so per-region statistics are bincounts; every fully
transparent pixel packs to 0 (TRANSPARENT) whatever its RGB, and -1 means "no color" (unresolved).

16-bit colors (for 16-bit output from 16-bit sources) pack into uint64 as 0xAAAABBBBGGGGRRRR, the bytes of
one little-endian RGBA uint16 pixel (so a table of them views back as RGBA rows); alpha 0 packs to 0 too.
Matching and propagation work on the 8-bit packed colors; a 16-bit color only rides along with the region
it belongs to (`deep_colors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from colorize.colormodel import Palette

NO_COLOR = -1
TRANSPARENT = 0
OPAQUE = 0xFF000000


def pack_color(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB or H×W×4 RGBA uint8 -> H×W int64 0xAARRGGBB (RGB is opaque; alpha 0 packs to 0)."""
    view = np.ascontiguousarray(image)
    if view.shape[-1] == 3:
        rgb = view.astype(np.int64)
        return OPAQUE | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    # Little-endian bytes R, G, B, A read as one uint32 are 0xAABBGGRR: swap R and B.
    abgr = view.view(np.uint32)[..., 0].astype(np.int64)
    packed = (abgr & 0xFF00FF00) | ((abgr & 0xFF) << 16) | ((abgr >> 16) & 0xFF)
    packed[packed < 0x01000000] = TRANSPARENT
    return packed


def parse_hex(color: str) -> int:
    """'#rrggbb' -> packed opaque color."""
    return OPAQUE | int(color.lstrip("#"), 16)


def dominant_colors(
    labels: np.ndarray, count: int, image: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Most frequent color of `image` (H×W×3 RGB or ×4 RGBA) inside each region 1..count.

    Returns (colors, share): packed colors per label (index 0 and empty regions: NO_COLOR) and the share of
    the region's counted pixels that have that color. `valid` limits which pixels count.
    """
    packed = pack_color(image).ravel()
    lab = labels.ravel()
    sel = lab > 0 if valid is None else (lab > 0) & valid.ravel()
    return _mode_per_label(lab[sel], packed[sel], count, NO_COLOR)


def _mode_per_label(
    lab: np.ndarray, packed: np.ndarray, count: int, none: int
) -> tuple[np.ndarray, np.ndarray]:
    """(most frequent value of `packed` per label 1..count (`none` where a label has no pixel), its share)."""
    colors = np.full(count + 1, none, packed.dtype)
    share = np.zeros(count + 1, np.float32)
    if lab.size == 0:
        return colors, share
    # Colors to a small index first (keyframes are flat: tens of colors), then one 2-D bincount.
    palette, idx = np.unique(packed, return_inverse=True)
    n_pal = len(palette)
    if (count + 1) * n_pal <= 50_000_000:
        votes = np.bincount(lab.astype(np.int64) * n_pal + idx, minlength=(count + 1) * n_pal)
        votes = votes.reshape(count + 1, n_pal)
        best = votes.argmax(axis=1)
        top = votes[np.arange(count + 1), best]
        total = votes.sum(axis=1)
    else:
        # Painted (non-flat) keyframes: sort (label, color) pairs instead of a dense table.
        key = lab.astype(np.int64) * n_pal + idx
        uniq, cnt = np.unique(key, return_counts=True)
        ulab = uniq // n_pal
        order = np.lexsort((-cnt, ulab))
        first = order[np.r_[True, ulab[order][1:] != ulab[order][:-1]]]
        best = np.zeros(count + 1, np.int64)
        top = np.zeros(count + 1, np.int64)
        best[ulab[first]] = uniq[first] % n_pal
        top[ulab[first]] = cnt[first]
        total = np.bincount(lab, minlength=count + 1)
    has = total > 0
    has[0] = False
    colors[has] = palette[best[has]]
    share[has] = top[has] / total[has]
    return colors, share


def pack_color16(image: np.ndarray) -> np.ndarray:
    """H×W×4 RGBA uint16 -> H×W uint64 packed 16-bit colors (see the module docstring; alpha 0 packs to 0)."""
    packed = np.ascontiguousarray(image, dtype=np.uint16).view(np.uint64)[..., 0]
    return np.where(image[..., 3] == 0, np.uint64(0), packed)


def unpack_color16(packed: np.ndarray) -> np.ndarray:
    """(n,) uint64 packed 16-bit colors -> (n, 4) RGBA uint16."""
    return np.ascontiguousarray(packed, dtype=np.uint64).view(np.uint16).reshape(-1, 4)


def widen(colors: np.ndarray) -> np.ndarray:
    """8-bit packed colors (no NO_COLOR) -> the same colors as packed 16-bit (each channel × 257)."""
    c = colors.astype(np.int64)
    rgba = np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255, (c >> 24) & 255], axis=-1)
    return pack_color16((rgba * 257).astype(np.uint16))


def deep_colors(
    labels: np.ndarray, colors: np.ndarray, image8: np.ndarray, image16: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """The 16-bit color each region's 8-bit color stands for (packed uint64 per label).

    `colors`: a region's packed 8-bit color, as `dominant_colors` found it in `image8` (the 8-bit rounding
    of the RGBA uint16 `image16`). A region's 16-bit color is the most frequent 16-bit color among its
    `valid` pixels that have that 8-bit color, else among all its pixels that have it, else the 8-bit color
    widened (label 0 and regions without a color: 0).
    """
    count = len(colors) - 1
    out = np.zeros(count + 1, np.uint64)
    has = colors != NO_COLOR
    has[0] = False
    out[has] = widen(colors[has])
    packed8, packed16, lab = pack_color(image8).ravel(), pack_color16(image16).ravel(), labels.ravel()
    mine = (lab > 0) & (packed8 == np.take(colors, lab))
    found = np.zeros(count + 1, bool)
    for where in (mine & valid.ravel(), mine):
        best, share = _mode_per_label(lab[where], packed16[where], count, 0)
        take = (share > 0) & ~found
        out[take] = best[take]
        found |= take
    return out


def reference_palette(reference: np.ndarray, size: int = 8, mask: np.ndarray | None = None) -> np.ndarray:
    """Dominant colors of a reference image, most frequent first (packed ints).

    Colors are binned at 5 bits per channel (32768 bins, one bincount) and each bin reports its mean color;
    deterministic and fast, unlike k-means.
    """
    rgb = reference.reshape(-1, 3) if mask is None else reference[mask]
    if len(rgb) == 0:
        return np.zeros(0, np.int64)
    q = rgb.astype(np.int32) >> 3
    bins = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    cnt = np.bincount(bins, minlength=32768)
    sums = np.stack([np.bincount(bins, weights=rgb[:, c], minlength=32768) for c in range(3)], axis=1)
    order = np.argsort(-cnt, kind="stable")
    order = order[cnt[order] > 0][:size]
    mean = np.round(sums[order] / cnt[order, None]).astype(np.int64)
    return OPAQUE | (mean[:, 0] << 16) | (mean[:, 1] << 8) | mean[:, 2]


def on_model(palette: Palette, colors: np.ndarray) -> np.ndarray:
    """Packed colors (int64, NO_COLOR and TRANSPARENT kept) snapped to the nearest colour of a colour model
    (`colorize.colormodel`: CIELAB ΔE plus alpha)."""
    out = colors.astype(np.int64, copy=True)
    real = (out != NO_COLOR) & (out != TRANSPARENT)
    if not real.any():
        return out
    uniq, inverse = np.unique(out[real], return_inverse=True)
    rgba = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255, (uniq >> 24) & 255], axis=-1)
    snapped = palette.rgba[palette.nearest(rgba.astype(np.uint8))].astype(np.int64)
    packed = (snapped[:, 3] << 24) | (snapped[:, 0] << 16) | (snapped[:, 1] << 8) | snapped[:, 2]
    packed[snapped[:, 3] == 0] = TRANSPARENT
    out[real] = packed[inverse.ravel()]
    return out
