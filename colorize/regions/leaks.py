"""Leaky regions: a keyframe's colors say where the segmentation merged areas through a line gap.

A keyframe is painted region by region, so one line-enclosed region holds one color (flat cels) or a
smooth shading of one. A region of the segmentation in which two or more flat colors each cover a large
share has leaked through a gap the segmentation did not close (a scan's break, an aliased export): the
flat engine would carry one of them into all of it. `colorize check` reports such regions of the keyframes
(with the line art only, nothing tells a leak from a large region, so the keyframes are the evidence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colorize.regions.palette import pack_color
from colorize.regions.segment import Segmentation

LEAK_SHARE = 0.2  # a second color covering this share of a region's paper means it leaked
LEAK_AREA = 0.002  # ... in regions of at least this share of the frame (small ones cost a painter seconds)


@dataclass(frozen=True)
class Leak:
    label: int
    area: int  # pixels
    colors: int  # keyframe colors covering LEAK_SHARE or more of it
    at: tuple[int, int]  # (x, y) of a pixel of the region (of its second color: near the leak's far side)


def leaky_regions(seg: Segmentation, keyframe: np.ndarray) -> list[Leak]:
    """Regions of `seg` (the keyframe's own line art) that hold two or more keyframe colors, each on at
    least LEAK_SHARE of their line-free pixels; largest first. `keyframe`: H×W×3/4 uint8."""
    clean = (seg.labels > 0) & (seg.ink == 0)
    lab = seg.labels[clean].astype(np.int64)
    packed_all = pack_color(keyframe)  # once: the loop below reads it for every suspect
    packed = packed_all[clean]
    palette, idx = np.unique(packed, return_inverse=True)
    n, k = seg.count + 1, len(palette)
    if k < 2 or n * k > 50_000_000:
        return []
    votes = np.bincount(lab * k + idx, minlength=n * k).reshape(n, k)
    total = np.maximum(votes.sum(axis=1), 1)
    big = (votes >= LEAK_SHARE * total[:, None]) & (votes > 0)
    many = big.sum(axis=1)
    suspects = np.flatnonzero((many >= 2) & (seg.areas >= LEAK_AREA * seg.labels.size))
    out = []
    for label in suspects[np.argsort(-seg.areas[suspects], kind="stable")]:
        second = np.argsort(-votes[label], kind="stable")[1]
        ys, xs = np.nonzero((seg.labels == label) & (packed_all == palette[second]))
        i = len(ys) // 2
        out.append(Leak(int(label), int(seg.areas[label]), int(many[label]), (int(xs[i]), int(ys[i]))))
    return out
