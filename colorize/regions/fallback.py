"""Colors for regions the keyframes' chains left unresolved: a neighbour's color for small ones, the
references' colors for the rest (best effort), and who owns a region when the shot has character masks.

Every function fills `colors` (one packed color per region, NO_COLOR where unresolved; label 0 is the
lines) in place and returns which regions it gave a color, so the engine records their source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from colorize.flow import outside
from colorize.regions.palette import NO_COLOR, dominant_colors
from colorize.regions.segment import Segmentation, neighbour_regions

NEIGHBOUR_REACH = (3, 12)  # pixels across the lines where that neighbour is looked for, near first
SHOWN_LINES = 0.85  # a reference shows the drawing when this share of the frame's lines lands on its lines
SHOWN_PRECISION = 0.85  # ... and this share of its lines where the frame lands lies on the frame's lines
PAINTED_INK = 160  # a painted image's lines: at least this dark (255 - gray) ...
PAINTED_LINE = 7  # ... and thinner than this (a disc of this diameter does not fit: not a dark paint area)


def region_owners(
    seg: Segmentation, masks: Mapping[str, np.ndarray], names: Sequence[str]
) -> np.ndarray | None:
    """Owner per region (0 = background, i + 1 = `names[i]`): whoever covers most of its pixels (ties:
    background, then name order). None when a mask of `names` is missing or not the frame's size."""
    if not all(name in masks for name in names):
        return None
    cover = np.zeros((len(names) + 1, seg.count + 1), np.int64)
    anyone = np.zeros(seg.labels.shape, np.uint8)
    for i, name in enumerate(names):
        mask = masks[name]
        if mask.shape != seg.labels.shape:
            return None
        m8 = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
        cover[i + 1] = seg.count_where(m8)
        cv2.bitwise_or(anyone, m8, dst=anyone)
    cover[0] = seg.count_where(cv2.compare(anyone, 0, cv2.CMP_EQ))
    return cover.argmax(axis=0).astype(np.int16)


def from_neighbours(
    seg: Segmentation,
    colors: np.ndarray,
    limit: int,
    owner: np.ndarray | None = None,
    same_owner: bool = False,
) -> np.ndarray:
    """Unresolved regions under `limit` pixels take their most common neighbour's color.

    Tiny enclosures (pockets where lines meet, 1-px holes) and small new parts (a mouth corner that
    opens, an eye pocket) often have nothing to match in the frames before; the color around them beats
    the unresolved color. With owners (masks), a neighbour of the same owner comes first; with
    `same_owner`, only such a neighbour. Returns the regions that took a color.
    """
    took = np.zeros(seg.count + 1, bool)
    small = (colors == NO_COLOR) & (seg.areas < limit)
    small[0] = False
    for reach in NEIGHBOUR_REACH:  # pockets inside thick ink look further
        if not small.any():
            break
        nb = neighbour_regions(seg, small, reach=reach, owner=owner)
        take = small & (nb > 0)
        take[take] &= colors[nb[take]] != NO_COLOR
        if same_owner and owner is not None:
            take[take] &= owner[nb[take]] == owner[take]
        colors[take] = colors[nb[take]]
        took |= take
        small &= ~take
    return took


