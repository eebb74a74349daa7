"""Line-art segmentation into line-enclosed regions (the paint-bucket "fill areas").

Pipeline, all vectorised numpy/OpenCV (no per-region Python loops):

1. ink: line strength as uint8 (alpha for transparent line art, darkness of the darkest channel for opaque
   line art, so colored shadow/highlight lines bound regions like black ones).
2. lines = ink >= threshold; regions = 4-connected components of the rest (so 8-connected 1-px lines close).
3. 1-px breaks (`close_breaks`; "auto": on frames whose lines are hard-edged and mostly one pixel thin,
   `breaks_likely`): paper pixels beside a line end that join paper the lines keep apart are
   closed where that parts two regions of at least 2 * min_region pixels (`line_bridges`, `_bridged`), so
   thin regions (hair strands, stripes) too stop leaking through the breaks that scans and
   nearest-neighbour resampling leave, while clean closed line art keeps its regions.
4. gap closing (trapped-ball style, single ball): the line layer is dilated by a disc of radius `gap_close`;
   components of what is left are seeds. A region that holds two or more seeds leaked through a gap: it is
   split by growing the seeds back geodesically inside it, so the cut falls in the middle of the gap.
5. speckles: regions smaller than `min_region` pixels that are enclosed only by specks of ink (8-connected
   ink components under SPECK_INK * min_region pixels: scan noise) become line pixels (they take a
   neighbour's color). Small enclosures drawn by the line network itself are regions like any other.

Label images are uint16 while they have fewer than 65535 labels (every real frame: then OpenCV's 16-bit
lookup tables, histograms and morphology apply; 65535 stays free as "none"), int32 beyond.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from colorize.regions.breaks import breaks_likely, line_bridges

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
SPECK_INK = 4  # an ink component under SPECK_INK * min_region pixels is a speck (noise), not a drawn line
NARROW = 65535  # label images with fewer labels than this are uint16


def _lut16_works() -> bool:
    """Whether this OpenCV has 16-bit lookup tables (cv2.LUT of uint16 through 65536 entries; 4.x lacks it)."""
    try:
        cv2.LUT(np.zeros((1, 1), np.uint16), np.zeros(65536, np.int32))
    except cv2.error:
        return False
    return True


_LUT16 = _lut16_works()
_LUT_TYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)


def lookup(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`table[labels]` for a label image: one value per label spread over the pixels.

    uint16 labels go through OpenCV's 16-bit lookup table (several times faster than `np.take`, which
    converts every index to 64 bits first); other label types, tables of other types: `np.take`.
    """
    if labels.dtype == np.uint16 and _LUT16 and table.dtype.type in _LUT_TYPES:
        full = np.zeros(65536, table.dtype)
        full[: len(table)] = table[:65536]
        return cv2.LUT(labels, full)
    return np.take(table, labels)


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """(labels, count) of the connected components of a 0/1 uint8 mask: uint16 labels below NARROW
    components, int32 from there on."""
    try:
        n, labels = cv2.connectedComponents(mask, connectivity=connectivity, ltype=cv2.CV_16U)
    except cv2.error:  # more (provisional) labels than 16 bits hold
        n, labels = cv2.connectedComponents(mask, connectivity=connectivity, ltype=cv2.CV_32S)
        return (labels.astype(np.uint16), n) if n < NARROW else (labels, n)
    return (labels, n) if n < NARROW else (labels.astype(np.int32), n)


@dataclass
class Segmentation:
    """Regions of one line-art frame. Label 0 is line (or speckle); regions are 1..count."""

    labels: np.ndarray  # H×W int32
    count: int  # number of regions (labels run 1..count)
    areas: np.ndarray  # (count+1,) int64 pixel count per label, areas[0] = line pixels
    ink: np.ndarray  # H×W uint8 line strength (0 = paper, 255 = full line)
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # derived images (see propagate)

    @property
    def filled(self) -> np.ndarray:
        """`labels` with line pixels given a neighbouring region's label (`fill_lines`), int32; cached."""
        if "filled" not in self.cache:
            narrow = self.filled16
            self.cache["filled"] = fill_lines(self.labels) if narrow is None else narrow.astype(np.int32)
        return self.cache["filled"]

    @property
    def filled16(self) -> np.ndarray | None:
        """`filled` as uint16, None from 65535 regions on; cached."""
        labels16 = self.labels16
        if labels16 is None:
            return None
        if "filled16" not in self.cache:
            self.cache["filled16"] = _fill(labels16)
        return self.cache["filled16"]

    @property
    def labels16(self) -> np.ndarray | None:
        """`labels` as uint16 (what OpenCV histograms, remaps and lookup tables take), None from 65535
        regions on."""
        if self.count >= NARROW:
            return None
        if "labels16" not in self.cache:
            self.cache["labels16"] = self.labels.astype(np.uint16)
        return self.cache["labels16"]

    def count_where(self, mask: np.ndarray) -> np.ndarray:
        """Pixels per label (count + 1 entries, int64) where the uint8 `mask` is non-zero."""
        narrow = self.labels16
        return _areas(self.labels if narrow is None else narrow, self.count + 1, mask)

    def per_pixel(self, table: np.ndarray, filled: bool = False) -> np.ndarray:
        """`table[labels]` (or `table[filled]`): per-label values spread over the frame (`lookup`)."""
        narrow = self.filled16 if filled else self.labels16
        if narrow is not None:
            return lookup(narrow, table)
        return np.take(table, self.filled if filled else self.labels)


