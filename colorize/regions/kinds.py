"""Region kinds: background or character part, so a character does not take the background's colors.

Hand-drawn motion breaks frame-to-frame correspondence: a character who moves far (crouches behind a
fence, sits down) lands on pixels that were sky or fence, and where gaps in the line art join a part to
the background for a frame, the part takes the background's color there. A chain step carries that
color on from frame to frame (its votes are unanimous: every pixel came from the wrongly painted region).

- **Open regions** (`open_regions`): regions touching two or more frame edges and covering OPEN_AREA of
  the frame or more: the sky, the ground, a fence across the frame.
- **Background-only colors** (`background_only`): the colors of a keyframe's background regions that
  none of its character parts has. Background regions: the open ones, and regions most of whose pixels
  have color codes the open regions have more of than the rest (sky seen between an arm and a body, in
  a lighter tone of the sky's gradient, is sky).
- **Suspects** (`suspects`): regions of a frame that are not open but are painted a background-only
  color. The engine (`engines.flat`, a chain step) asks the keyframe about them with `region_votes`. A
  suspect is background when the keyframe shows that same background where the region now is
  (`seen_share`: the fence seen through a hole is the fence the keyframe has there), or when its color
  was carried whole from a hole of the keyframe (`tracked_holes`: sky through a loop stays sky however far
  the loop moves). It is a character part otherwise (a part that came over the fence and took the
  fence's color, or the sky's where the keyframe shows the fence), and also when it is a new pocket
  inside the character (`enclosed_parts`: split off a larger region on the way, most of what surrounds
  it character, `surroundings`; the engine asks this only of weak propagated colors): then it takes
  another color, from the source drawing (`best_other`, a share of its pixels came from a character
  color there: the part was joined to the background through a gap), else
  the character around it (`around_color`: a pocket), else the keyframe's match (the part moved far),
  at low confidence. Checked at every step, so one bad frame does not poison the frames after it.
"""

from __future__ import annotations

import cv2
import numpy as np

from colorize.flow import Correspondence
from colorize.regions.palette import NO_COLOR
from colorize.regions.propagate import SPLIT_SHARE
from colorize.regions.segment import Segmentation, region_boxes

OPEN_AREA = 0.05  # share of the frame from which a region counts as open (with 2+ frame edges)
SPECK_SHARE = 2e-4  # keyframe regions under this share of the frame do not decide background-only colors
QUANT = 3  # background color codes compare the top 8 - QUANT bits of each channel
BACKGROUND_SHARE = 0.5  # the keyframe agrees a region is background when its votes give it this share
ENCLOSED = 0.65  # a region is inside the character when this share of the pixels around it are character
POCKET_SHARE = 0.05  # a region under this share of the keyframe region its color came from is a pocket
RING = 4  # pixels across the lines where a region's surroundings are looked at
SAME_TONE = 24  # background colors this close (largest channel difference, 8-bit) show the same thing


def edge_count(seg: Segmentation) -> np.ndarray:
    """(count + 1,) int: how many of the four frame edges each region touches (cached)."""
    if "edge_count" not in seg.cache:
        labels = seg.labels
        edges = np.zeros(seg.count + 1, np.int64)
        for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            edges[np.unique(side)] += 1
        edges[0] = 0
        seg.cache["edge_count"] = edges
    return seg.cache["edge_count"]


def open_regions(seg: Segmentation) -> np.ndarray:
    """(count + 1,) bool: regions touching two or more frame edges with OPEN_AREA of the frame or more."""
    out = (edge_count(seg) >= 2) & (seg.areas >= OPEN_AREA * seg.labels.size)
    out[0] = False
    return out


