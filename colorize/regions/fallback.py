"""Colors for regions the keyframes' chains left unresolved: a neighbour's color for small ones, the
references' colors for the rest (best effort), and who owns a region when the shot has character masks.

Every function fills `colors` (one packed color per region, NO_COLOR where unresolved; label 0 is the
lines) in place and returns which regions it gave a color, so the engine records their source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from colorize.regions.palette import NO_COLOR, dominant_colors
from colorize.regions.segment import Segmentation, neighbour_regions

NEIGHBOUR_REACH = (3, 12)  # pixels across the lines where that neighbour is looked for, near first


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
) -> np.ndarray:
    """Best-effort colors for unresolved regions from references; returns the regions that took one.

    Inside a character's mask the largest regions take the most frequent colors of that character's
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
    covered = np.zeros(seg.count + 1, bool)
    for name, mask in sorted(masks.items()):
        palette = palettes.get(name)
        if palette is None or len(palette) == 0:
            continue
        inside = np.bincount(seg.labels[mask], minlength=seg.count + 1) / np.maximum(areas, 1)
        mine = todo & (inside > 0.5)
        covered |= inside > 0.5
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
