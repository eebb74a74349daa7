"""Cel finish: snap a diffusion result to one flat color per line-art region.

Regions come from the flat engine's segmentation (`regions.segment`), so cel finish and the flat engine
agree on what a paint-bucket area is. Each region takes the mean color of the result inside it (integer
arithmetic on bincounts: exact and order-independent); line pixels keep the result's color.
"""

from __future__ import annotations

import numpy as np

from colorize.regions.segment import segment
from colorize.settings import FlatSettings


def cel_regions(lineart: np.ndarray, flat: FlatSettings | None = None) -> np.ndarray:
    """Region labels (H×W int, 0 = line) of `lineart` (H×W×4): the line-art half, computable ahead."""
    flat = flat or FlatSettings()
    seg = segment(
        lineart, gap_close=flat.gap_close, min_region=flat.min_region, line_threshold=flat.line_threshold
    )
    return seg.labels


def cel_apply(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One color per region of `labels` in `image` (H×W×3 uint8); line pixels keep theirs."""
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
    return out


def cel_finish(image: np.ndarray, lineart: np.ndarray, flat: FlatSettings | None = None) -> np.ndarray:
    """One color per region of `lineart` (H×W×4) in `image` (H×W×3 uint8)."""
    return cel_apply(image, cel_regions(lineart, flat))