def background_only(seg: Segmentation, colors: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Sorted packed colors of a keyframe's background (`seg`, `colors` per region, `image` its H×W×3+
    8-bit pixels) that none of its character parts has.

    A color code (QUANT low bits of each channel dropped, so gradients and texture fall together) belongs
    to the background when the open regions have more of its pixels than the other regions; a region is
    background when most of its line-free pixels have background codes: the open regions, and sky seen
    through a gap between limbs (a lighter tone of the sky's gradient) too. Regions of SPECK_SHARE of the
    frame or more of the other kind keep their colors out of the set."""
    labels = seg.labels
    clean = (labels > 0) & (seg.ink == 0)
    rgb = image[..., :3][clean].astype(np.int64) >> QUANT
    bits = 8 - QUANT
    codes = (rgb[:, 0] << (2 * bits)) | (rgb[:, 1] << bits) | rgb[:, 2]
    lab = labels[clean]
    opened = open_regions(seg)
    in_open = opened[lab]
    size = 1 << (3 * bits)
    owned = np.bincount(codes[in_open], minlength=size) > np.bincount(codes[~in_open], minlength=size)
    n = seg.count + 1
    share = np.bincount(lab, weights=owned[codes], minlength=n) / np.maximum(np.bincount(lab, minlength=n), 1)
    background = opened | (share > 0.5)
    background[0] = False
    big = seg.areas >= SPECK_SHARE * labels.size
    other = ~background & big
    other[0] = False
    valid = colors != NO_COLOR
    return np.setdiff1d(
        np.unique(colors[background & valid & (big | opened)]), np.unique(colors[other & valid])
    )


def suspects(seg: Segmentation, colors: np.ndarray, background: np.ndarray, min_area: int) -> np.ndarray:
    """(count + 1,) bool: regions that are not open, of `min_area` px or more, painted one of the
    `background` colors."""
    if len(background) == 0:
        return np.zeros(seg.count + 1, bool)
    out = ~open_regions(seg) & np.isin(colors, background) & (seg.areas >= min_area)
    out[0] = False
    return out


def region_votes(
    seg: Segmentation,
    source: Segmentation,
    ids: np.ndarray,
    where: Correspondence,
    owners: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(len(ids), source.count + 1) float64: how many pixels of each region of `ids` land (`where`: their
    positions in `source`) on each `source` label (0: lines, outside the frame; with `owners` (owner per
    region of `seg`, of `source`), regions of another owner count as 0)."""
    which = np.zeros(seg.count + 1, np.uint8)
    which[ids] = 1
    pts = cv2.findNonZero(seg.per_pixel(which))
    n = source.count + 1
    if pts is None:
        return np.zeros((len(ids), n))
    pts = pts.reshape(-1, 2)
    row = np.zeros(seg.count + 1, np.int64)
    row[ids] = np.arange(len(ids))
    lab = seg.labels[pts[:, 1], pts[:, 0]].astype(np.int64)
    at = np.rint(where.at(pts[:, 0], pts[:, 1]))
    h, w = source.labels.shape
    inside = (at[:, 0] >= 0) & (at[:, 0] < w) & (at[:, 1] >= 0) & (at[:, 1] < h)
    sx = np.clip(at[:, 0], 0, w - 1).astype(np.intp)
    sy = np.clip(at[:, 1], 0, h - 1).astype(np.intp)
    slab = np.where(inside, source.labels[sy, sx], 0).astype(np.int64)
    if owners is not None:
        slab = np.where(owners[1][slab] == owners[0][lab], slab, 0)
    return np.bincount(row[lab] * n + slab, minlength=len(ids) * n).reshape(len(ids), n).astype(np.float64)


def seen_share(votes: np.ndarray, colors: np.ndarray, background: np.ndarray, took: np.ndarray) -> np.ndarray:
    """(len(votes),) share of each row's votes (lines not counting) for `background`-colored regions of
    about the color that row's region took (`took`, packed; SAME_TONE): what the keyframe shows at the
    place of a region that looks through to the background. The background behind a hole is what the
    keyframe has there (the fence where the fence is, the sky where the sky is); a region painted the
    fence where the keyframe shows sky took its color from something that moved (a part that came
    over the fence), not through a hole."""
    is_bg = np.isin(colors, background)
    is_bg[0] = False
    rgb = np.stack([(colors >> s) & 255 for s in (16, 8, 0)], axis=1)
    mine = np.stack([(took >> s) & 255 for s in (16, 8, 0)], axis=1)
    near = np.abs(rgb[None, :, :] - mine[:, None, :]).max(axis=2) <= SAME_TONE
    total = votes[:, 1:].sum(axis=1)
    return (votes * (near & is_bg[None, :])).sum(axis=1) / np.maximum(total, 1)


def best_other(
    votes: np.ndarray, colors: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `votes` (`region_votes`): the most voted color of `colors` (per source region) that is
    not a `background` color (NO_COLOR: none), its share of the votes (lines not counting) and the source
    region that gave it most votes."""
    rows = len(votes)
    usable = ~np.isin(colors, background) & (colors != NO_COLOR)
    usable[0] = False
    out = np.full(rows, NO_COLOR, np.int64), np.zeros(rows), np.zeros(rows, np.int64)
    if rows == 0 or not usable.any():
        return out
    palette, inverse = np.unique(colors[usable], return_inverse=True)
    per_color = np.zeros((rows, len(palette)))
    np.add.at(per_color.T, inverse, votes[:, usable].T)
    best = per_color.argmax(axis=1)
    top = per_color[np.arange(rows), best]
    same = np.zeros(votes.shape, bool)
    same[:, usable] = inverse[None, :] == best[:, None]
    label = np.where(same, votes, -1).argmax(axis=1)
    found = top > 0
    share = top / np.maximum(votes[:, 1:].sum(axis=1), 1)
    return np.where(found, palette[best], NO_COLOR), np.where(found, share, 0.0), np.where(found, label, 0)


def surroundings(
    seg: Segmentation, ids: np.ndarray, colors: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per region of `ids`: the share of the region pixels within RING px around it (across the lines)
    that belong to character regions (`_character`: resolved in `colors`, not a `background` color, not
    open), and the character region with most of those pixels (0: none)."""
    labels = seg.labels
    character = _character(seg, colors, background)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING + 1, 2 * RING + 1))
    share, nearest = np.zeros(len(ids)), np.zeros(len(ids), np.int64)
    which = np.zeros(seg.count + 1, np.uint8)
    which[ids] = 1
    row = {int(label): i for i, label in enumerate(ids.tolist())}
    for label, ys, xs in region_boxes(labels, seg.per_pixel(which), RING):
        box = labels[ys, xs]
        ring = cv2.dilate((box == label).view(np.uint8), disc).view(bool) & (box != label) & (box > 0)
        around = box[ring]
        if len(around) == 0:
            continue
        mine = character[around]
        i = row[label]
        share[i] = mine.mean()
        if mine.any():
            nearest[i] = int(np.bincount(around[mine]).argmax())
    return share, nearest


