"""Regions as the flat engine's chains color them: each drawing's segmentation, with lost lines cut back in.

A line the drawing (or its extraction from a colour frame) lost lets one region take in areas the drawing
before painted differently, whole: trousers that slid over a fence of the same dark tone, a shirt whose
outline broke against the rail. One color cannot be right for such a region. `regions.leaks.joined_parts`
finds them (the region is the one successor of each area) and `regions.leaks.split_joined` cuts them along
where the areas land.

Which drawing a cut is judged against must not depend on what is run: a frame's regions are a function of
the shot alone, so whole runs and `--frames` chunks paint the same. The walk goes forward from the span's
first keyframe, one drawing after the other (`walk`): each drawing is cut against the regions of the one
before it, with the keyframe's colors carried along roughly (each region takes the color of the region
before where most of its pixels land: enough to tell whether two areas are painted differently). A drawing
of a span keyframe keeps that keyframe's regions; a drawing shown again keeps its first showing's cuts.
Frames before the first keyframe keep their segmentation as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from colorize.flow import Correspondence
from colorize.regions.leaks import joined_parts, landing_pairs, split_joined
from colorize.regions.palette import NO_COLOR
from colorize.regions.propagate import color_votes
from colorize.regions.segment import Segmentation


@dataclass(frozen=True)
class Cut:
    """What the cuts changed in a segmentation: the new label of each changed pixel (a few thousand)."""

    count: int  # regions after the cut
    at: np.ndarray  # (k,) int64 flat pixel indices
    labels: np.ndarray  # (k,) their labels

    @classmethod
    def between(cls, seg: Segmentation, cut: Segmentation) -> Cut:
        at = np.flatnonzero(seg.labels.ravel() != cut.labels.ravel())
        return cls(cut.count, at, cut.labels.ravel()[at])

    def apply(self, seg: Segmentation) -> Segmentation:
        """`seg` with the cut made again (a new Segmentation; its cache keeps what depends on the ink only)."""
        labels = seg.labels.copy()
        labels.ravel()[self.at] = self.labels
        areas = np.bincount(labels.ravel(), minlength=self.count + 1).astype(np.int64)
        out = Segmentation(labels=labels, count=self.count, areas=areas, ink=seg.ink)
        out.cache.update({k: v for k, v in seg.cache.items() if _ink_only(k)})
        return out


def _ink_only(key: object) -> bool:
    """Cache entries of a segmentation that depend on its ink alone (kept by a cut)."""
    name = key[0] if isinstance(key, tuple) else key
    return name in ("signature", "alpha", "colored", "flow_image")


@dataclass(frozen=True)
class Walked:
    """One drawing of the walk: its digest, its cut (None: as segmented) and rough colors per region."""

    digest: bytes
    cut: Cut | None
    colors: np.ndarray


def step(
    seg: Segmentation,
    before: Segmentation,
    before_colors: np.ndarray,
    where: Correspondence,
    min_region: int,
) -> tuple[Cut | None, np.ndarray]:
    """The cut of `seg` against the regions `before` of the drawing before (rough colors `before_colors`;
    areas of 2 × `min_region` pixels or more count, as for closing line breaks), and the rough colors of
    its regions after it: the color most of its landing pixels had (areas of no known color aside).
    `where`: positions in `before` of `seg`'s pixels."""
    full = where.full()
    pairs, src = landing_pairs(seg, before, full)
    parts = joined_parts(seg, before, pairs, before_colors, 2 * max(1, min_region))
    cut_seg = split_joined(seg, src, parts, min_region) if parts else None
    cut = None
    if cut_seg is not None:
        pairs, _ = landing_pairs(cut_seg, before, full)
        cut = Cut.between(seg, cut_seg)
    # Landing pixels per color of the drawing before (pixels landing in unknown colors count for none).
    palette, index = np.unique(before_colors, return_inverse=True)
    by_color = color_votes(pairs, index, len(palette))
    by_color[:, palette == NO_COLOR] = 0
    best = by_color.argmax(axis=1)
    colors = palette[best]
    colors[by_color[np.arange(len(best)), best] == 0] = NO_COLOR  # none landed in a known color
    colors[0] = NO_COLOR
    return cut, colors


def walk(
    frames: list[int],
    walked: dict[int, Walked],
    digest: Callable[[int], bytes],
    key_colors: dict[bytes, np.ndarray],
    advance: Callable[[int, Walked], tuple[Cut | None, np.ndarray]],
) -> None:
    """Walk `frames` (the span's first keyframe, then each frame up to the one wanted, in shot order)
    filling `walked` (frame → Walked) where it is missing. `key_colors`: the span keyframes' colors by
    their drawings' digests (those drawings keep their own regions); `advance(frame, before)` cuts
    `frame` against the frame walked before it (`step`)."""
    start = max((i for i, f in enumerate(frames) if f in walked), default=None)
    if start is None:
        first = frames[0]
        walked[first] = _key_walked(digest(first), key_colors)
        start = 0
    seen = {w.digest: w for w in walked.values()}
    for i in range(start + 1, len(frames)):
        f, before = frames[i], frames[i - 1]
        d = digest(f)
        if d in key_colors:
            walked[f] = _key_walked(d, key_colors)
        elif d in seen:
            walked[f] = seen[d]
        else:
            walked[f] = seen[d] = Walked(d, *advance(f, walked[before]))


def _key_walked(d: bytes, key_colors: dict[bytes, np.ndarray]) -> Walked:
    return Walked(d, None, key_colors[d])


def rejoin(
    seg: Segmentation,
    raw: Segmentation,
    colors: np.ndarray,
    conf: np.ndarray,
    origin: np.ndarray,
    low: np.float32,
) -> np.ndarray:
    """Pieces of a cut region (`seg`, cut from `raw`) left without a color take the color (and origin) of
    the region's largest colored piece, at confidence `low`: a cut keeps known colors apart, it never
    leaves a piece unresolved that the whole region would have colored (a background a turning head
    uncovered, which the walk took for the hair it came from behind). In place; returns the labels that
    took a color."""
    parent = np.zeros(seg.count + 1, np.int64)
    parent[seg.labels.ravel()] = raw.labels.ravel()  # a cut only splits: one parent per piece
    parent[0] = 0
    todo = np.flatnonzero((colors == NO_COLOR) & (parent > 0))
    if len(todo) == 0:
        return todo
    colored = np.flatnonzero((colors != NO_COLOR) & (parent > 0))
    largest: dict[int, int] = {}
    for label in colored[np.argsort(seg.areas[colored], kind="stable")]:
        largest[int(parent[label])] = int(label)  # the largest colored piece last: it stays
    took = [label for label in todo if int(parent[label]) in largest]
    for label in took:
        sibling = largest[int(parent[label])]
        colors[label], conf[label], origin[label] = colors[sibling], low, origin[sibling]
    return np.asarray(took, np.int64)