def from_references(
    seg: Segmentation,
    colors: np.ndarray,
    conf: np.ndarray,
    masks: Mapping[str, np.ndarray],
    palettes: Mapping[str, np.ndarray],
    background: np.ndarray | None,
    fallback_palette: np.ndarray | None = None,
    painted: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Best-effort colors for unresolved regions from references; returns the regions that took one.

    A character whose reference is a painting of this very drawing (`painted_colors`: name → (colors,
    share) per region) gives first the color it has where each region lands, with the share of the
    region's pixels that have it as confidence (inside its mask when there are masks). Then, inside a
    character's mask the largest regions take the most frequent colors of that character's
    reference palette (`rank_fill`); outside every mask a region under the background plate takes the
    plate's color there, with the share of its pixels that have it as confidence; with no mask and no
    plate, `fallback_palette` (the first character's) by region size. A palette guess has no evidence
    behind it: its confidence stays 0, so QA marks it.
    """
    todo = colors == NO_COLOR
    todo[0] = False
    took = np.zeros(seg.count + 1, bool)
    if not todo.any():
        return took
    areas = seg.areas.astype(np.float64)
    # Regions mostly inside each character's mask (more than half their pixels).
    mostly = {
        name: seg.count_where(np.ascontiguousarray(mask).view(np.uint8)) / np.maximum(areas, 1) > 0.5
        for name, mask in masks.items()
    }
    for name, (shown, share) in sorted((painted or {}).items()):
        mine = todo & (shown != NO_COLOR)
        if masks:
            mine &= mostly.get(name, False)
        colors[mine], conf[mine] = shown[mine], share[mine]
        took |= mine
        todo &= ~mine
    covered = np.zeros(seg.count + 1, bool)
    for name in sorted(masks):
        palette = palettes.get(name)
        if palette is None or len(palette) == 0:
            continue
        mine = todo & mostly[name]
        covered |= mostly[name]
        rank_fill(colors, mine, areas, palette)
        took |= mine
        todo &= ~mine
    if background is not None and todo.any():
        outside = todo & ~covered
        bg, share = dominant_colors(seg.labels, seg.count, background, valid=seg.labels > 0)
        take = outside & (bg != NO_COLOR)
        colors[take] = bg[take]
        conf[take] = share[take]
        took |= take
        todo &= ~take
    if todo.any() and not masks and fallback_palette is not None and len(fallback_palette):
        rank_fill(colors, todo, areas, fallback_palette)
        took |= todo
    return took


def rank_fill(colors: np.ndarray, which: np.ndarray, areas: np.ndarray, palette: np.ndarray) -> None:
    """Largest regions take the most frequent reference colors (cycling): a crude but stable guess."""
    ids = np.flatnonzero(which)
    if len(ids) == 0:
        return
    order = ids[np.lexsort((ids, -areas[ids]))]
    colors[order] = palette[np.arange(len(order)) % len(palette)]


def painted_lines(reference: np.ndarray) -> np.ndarray:
    """The line work of a painted image (H×W×3 RGB over white), as ink (uint8, 0 = none): pixels at least
    PAINTED_INK dark (255 - gray) where a disc of PAINTED_LINE px does not fit (dark paint areas, black
    hair or pupils, are not lines; saturated colors, dark by their weakest channel, are not either)."""
    ink = cv2.bitwise_not(cv2.cvtColor(np.ascontiguousarray(reference[..., :3]), cv2.COLOR_RGB2GRAY))
    ink[ink < PAINTED_INK] = 0
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (PAINTED_LINE, PAINTED_LINE))
    return cv2.subtract(ink, cv2.morphologyEx(ink, cv2.MORPH_OPEN, disc))


def painted_colors(
    seg: Segmentation,
    reference: np.ndarray,
    reference_lines: np.ndarray,
    where: np.ndarray,
    line_threshold: int,
) -> tuple[np.ndarray, np.ndarray] | None:  # line_threshold: the frame's line pixels (ink at or above)
    """(colors, share) per region of `seg` from a reference that paints this very drawing (a colour key of
    the cut, a finished frame), None when it does not show it.

    `reference`: H×W×3 RGB or ×4 RGBA, the frame's size; `reference_lines`: H×W bool, its line pixels
    (`painted_lines`); `where`: H×W×2 positions in the reference of the frame's pixels under the drawing's
    global motion (`flow.global_motion` of the frame's ink to the reference's lines: a rigid placement;
    a dense flow bends any drawing onto another's lines). The reference shows the drawing when
    SHOWN_LINES of the frame's line pixels land on (1 px around) its lines and SHOWN_PRECISION of its
    line pixels that the frame lands on lie by the frame's lines: the same drawing, moved or turned (a
    model sheet of another pose, or the character mirrored, falls well short). Each region then takes the
    most frequent reference color where its pixels land off the reference's lines and inside it; its
    share is the share of those pixels that have it times the share of the region's paper that landed so
    (little evidence: a weak share, QA marks it)."""
    h, w = seg.labels.shape
    xs = np.clip(np.rint(where[..., 0]).astype(np.int32), 0, w - 1)
    ys = np.clip(np.rint(where[..., 1]).astype(np.int32), 0, h - 1)
    at_lines = reference_lines[ys, xs]
    lines = seg.ink >= line_threshold
    near = np.ones((3, 3), np.uint8)
    n_lines, n_at = int(np.count_nonzero(lines)), int(np.count_nonzero(at_lines))
    if n_lines == 0 or n_at == 0:
        return None
    recall = np.count_nonzero(lines & (cv2.dilate(at_lines.view(np.uint8), near) > 0)) / n_lines
    precision = np.count_nonzero(at_lines & (cv2.dilate(lines.view(np.uint8), near) > 0)) / n_at
    if recall < SHOWN_LINES or precision < SHOWN_PRECISION:
        return None
    valid = ~at_lines & ~lines & ~outside(where, (h, w))
    colors, share = dominant_colors(seg.labels, seg.count, reference[ys, xs], valid=valid)
    # Evidence: the share of the region's paper that landed on the reference's paper (a thin dark stroke of
    # paint reads as line work there; a part beyond the reference's edge lands nowhere).
    paper = np.maximum(seg.count_where((~lines).view(np.uint8)), 1)
    seen = seg.count_where(valid.view(np.uint8))
    return colors, (share * np.minimum(seen / paper, 1.0)).astype(np.float32)