def ink_u8(lineart: np.ndarray) -> np.ndarray:
    """Line strength (0 = paper, 255 = full line) of an RGBA line-art frame: the one ink function.

    Transparent line art (lines in alpha) uses alpha. Opaque line art uses darkness measured by the
    darkest channel, so colored lines (red, blue shadow boundaries) count as lines as much as black ones.
    """
    alpha = cv2.extractChannel(lineart, 3)
    if cv2.minMaxLoc(alpha)[0] < 255:
        return alpha
    # OpenCV per-channel min: numpy's min(axis=-1) is ~50x slower on interleaved uint8; split the whole
    # RGBA (splitting the [..., :3] view makes OpenCV copy it first, 4x slower).
    r, g, b, _ = cv2.split(lineart)
    return cv2.bitwise_not(cv2.min(cv2.min(r, g), b))


def colored_line_mask(lineart: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Pixels of colored (not black/gray) lines: chroma of the un-composited line color above ~0.3."""
    return colored_line_u8(lineart, ink) > 0


def colored_line_u8(lineart: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """`colored_line_mask` as a 0/255 uint8 mask (what OpenCV masked operations take)."""
    return line_layers(lineart, ink)[1]


# Opaque line art over white paper: pixel chroma = line chroma * ink, so a line is colored where
# chroma * 255 > ink * 80, i.e. (chroma being an integer) where chroma > floor(ink * 80 / 255).
_CHROMA_OVER = (np.arange(256) * 80 // 255).astype(np.uint8)


def line_layers(lineart: np.ndarray, ink: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(ink, colored, in_alpha) of an RGBA line-art frame from one split of its channels: `ink_u8`,
    `colored_line_u8` and whether the lines are in alpha (the frame has transparency)."""
    r, g, b, alpha = cv2.split(lineart)  # OpenCV ops on planes: numpy reductions over axis -1 are slow
    lo = cv2.min(cv2.min(r, g), b)
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), lo)
    in_alpha = cv2.minMaxLoc(alpha)[0] < 255
    if ink is None:
        ink = alpha if in_alpha else cv2.bitwise_not(lo)
    if in_alpha:
        # Lines in alpha: the RGB is the line's own color.
        colored = cv2.bitwise_and(cv2.compare(ink, 0, cv2.CMP_GT), cv2.compare(chroma, 80, cv2.CMP_GT))
    else:
        colored = cv2.compare(chroma, cv2.LUT(ink, _CHROMA_OVER), cv2.CMP_GT)  # implies ink > 0
    return ink, colored, bool(in_alpha)


def segment(
    lineart: np.ndarray,
    gap_close: int = 2,
    min_region: int = 12,
    line_threshold: float = 0.4,
    close_breaks: bool | str = False,
) -> Segmentation:
    """Split an RGBA line-art frame into line-enclosed regions; see the module docstring.
    `close_breaks`: True, False or "auto" (`breaks_likely`)."""
    return segment_ink(ink_u8(lineart), gap_close, min_region, line_threshold, close_breaks)


def ink_level(line_threshold: float) -> int:
    """The ink value (0-255) at or above which a pixel is line, for `line_threshold` (0-1)."""
    return max(1, round(line_threshold * 255))


