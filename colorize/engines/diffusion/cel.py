"""Cel finish: snap a diffusion result to one flat color per line-art region.

Regions come from the flat engine's segmentation (`regions.segment`), so cel finish and the flat engine
agree on what a paint-bucket area is. Each region takes the mean color of the result inside it (integer
arithmetic on bincounts: exact and order-independent). Colour-trace lines are filled as the flat engine
fills them (`regions.lines`: a shadow line takes the darker of the regions it separates, a highlight line
the lighter, from those means); other line pixels keep the result's color.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def cel_apply(image: np.ndarray, cel: CelRegions) -> np.ndarray:
    """One color per region of `cel` in `image` (H×W×3 uint8); trace lines filled by their roles, other
    line pixels keep theirs."""
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
        for i, color in enumerate(lw.fixed):
            out[role == FIXED + i] = ((color >> 16) & 255, (color >> 8) & 255, color & 255)
    return out


def cel_finish(
    image: np.ndarray,
    lineart: np.ndarray,
    flat: FlatSettings | None = None,
    trace: TraceLineSettings | None = None,
) -> np.ndarray:
    """One color per region of `lineart` (H×W×4) in `image` (H×W×3 uint8), trace lines filled."""
    return cel_apply(image, cel_regions(lineart, flat, trace))
