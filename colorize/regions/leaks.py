"""Leaky regions: a keyframe's colors say where the segmentation merged areas through a line gap.

A keyframe is painted region by region, so one line-enclosed region holds one color (flat cels) or a
smooth shading of one. A region of the segmentation in which two or more flat colors each cover a large
share has leaked through a gap the segmentation did not close (a scan's break, an aliased export): the
flat engine would carry one of them into all of it. `colorize check` reports such regions of the keyframes
(with the line art only, nothing tells a leak from a large region, so the keyframes are the evidence).

Between keyframes, a gap that *opens* shows against the drawing before (`merged_regions`): a region that
covers most of two regions the line art kept apart there, while most of the line between them is still
drawn, joins them through the rest of it (`colorize check --gaps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from colorize.regions.palette import NO_COLOR, pack_color
from colorize.regions.segment import Segmentation, region_boxes

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


MERGE_COVER = 0.6  # a region that covers this share of each of two regions of the drawing before joins them
LINE_KEPT = 0.75  # ... through a gap when this share of the line between them is still drawn
MERGE_MOST = 6  # the largest regions a region joins that are looked at (pairs among them)
GAP_MIN = 4  # pixels of line missing, fewer: a line end that resampling moved by a pixel, not a gap


@dataclass(frozen=True)
class Merge:
    label: int
    area: int  # pixels
    at: tuple[int, int]  # (x, y) of a pixel of the gap: where the line between them is missing
    gap: int  # pixels of that line (widened by 2 px on each side) missing in this drawing
    between: tuple[int, int]  # the two regions of the drawing before it joins


def landing_pairs(
    seg: Segmentation, before: Segmentation, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of each region of `seg` landing in each region of `before`, an n × k array; the region of
    `before` each pixel of `seg` lands in, 0 on its lines). `where`: H×W×2 positions in `before` of
    `seg`'s pixels (a `flow.Correspondence`'s `full()`); a position is read at its nearest pixel, outside
    the frame at the nearest edge pixel."""
    n, k = seg.count + 1, before.count + 1
    narrow, narrow_before = seg.labels16, before.labels16
    if narrow is not None and narrow_before is not None and n * k < 1 << 31:
        # OpenCV's remap and integer images: several times faster than numpy fancy indexing at 1080p.
        src = cv2.remap(narrow_before, where, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        pair = narrow.astype(np.int32)
        pair *= k
        pair += src
        pairs = np.bincount(pair.ravel(), minlength=n * k).reshape(n, k)
        pairs[0] = 0  # lines of `seg`
        pairs[:, 0] = 0  # landing on lines of `before`
        return pairs, src.astype(before.labels.dtype)
    h, w = seg.labels.shape
    xs = np.clip(np.rint(where[..., 0]).astype(np.int32), 0, w - 1)
    ys = np.clip(np.rint(where[..., 1]).astype(np.int32), 0, h - 1)
    src = before.labels[ys, xs]
    landed = (seg.labels > 0) & (src > 0)
    flat = seg.labels[landed].astype(np.int64) * k + src[landed]
    return np.bincount(flat, minlength=n * k).reshape(n, k), src


def carried(pairs: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Per region of a drawing, the color (`colors`: per region of the drawing before) of the region before
    where most of its pixels land (`pairs` from `landing_pairs`); NO_COLOR where none land."""
    out = colors[pairs.argmax(axis=1)]
    out[pairs.sum(axis=1) == 0] = NO_COLOR
    out[0] = NO_COLOR
    return out


def merged_regions(
    seg: Segmentation, before: Segmentation, pairs: np.ndarray, src: np.ndarray
) -> list[Merge]:
    """Regions of `seg` that join two regions of the drawing before through a gap in the line between them.

    `pairs`, `src`: how `seg` lands in `before` (`landing_pairs`). A region that covers MERGE_COVER or
    more of each of two regions of `before` (of at least LEAK_AREA of the frame) that a line kept apart,
    where LINE_KEPT or more of that line is still drawn here: the two areas leak into each other through
    the rest of it (GAP_MIN pixels or more). When the line is gone (an arm that parted the sky moved
    away), or the two regions were not neighbours across a line, the join is the drawing's, not a gap's.
    Largest first."""
    big = before.areas >= LEAK_AREA * seg.labels.size
    big[0] = False
    covers = (pairs >= MERGE_COVER * np.maximum(before.areas, 1)[None, :]) & big[None, :]
    out = []
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for label in np.flatnonzero(covers.sum(axis=1) >= 2):
        joined = np.flatnonzero(covers[label])
        joined = joined[np.argsort(-before.areas[joined], kind="stable")][:MERGE_MOST]
        near = [cv2.dilate((src == j).view(np.uint8), kernel) for j in joined]
        was = [cv2.dilate((before.labels == j).view(np.uint8), kernel) for j in joined]
        best: Merge | None = None
        for i in range(len(joined)):
            for j in range(i + 1, len(joined)):
                # The line between them in the drawing before, and where it lands here.
                drawn = int(np.count_nonzero((before.labels == 0) & (was[i] > 0) & (was[j] > 0)))
                line = (src == 0) & (near[i] > 0) & (near[j] > 0)
                missing = line & (seg.ink == 0)
                gap = int(np.count_nonzero(missing))
                kept = int(np.count_nonzero(line)) - gap
                if drawn < 4 or gap < GAP_MIN or kept < LINE_KEPT * drawn:
                    continue
                _, parts, stats, _ = cv2.connectedComponentsWithStats(missing.view(np.uint8), connectivity=8)
                gy, gx = np.nonzero(parts == int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) + 1)
                m = len(gy) // 2  # a pixel of its largest piece
                if best is None or gap < best.gap:
                    at = (int(gx[m]), int(gy[m]))
                    best = Merge(int(label), int(seg.areas[label]), at, gap, (int(joined[i]), int(joined[j])))
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda m: -m.area)


SUCCESSOR = 0.8  # a region takes this share of everything that lands in a region before: its one successor
PIECE_DRAWN = 0.5  # a piece cut out keeps this share of its outline drawn, at least (the rest is the cut)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def joined_parts(
    seg: Segmentation,
    before: Segmentation,
    pairs: np.ndarray,
    colors: np.ndarray,
    min_area: int,
) -> dict[int, np.ndarray]:
    """Regions of `seg` that are the one successor of two or more differently colored areas of the
    drawing before: {label: those regions of `before`, largest first}.

    A line that the drawing (or the line extraction) lost lets one region of this drawing take in areas the
    drawing before painted differently: trousers that slid over a fence of the same dark tone, a shirt
    whose outline broke, a 1-px sliver of shadow that an aliased export opened into the hair. Each of
    those areas (`min_area` pixels or more) lands MERGE_COVER or more inside the region, and SUCCESSOR or
    more of all that lands in it comes from the region: nothing else in this drawing continues it. (A hand
    that moved away leaves sky where it was, but the hand goes on in its own region: the sky is not its
    one successor; where the flow did not follow the hand, `split_joined` tells by the outline.) `pairs`
    from `landing_pairs`; `colors` per region of `before` (NO_COLOR: unknown, never counted)."""
    big = (before.areas >= min_area) & (colors != NO_COLOR)
    big[0] = False
    landed = np.maximum(pairs.sum(axis=0), 1)
    covers = (pairs >= MERGE_COVER * np.maximum(before.areas, 1)[None, :]) & big[None, :]
    covers &= pairs >= SUCCESSOR * landed[None, :]
    covers[0] = False
    out = {}
    for label in np.flatnonzero(covers.sum(axis=1) >= 2):
        joined = np.flatnonzero(covers[label])
        if len(np.unique(colors[joined])) < 2:
            continue  # one paint either way: nothing to keep apart
        out[int(label)] = joined[np.argsort(-before.areas[joined], kind="stable")]
    return out


def _drawn_share(piece: np.ndarray, cut: np.ndarray, drawn: np.ndarray, edge: np.ndarray) -> float:
    """The share of a piece's outline that is drawn (ink, or the frame's edge) rather than cut."""
    ring = (cv2.dilate(piece.view(np.uint8), _CROSS) > 0) & ~piece
    lined = int(np.count_nonzero(ring & drawn)) + int(np.count_nonzero(piece & edge))
    return lined / max(1, lined + int(np.count_nonzero(ring & cut)))


def split_joined(
    seg: Segmentation, src: np.ndarray, parts: dict[int, np.ndarray], min_region: int
) -> Segmentation | None:
    """`seg` with each region of `parts` (`joined_parts`) cut into the areas of the drawing before: a pixel
    belongs to the area it lands in (`src`, from `landing_pairs`), pixels landing elsewhere (lines, small
    regions) to the nearest area inside the region. The cut is a 1-pixel line of label 0 (paint fills it
    like a line, no ink is drawn), so the next drawing sees the areas kept apart by a line, as drawn.

    An area whose (largest) piece has less than PIECE_DRAWN of its outline drawn (ink or the frame's edge)
    is not cut out: the drawing does not outline it there — a part that moved away, which the flow did not
    follow, leaves its old place to the sky — rather than a line lost between parts it does outline; the
    others are cut again without it. Pieces under `min_region` pixels become label 0 too. The largest
    piece keeps the region's label, the others take new labels after `seg.count`. None when nothing was
    cut."""
    labels = seg.labels.copy()
    count = seg.count
    asked = np.zeros(seg.count + 1, np.uint8)
    asked[list(parts)] = 1
    for label, rows, cols in region_boxes(seg.labels, seg.per_pixel(asked), 0):
        joined = parts[label]
        inside = seg.labels[rows, cols] == label
        edge = np.zeros(inside.shape, bool)  # the frame's edge bounds a piece as a line does
        edge[:, 0] |= cols.start == 0
        edge[:, -1] |= cols.stop == labels.shape[1]
        edge[0] |= rows.start == 0
        edge[-1] |= rows.stop == labels.shape[0]
        pieces = _pieces(inside, src[rows, cols], list(joined[:254]), seg.ink[rows, cols] > 0, edge)
        if pieces is None:
            continue
        n, comp, areas = pieces
        kept = np.flatnonzero(areas >= max(1, min_region))
        if len(kept) < 2:
            continue
        kept = kept[np.argsort(-areas[kept], kind="stable")]
        lut = np.zeros(n, labels.dtype)
        lut[kept[0]] = label
        lut[kept[1:]] = np.arange(count + 1, count + len(kept), dtype=labels.dtype)
        count += len(kept) - 1
        box = labels[rows, cols]
        box[inside] = lut[comp[inside]]
    if count == seg.count:
        return None
    areas = np.bincount(labels.ravel(), minlength=count + 1).astype(np.int64)
    return Segmentation(labels=labels, count=count, areas=areas, ink=seg.ink)


def _pieces(
    inside: np.ndarray, land: np.ndarray, joined: list[int], drawn: np.ndarray, edge: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(n, components, their sizes (0 for the background)) of a region (`inside`, a box of it) cut into the
    areas of `joined` it lands in (`land`), areas the drawing does not outline left out one by one
    (`split_joined`); None: not cut."""
    while len(joined) >= 2:
        part = np.zeros(inside.shape, np.uint8)
        for i, j in enumerate(joined):
            part[inside & (land == j)] = i + 1
        todo = inside & (part == 0)
        while todo.any():  # grow the areas into the rest of the region (geodesic nearest)
            grown = cv2.dilate(part, _CROSS)
            take = todo & (grown > 0)
            if not take.any():
                break
            part[take] = grown[take]
            todo &= ~take
        # The cut: pixels with a 4-neighbour in an area of a lower number.
        cut = np.zeros(inside.shape, bool)
        for i in range(1, len(joined)):
            cut |= (part > i) & (cv2.dilate((part == i).view(np.uint8), _CROSS) > 0)
        keep = inside & ~cut & (part > 0)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(keep.view(np.uint8), connectivity=4)
        size = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
        size[0] = 0
        main = np.zeros(len(joined) + 1, np.int64)  # each area's largest piece
        np.maximum.at(main, part[comp > 0].astype(np.int64), size[comp[comp > 0]])
        shares = {}
        for i in range(1, len(joined) + 1):
            if main[i] == 0:
                continue
            pick = np.flatnonzero((size == main[i]) & (np.bincount(comp[part == i], minlength=n) > 0))[0]
            shares[i] = _drawn_share(comp == pick, cut, drawn, edge)
        bad = [i for i, v in shares.items() if v < PIECE_DRAWN]
        if not bad:
            return (n, comp, size) if len(shares) >= 2 else None
        worst = min(bad, key=lambda i: (main[i], i))  # the smallest such area first
        joined = [j for i, j in enumerate(joined, start=1) if i != worst]
    return None