def tracked_holes(seg: Segmentation, ids: np.ndarray, key: Segmentation, origin: np.ndarray) -> np.ndarray:
    """(len(ids),) bool: regions of `ids` whose color was carried from an enclosed (not open) region of
    the keyframe `key` (`origin`: per region of `ids`, its label there) and that carry it whole (at least
    SPLIT_SHARE of its size, not a piece of it): the sky seen through a loop of the keyframe, followed
    frame to frame, is still that sky wherever the loop has moved."""
    known = origin > 0
    return known & ~open_regions(key)[origin] & (seg.areas[ids] >= SPLIT_SHARE * key.areas[origin])


def enclosed_parts(
    seg: Segmentation,
    ids: np.ndarray,
    near_votes: np.ndarray,
    source: Segmentation,
    min_area: int,
    origin_areas: np.ndarray,
    around_share: np.ndarray,
) -> np.ndarray:
    """(len(ids),) bool: regions of `ids` that are new enclosures inside the character, with ENCLOSED or
    more of the pixels around them character (`around_share`, from `surroundings`), and new: they took a
    small share (SPLIT_SHARE) of the `source` region most of their pixels came from (`near_votes`,
    `region_votes` into `source`), so their color is a guess from a larger area; or that region was under
    `min_area` px (too small to have been asked about: its color is as much a guess); or they are under
    POCKET_SHARE of the keyframe region their color came from (`origin_areas`: a pocket of the sky or the
    fence, split off it on the way). A character that moves over the fence makes such pockets (a shadow
    shape, a strap) where the fence was; the character around them says what they are."""
    if len(ids) == 0:
        return np.zeros(0, bool)
    top = near_votes[:, 1:].argmax(axis=1) + 1
    got = near_votes[np.arange(len(ids)), top]
    area = seg.areas[ids]
    split = (got > 0) & ((area < SPLIT_SHARE * source.areas[top]) | (source.areas[top] < min_area))
    new = split | (area < POCKET_SHARE * origin_areas)
    return new & (around_share >= ENCLOSED)


def around_color(
    colors: np.ndarray, share: np.ndarray, nearest: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per region asked about (`share`, `nearest`: its `surroundings`): the color of the character region
    with most pixels around it (NO_COLOR: none), the share of the surroundings that are character, and
    that region's label (as `best_other`)."""
    return np.where(nearest > 0, colors[nearest], NO_COLOR), share, nearest


def _character(seg: Segmentation, colors: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(count + 1,) bool: regions painted a color (resolved) that is not a `background` one, not open."""
    out = (colors != NO_COLOR) & ~np.isin(colors, background) & ~open_regions(seg)
    out[0] = False
    return out