def segment_ink(
    ink: np.ndarray,
    gap_close: int = 2,
    min_region: int = 12,
    line_threshold: float = 0.4,
    close_breaks: bool | str = False,
) -> Segmentation:
    """`segment` of a frame whose ink (`ink_u8`) is known."""
    thr = ink_level(line_threshold)
    lines = cv2.threshold(ink, thr - 1, 1, cv2.THRESH_BINARY)[1]  # 0/1 uint8: ink >= thr
    free = cv2.threshold(ink, thr - 1, 1, cv2.THRESH_BINARY_INV)[1]
    if close_breaks == "auto":
        close_breaks = breaks_likely(ink, lines)
    bridges = line_bridges(lines) if close_breaks else None
    if bridges is not None:
        labels, n = _bridged(free, bridges, max(2 * min_region, 16))
        cv2.bitwise_or(lines, cv2.compare(labels, 0, cv2.CMP_EQ) & free, dst=lines)
        free = cv2.subtract(free, lines)
    else:
        labels, n = _components(free, 4)
    if gap_close > 0 and n > 1:
        labels, n = _split_leaks(labels, n, lines, free, gap_close)
    areas = _areas(labels, n)
    drop = _speckles(labels, areas, lines, min_region)
    if drop.any():
        keep = ~drop
        keep[0] = False
        count = int(keep.sum())
        lut = np.zeros(len(areas), labels.dtype)
        lut[keep] = np.arange(1, count + 1)
        labels = lookup(labels, lut)
        new_areas = np.zeros(count + 1, np.int64)
        new_areas[1:] = areas[keep]
        new_areas[0] = labels.size - new_areas[1:].sum()
        areas = new_areas
    else:
        count = n - 1
    seg = Segmentation(labels=labels.astype(np.int32), count=count, areas=areas, ink=ink)
    if count < NARROW:
        seg.cache["labels16"] = labels if labels.dtype == np.uint16 else labels.astype(np.uint16)
    return seg


