"""Cel finish: snap a diffusion result to one flat color per line-art region.

Regions come from the flat engine's segmentation (`regions.segment`), so cel finish and the flat engine
agree on what a paint-bucket area is. Each region takes the mean color of the result inside it (integer
arithmetic on bincounts: exact and order-independent). Colour-trace lines are filled as the flat engine
fills them (`regions.lines`: a shadow line takes the darker of the regions it separates, a highlight line
the lighter, from those means); other line pixels keep the result's color. With a colour model
(`palette`) each region's color snaps to the nearest palette colour (CIELAB ΔE) before trace lines take
theirs, so trace lines are on model too.

Post-processing of a finished frame lives here too (`keep_alpha`: the shot's transparency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colorize.colormodel import Palette
from colorize.images import to_uint8
from colorize.regions.lines import FIXED, LineRoles, LineWork, classify, trace_labels
from colorize.regions.palette import NO_COLOR, OPAQUE
from colorize.regions.segment import line_layers, segment_ink
from colorize.settings import FlatSettings, TraceLineSettings


@dataclass(frozen=True)
class CelRegions:
    """The line-art half of cel finish, computable ahead: regions (0 = line), lines filled, line roles."""

    labels: np.ndarray  # H×W int (0 = line)
    filled: np.ndarray  # H×W: labels with line pixels given a neighbouring region's
    lines: LineWork
    main: np.ndarray  # H×W bool: the main-line pixels (line pixels that are not trace lines)


def cel_regions(
    lineart: np.ndarray, flat: FlatSettings | None = None, trace: TraceLineSettings | None = None
) -> CelRegions:
    """Regions and line roles of `lineart` (H×W×4 uint8)."""
    flat = flat or FlatSettings()
    ink, colored, in_alpha = line_layers(lineart)
    seg = segment_ink(
        ink, gap_close=flat.gap_close, min_region=flat.min_region, line_threshold=flat.line_threshold
    )
    roles = LineRoles.from_settings(trace or TraceLineSettings())
    lines = classify(lineart, ink, colored, in_alpha, seg.labels, roles, flat.line_threshold)
    filled = seg.filled16 if seg.filled16 is not None else seg.filled
    main = (ink > 0) & (lines.role == 0)
    return CelRegions(seg.labels, filled, lines, main)


def cel_apply(image: np.ndarray, cel: CelRegions, palette: Palette | None = None) -> np.ndarray:
    """One color per region of `cel` in `image` (H×W×3 uint8); trace lines filled by their roles, other
    line pixels keep theirs. With a colour model, each region's mean snaps to the nearest palette colour
    (CIELAB ΔE, `Palette.nearest`), so the result is on model."""
    labels = cel.labels
    flat_labels = labels.ravel()
    n = int(labels.max()) + 1
    counts = np.maximum(np.bincount(flat_labels, minlength=n), 1)
    flat_colors = np.stack(
        [
            np.bincount(flat_labels, weights=image[..., c].ravel().astype(np.int64), minlength=n)
            for c in range(3)
        ],
        axis=1,
    )
    # Rounded integer mean: (sum + count/2) // count.
    means = ((flat_colors.astype(np.int64) + counts[:, None] // 2) // counts[:, None]).astype(np.uint8)
    if palette is not None:
        opaque = np.column_stack([means, np.full(len(means), 255, np.uint8)])
        means = palette.rgba[palette.nearest(opaque), :3]
    out = means[labels]
    lines = labels == 0
    out[lines] = image[lines]
    lw = cel.lines
    if lw.count:
        m = means.astype(np.int64)
        packed = OPAQUE | (m[:, 0] << 16) | (m[:, 1] << 8) | m[:, 2]
        packed[0] = NO_COLOR
        filled, _ = trace_labels(lw, labels, cel.filled, packed, NO_COLOR)
        role = lw.role
        shade = (role > 0) & (role < FIXED)
        out[shade] = means[filled[shade]]
        for mask, rgb in lw.fixed_colors():
            out[mask] = rgb
    return out


def cel_finish(
    image: np.ndarray,
    lineart: np.ndarray,
    flat: FlatSettings | None = None,
    trace: TraceLineSettings | None = None,
    palette: Palette | None = None,
) -> np.ndarray:
    """One color per region of `lineart` (H×W×4) in `image` (H×W×3 uint8), trace lines filled."""
    return cel_apply(image, cel_regions(lineart, flat, trace), palette)


def keep_alpha(
    image: np.ndarray, lineart: np.ndarray, keyframe: np.ndarray | None, labels: np.ndarray | None
) -> np.ndarray:
    """`output_alpha: auto` as the flat engine does it: RGB when neither the line art nor the frame's
    keyframe has transparency; else RGBA, where what is transparent in the keyframe stays transparent
    (region by region with cel finish: a region takes its keyframe pixels' most common alpha; else pixel by
    pixel) and the lines keep the line art's alpha over it. Frames without a keyframe are opaque (the
    model paints every pixel)."""
    from colorize.images import has_transparency

    key = keyframe if keyframe is not None and has_transparency(keyframe) else None
    if key is None and not has_transparency(lineart):
        return image
    alpha = np.full(image.shape[:2], 255, np.uint8)
    if key is not None:
        key_alpha = to_uint8(key)[..., 3]
        if labels is not None:
            n = int(labels.max()) + 1
            clear = np.bincount(labels.ravel(), weights=(key_alpha == 0).ravel(), minlength=n)
            total = np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
            region_alpha = np.where(clear * 2 > total, 0, 255).astype(np.uint8)
            region_alpha[0] = 255
            alpha = region_alpha[labels]
        else:
            alpha = key_alpha.copy()
        line_alpha = to_uint8(lineart)[..., 3]
        if has_transparency(lineart):
            alpha = np.maximum(alpha, line_alpha)
    rgba = np.dstack([image, alpha])
    rgba[alpha == 0, :3] = 0
    return rgba