def _bridged(free: np.ndarray, bridges: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """(labels, count) of the paper with those gap `bridges` closed that part regions of `side` pixels or
    more; the others stay paper.

    A bridge together with the small pieces of paper (under `side` pixels) it and its neighbouring
    bridges cut off forms a piece: a piece that touches two or more large regions closes a leak between
    them (a gap; a thin channel through which a region leaked, sealed at its ends); one that touches one
    (a notch of a ragged line, a pocket) or none (a thin region of clean art, cut in stretches) changed
    nothing worth a region and is undone.
    """
    labels, n = _components(cv2.subtract(free, bridges), 4)
    areas = _areas(labels, n)
    small = areas < side
    small[0] = False
    large = np.where(small, 0, np.arange(n)).astype(labels.dtype)
    large[0] = 0
    ext = cv2.bitwise_or(bridges, lookup(labels, small.view(np.uint8)))
    nb, comp = cv2.connectedComponents(ext, connectivity=4)
    pts = cv2.findNonZero(ext).reshape(-1, 2)
    h, w = free.shape
    piece = comp[pts[:, 1], pts[:, 0]].astype(np.int64)
    big = lookup(labels, large)
    touches = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ys, xs = np.clip(pts[:, 1] + dy, 0, h - 1), np.clip(pts[:, 0] + dx, 0, w - 1)
        lab = big[ys, xs].astype(np.int64)
        touches.append(np.stack([piece[lab > 0], lab[lab > 0]], axis=1))
    pairs = np.unique(np.concatenate(touches), axis=0)
    keep = np.bincount(pairs[:, 0], minlength=nb) >= 2
    keep[0] = False
    kept = cv2.bitwise_and(bridges, lookup(comp, keep.view(np.uint8)))
    if cv2.countNonZero(kept) == cv2.countNonZero(bridges):
        return labels, n
    return _components(cv2.subtract(free, kept), 4)


def _areas(labels: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Pixel count per label 0..n-1 (int64), of the pixels where the uint8 mask `where` is non-zero if
    given (fewer pixels, less work); a 16-bit histogram where exact, it is ~4x faster than bincount."""
    if n < NARROW and labels.size < 1 << 24:
        narrow = labels if labels.dtype == np.uint16 else labels.astype(np.uint16)
        return cv2.calcHist([narrow], [0], where, [n], [0, n]).ravel().astype(np.int64)
    flat = labels.ravel() if where is None else labels[where > 0]
    return np.bincount(flat, minlength=n).astype(np.int64)


def _speckles(labels: np.ndarray, areas: np.ndarray, lines: np.ndarray, min_region: int) -> np.ndarray:
    """Labels to drop as speckle (they become line pixels): regions under `min_region` pixels whose every
    touching ink component (8-connected line pixels) is a speck under `SPECK_INK * min_region` pixels.

    Clean cel art keeps every enclosure its line network draws, however small (eye highlights, 1-px
    pockets where lines meet); paper trapped in scan noise (a clump of ink dots) goes.
    """
    drop = areas < max(1, min_region)
    drop[0] = False
    if not drop.any():
        return drop
    comp, n8 = _components(lines, 8)
    comp_area = _areas(comp, n8, lines)  # counted on line pixels only (the rest is label 0)
    comp_area[0] = 0
    tiny = lookup(labels, drop.view(np.uint8))  # 0/1 on pixels of small regions
    wide = labels.dtype != np.uint16
    tiny_labels = cv2.copyTo(labels.astype(np.float32) if wide else labels, tiny)  # 0 elsewhere
    near = cv2.dilate(tiny_labels, _CROSS)  # a line pixel next to a small region: that region's label
    pts = cv2.findNonZero(cv2.bitwise_and(lines, cv2.compare(near, 0, cv2.CMP_GT)))
    biggest = np.zeros(len(areas), np.int64)  # largest ink component touching each small region
    if pts is not None:
        pts = pts.reshape(-1, 2)
        xs, ys = pts[:, 0], pts[:, 1]
        np.maximum.at(biggest, near[ys, xs].astype(np.int64), comp_area[comp[ys, xs]])
    return drop & (biggest < SPECK_INK * max(1, min_region))


def region_boxes(labels: np.ndarray, mask: np.ndarray, margin: int) -> Iterator[tuple[int, slice, slice]]:
    """(label, rows, columns) of each region with pixels in `mask` (uint8, nonzero: asked), in label order:
    its bounding box grown by `margin` px and clipped to the frame, all found in one pass over the asked
    pixels (per-region work then costs its box, not the frame)."""
    pts = cv2.findNonZero(mask)
    if pts is None:
        return
    h, w = labels.shape
    pts = pts.reshape(-1, 2)
    lab = labels[pts[:, 1], pts[:, 0]]
    order = np.argsort(lab, kind="stable")
    lab, pts = lab[order], pts[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    x0, y0 = np.minimum.reduceat(pts[:, 0], starts), np.minimum.reduceat(pts[:, 1], starts)
    x1, y1 = np.maximum.reduceat(pts[:, 0], starts), np.maximum.reduceat(pts[:, 1], starts)
    for i, label in enumerate(lab[starts].tolist()):
        ys = slice(max(0, int(y0[i]) - margin), min(h, int(y1[i]) + margin + 1))
        xs = slice(max(0, int(x0[i]) - margin), min(w, int(x1[i]) + margin + 1))
        yield label, ys, xs


def neighbour_regions(
    seg: Segmentation, which: np.ndarray, reach: int = 3, owner: np.ndarray | None = None
) -> np.ndarray:
    """For each label with `which[label]`, the most common other region within `reach` pixels across the
    lines (0 where none); labels not asked for get 0. The work is done in each asked region's own box
    (asked regions are small), so it costs little however large the frame.

    `owner` (per label, e.g. the character whose mask covers it): a neighbour of the same owner comes
    first; others only when there is none."""
    out = np.zeros(seg.count + 1, np.int64)
    which = which.copy()
    which[0] = False
    if not which.any():
        return out
    labels = seg.labels
    mask = seg.per_pixel(which.view(np.uint8))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    for label, ys, xs in region_boxes(labels, mask, reach):
        box = labels[ys, xs]
        near = cv2.dilate((box == label).view(np.uint8), disc)
        # Pixels of other regions (not asked, not line) within reach of this one.
        other = box[(near > 0) & (mask[ys, xs] == 0) & (box > 0)]
        if other.size == 0:
            continue
        cand, cnt = np.unique(other, return_counts=True)
        foreign = np.zeros(len(cand), bool) if owner is None else owner[cand] != owner[label]
        out[label] = cand[np.lexsort((cand, -cnt, foreign))[0]]
    return out


def _split_leaks(
    labels: np.ndarray, n: int, lines: np.ndarray, free: np.ndarray, radius: int
) -> tuple[np.ndarray, int]:
    """Split regions that leak through line gaps narrower than about 2·radius (trapped-ball filling).

    Cores are what a ball of `radius` can reach without touching a line; a region holding several cores may
    leak through a gap. Each core paints the area its ball sweeps (a dilation, which never crosses a line);
    the narrow rest of the region (necks, gaps, tips) goes to a core it touches. Where two cores meet, a
    circle around the meeting point decides: it crosses lines at most 3 times at a gap (two facing line
    ends, or an end facing a line) and 4 or more times at a neck between two lines that pass by; cores
    meeting at a neck are merged back, so closed line art keeps its regions.

    Returns (labels, n): a split region keeps its label for the part with the lowest core id, its other
    parts get the labels n, n+1, ... (so labels stay dense; uint16 below NARROW labels, else int32; the
    `labels` given are updated in place when the type stays). Work is uint16 below 65535 cores (float32
    above) and OpenCV on masks, so a frame-sized leaking region costs a few milliseconds at 1080p.
    """
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    core = cv2.subtract(free, cv2.dilate(lines, disc))
    cores, nb = _components(core, 4)
    if nb <= 2:
        return labels, n
    region_of_core = _region_of_core(cores, nb, labels)
    per_region = np.bincount(region_of_core[1:], minlength=n)
    per_region[0] = 0
    split = per_region >= 2
    if not split.any():
        return labels, n
    inside_all = lookup(labels, split.view(np.uint8))
    x0, y0, bw, bh = cv2.boundingRect(inside_all)
    box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
    inside = inside_all[box]
    small = cores.dtype == np.uint16  # nb < NARROW
    seeds = cv2.copyTo(cores[box] if small else cores[box].astype(np.float32), inside)
    reach = cv2.dilate(seeds, disc)
    hi = cv2.dilate(reach, _CROSS)
    if small:
        # Smallest positive neighbour: erode (reach - 1) with 0 wrapping to 65535 ("none"), then + 1 saturated.
        big = 65535
        lo = reach - np.uint16(1)
        cv2.erode(lo, _CROSS, dst=lo)
        cv2.add(lo, 1, dst=lo)
    else:
        big = nb + 1
        lo = cv2.erode(np.where(reach > 0, reach, np.float32(big)), _CROSS)
    reached = cv2.compare(reach, 0, cv2.CMP_GT)

    pairs: list[tuple[int, int, int, int]] = []  # (core a, core b, y, x) meeting points
    # Cores whose swept areas touch directly.
    touch = cv2.findNonZero(cv2.bitwise_and(reached, cv2.compare(lo, hi, cv2.CMP_LT)))
    if touch is not None:
        touch = touch.reshape(-1, 2)
        tx, ty = touch[:, 0], touch[:, 1]
        a, b = lo[ty, tx].astype(np.int64), hi[ty, tx].astype(np.int64)
        cell = 2 * radius + 2
        key = (a * nb + b) * 1_000_003 + (ty // cell) * 4099 + tx // cell
        _, first = np.unique(key, return_index=True)
        pairs += [(int(a[i]), int(b[i]), int(ty[i]), int(tx[i])) for i in first]
    # Narrow leftovers: each piece goes to a core it touches; a piece touching two is a meeting point.
    todo = cv2.bitwise_and(inside, cv2.bitwise_not(reached))
    grown = reach
    pts = cv2.findNonZero(todo)
    if pts is not None:
        pcs, npcs = _components(todo, 4)
        pts = pts.reshape(-1, 2)
        px, py = pts[:, 0], pts[:, 1]
        pid = pcs[py, px]
        pmax = np.zeros(npcs, np.float64)
        np.maximum.at(pmax, pid, hi[py, px])
        pmin = np.full(npcs, big, np.float64)
        np.minimum.at(pmin, pid, lo[py, px])
        pmin[pmin >= big] = pmax[pmin >= big]
        grown[py, px] = pmin[pid]  # (reach is not needed any more)
        meet = np.flatnonzero((pmin > 0) & (pmin < pmax))
        if len(meet):
            cnt = np.bincount(pid, minlength=npcs)
            cy = np.bincount(pid, weights=py, minlength=npcs) / np.maximum(cnt, 1)
            cx = np.bincount(pid, weights=px, minlength=npcs) / np.maximum(cnt, 1)
            pairs += [(int(pmin[i]), int(pmax[i]), int(round(cy[i])), int(round(cx[i]))) for i in meet]

    parent = np.arange(nb)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lines_box = lines[box]
    ring = _ring(2 * radius + 3)
    for a, b, y, x in sorted(pairs):
        ra, rb = find(a), find(b)
        if ra != rb and _crossings(lines_box, y, x, ring) >= 4:
            parent[max(ra, rb)] = min(ra, rb)  # a neck between passing lines: the same region after all
    roots = np.array([find(i) for i in range(nb)], np.int64)
    # Final label per core: the lowest root of each split region keeps the region's label, others are new.
    in_split = split[region_of_core]
    in_split[0] = False
    part_roots = np.unique(roots[in_split])
    regions = region_of_core[part_roots]
    order = np.lexsort((part_roots, regions))  # by region, then root
    part_roots, regions = part_roots[order], regions[order]
    first = np.r_[True, regions[1:] != regions[:-1]]
    label_of_root = np.zeros(nb, np.int32)
    label_of_root[part_roots[first]] = regions[first]
    extra = part_roots[~first]
    label_of_root[extra] = n + np.arange(len(extra), dtype=np.int32)
    if not len(extra):
        return labels, n  # every split region's cores were merged back: nothing changes
    total = n + len(extra)
    out = labels if total < NARROW else labels.astype(np.int32)
    core_label = label_of_root[roots].astype(out.dtype)
    core_label[~in_split] = 0
    new = lookup(grown, core_label) if small else np.take(core_label, grown.astype(np.int64))
    cv2.copyTo(new, inside, out[box])
    return out, total


def _region_of_core(cores: np.ndarray, nb: int, labels: np.ndarray) -> np.ndarray:
    """The region (label in `labels`) of each of the `nb` cores (index 0: none). A core lies inside one
    region, so one pixel of it tells: a sparse grid finds most cores, the pixels of the others the rest."""
    out = np.zeros(nb, labels.dtype)
    step = 4
    out[cores[::step, ::step].ravel()] = labels[::step, ::step].ravel()
    found = np.zeros(nb, bool)
    found[cores[::step, ::step].ravel()] = True
    found[0] = True
    if not found.all():  # cores too small for the grid
        pts = cv2.findNonZero(lookup(cores, (~found).view(np.uint8))).reshape(-1, 2)
        out[cores[pts[:, 1], pts[:, 0]]] = labels[pts[:, 1], pts[:, 0]]
    out[0] = 0
    return out


def _ring(r: int) -> np.ndarray:
    """Integer offsets (dy, dx) around a circle of radius r, in angular order, without repeats."""
    t = np.linspace(0, 2 * np.pi, max(16, int(2 * np.pi * r * 2)), endpoint=False)
    pts = np.stack([np.round(r * np.sin(t)), np.round(r * np.cos(t))], axis=1).astype(np.int64)
    keep = np.r_[True, (np.diff(pts, axis=0) != 0).any(axis=1)]
    return pts[keep]


def _crossings(lines: np.ndarray, y: int, x: int, ring: np.ndarray) -> int:
    """How many separate line runs a circle around (y, x) crosses (outside the image counts as paper)."""
    h, w = lines.shape
    ys, xs = ring[:, 0] + y, ring[:, 1] + x
    ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    v = np.zeros(len(ring), np.int8)
    v[ok] = lines[ys[ok], xs[ok]] > 0
    return int(((v == 1) & (np.roll(v, 1) == 0)).sum())


def fill_lines(labels: np.ndarray, steps: int = 3) -> np.ndarray:
    """Give line pixels the label of a neighbouring region (nearest region for thick ink areas), int32.

    Up to `steps` rounds of "a line pixel takes its largest 4-neighbour label", then the nearest labelled
    pixel (distance transform) for what is left. uint16 OpenCV masked copies below 65535 labels.
    """
    return _fill(labels, steps).astype(np.int32)


def _fill(labels: np.ndarray, steps: int = 3) -> np.ndarray:
    """`fill_lines` as uint16 below 65535 labels (uint16 labels stay so), float32 above."""
    wide = labels.dtype != np.uint16 and int(labels.max(initial=0)) >= 65535
    out = labels.astype(np.float32 if wide else np.uint16)
    for _ in range(steps):
        todo = cv2.compare(out, 0, cv2.CMP_EQ)
        if not cv2.countNonZero(todo):
            return out
        cv2.copyTo(cv2.dilate(out, _CROSS), todo, out)  # 0 where no labelled neighbour: stays to do
    todo = cv2.compare(out, 0, cv2.CMP_EQ)
    left = cv2.countNonZero(todo)
    if left and left < todo.size:
        # Thick ink (solid black areas): nearest labelled pixel by distance transform.
        _, nearest = cv2.distanceTransformWithLabels(todo, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
        src = out[todo == 0]  # labelled pixels in scan order = DIST_LABEL_PIXEL ids 1..k
        lut = np.concatenate([np.zeros(1, out.dtype), src])
        cv2.copyTo(np.take(lut, nearest), todo, out)
    return out
