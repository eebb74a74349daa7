"""Region color propagation between two frames of a shot.

A map (`colorize.flow.correspondence`: global motion of the ink, then optical flow on the residual) says
where each pixel of the current frame came from in the previous frame. Every pixel of a region votes for
the color of the region it came from; a region takes the color with most votes. Confidence is the winning
share of the votes, scaled down when most of the region's pixels land on lines, and when the region takes
only a small share of its source region (a part that appeared inside a larger area: ornaments, pockets).

With owners (per region: 0 = background, 1.. = a character, from the shot's character masks), a region
only counts votes from previous-frame pixels of its own owner, so colors cannot cross from one character
to another where they overlap; a region with no such vote falls back to all votes.

Pixels that came from beyond the previous frame's edge (a part that entered with the motion) vote
nothing, unless most of their region did and its pixels inside the frame vote too few to color it: the
regions cut by the edge go on beyond it, so then they vote for the region at the edge pixel nearest to
where the drawing's global motion places them (the flow only extrapolates there), at EDGE times the
confidence (a guess that QA marks). A region colored by its votes inside the frame goes on beyond the
edge too: its pixels from beyond count against its confidence (as pixels landing on lines do) only where
the drawing's motion says they left the frame in another color.

Votes are counted on every VOTE_STEP-th pixel of every VOTE_STEP-th row (each counting VOTE_STEP² pixels)
in regions of SAMPLED_AREA pixels or more: a thousand votes and up, shares within a few percent of every
pixel's (and a sixteenth of the work at 1080p); smaller regions count every pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from colorize.flow import Correspondence, affine_map, grid, outside
from colorize.regions.palette import NO_COLOR
from colorize.regions.segment import Segmentation, lookup

_PAIR_BINS = 1 << 22  # (cur regions) x (prev regions) histograms up to this size (16 MB float32)
LOST = 0.6  # confidence factor of votes from the nearest same-owner pixels (the flow fell on another owner)
EDGE = 0.6  # confidence factor of a region whose votes came mostly from beyond the previous frame's edge
EDGE_INSIDE = 0.25  # ... when its votes inside the frame cover less than this share of it (conf < 0.5)
SPLIT_SHARE = 0.25  # a region with less than this share of its source region's pixels is less certain
VOTE_STEP = 2  # regions of SAMPLED_AREA pixels and more vote on every VOTE_STEP-th pixel and row
SAMPLED_AREA = 4096


def vote_pixels(seg: Segmentation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where `seg`'s pixels vote (cached; a function of the segmentation alone): the labels at every
    VOTE_STEP-th pixel of every VOTE_STEP-th row (uint16), and (xs, ys) of every pixel of the regions
    under SAMPLED_AREA pixels. Only for segmentations with uint16 labels."""
    if "vote_pixels" not in seg.cache:
        labels16 = seg.labels16
        assert labels16 is not None
        sampled = np.ascontiguousarray(labels16[::VOTE_STEP, ::VOTE_STEP])
        small = seg.areas < SAMPLED_AREA
        small[0] = False
        pts = cv2.findNonZero(lookup(labels16, small.view(np.uint8))) if small.any() else None
        pts = np.zeros((0, 2), np.int32) if pts is None else pts.reshape(-1, 2)
        seg.cache["vote_pixels"] = (sampled, pts[:, 0], pts[:, 1])
    return seg.cache["vote_pixels"]


def propagate(
    cur: Segmentation,
    prev: Segmentation,
    prev_colors: np.ndarray,
    where: Correspondence,
    owners: tuple[np.ndarray, np.ndarray] | None = None,
    motion: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colors, confidences and source regions (per label of `cur`) voted from `prev`'s region colors.

    `where`: positions in `prev` of the pixels of `cur`. `owners`: (owner per label of `cur`, owner per
    label of `prev`), small non-negative ints; see the module docstring. `motion`: the global motion of
    the drawing where it moved (2×3 affine: a pixel of `cur` to its position in `prev`), which places
    the pixels that came from beyond `prev`'s edge (the flow only extrapolates there); else `where` does.
    The source region of a label is the `prev` label that gave most votes to its color (0 where unknown).
    """
    valid_prev = prev_colors != NO_COLOR
    palette = np.unique(prev_colors[valid_prev])
    n_pal = len(palette)
    # Palette index per prev label: 0 = line / outside, 1..n_pal = palette entry, n_pal+1 = unresolved region.
    idx_of_label = np.full(len(prev_colors), n_pal + 1, np.uint16)
    idx_of_label[0] = 0
    idx_of_label[valid_prev] = (np.searchsorted(palette, prev_colors[valid_prev]) + 1).astype(np.uint16)
    bins = n_pal + 2

    cur16, prev16 = cur.labels16, prev.labels16
    nc, np_ = cur.count + 1, prev.count + 1
    # With owners: the unconstrained votes (per-pixel path), else computed from `pairs`.
    all_votes: np.ndarray | None = None
    pairs: np.ndarray | None = None
    edge_pairs: np.ndarray | None = None
    if cur16 is not None and prev16 is not None and nc * np_ <= _PAIR_BINS and cur.labels.size < 1 << 24:
        # Votes per (cur label, prev label) in one 2-D histogram (no full-frame gathers), then per color.
        pairs, edge_pairs = _pair_votes(cur, prev16, np_, where, motion)
        if owners is not None:
            same = owners[0][:, None] == owners[1][None, :]
            landed = pairs[:, 1:].sum(axis=1).astype(np.int64)
            pairs_same = np.where(same, pairs, np.float32(0))
            edge_same = None if edge_pairs is None else np.where(same, edge_pairs, np.float32(0))
        else:
            pairs_same, edge_same = pairs, edge_pairs
        votes = color_votes(pairs_same, idx_of_label, bins)
        edge = None if edge_same is None else color_votes(edge_same, idx_of_label, bins)
    else:
        votes, all_votes, edge = _pixel_votes(cur, prev, owners, where, motion, idx_of_label, bins)
        if all_votes is not None:
            landed = all_votes[:, 1:].sum(axis=1)
    lost = np.zeros(nc, bool)
    if owners is not None:
        # Regions whose every vote fell on another owner (cut off by an occluder, or the flow followed the
        # occluder): votes from the nearest previous pixels of their own owner, else from everything.
        lost = (votes[:, 1:].sum(axis=1) == 0) & (landed > 0)
        lost[0] = False
        if lost.any():
            votes[lost] = _nearest_owner_votes(cur, prev, owners, where, lost, idx_of_label, bins)[lost]
            none = lost & (votes[:, 1:].sum(axis=1) == 0)
            if none.any():
                if all_votes is not None:
                    votes[none] = all_votes[none]
                else:
                    assert pairs is not None  # the pair-histogram path ran
                    votes[none] = color_votes(pairs[none], idx_of_label, bins)
    beyond = np.zeros(nc, bool)
    if edge is not None:
        # Regions that came mostly from beyond the frame's edge (they entered with the motion) and whose
        # pixels inside it vote too few to take a color (under EDGE_INSIDE of the region): the regions
        # at the edge go on beyond it, so those pixels vote for the region where they left it.
        inside = votes[:, 1:].sum(axis=1)
        beyond = (edge[:, 1:].sum(axis=1) > inside) & (inside < EDGE_INSIDE * cur.areas)
        beyond[0] = False
        votes[beyond] += edge[beyond]
        if pairs is not None and edge_pairs is not None:
            pairs[beyond] += edge_pairs[beyond]
    counted = votes[:, 1:].sum(axis=1)
    colors = np.full(nc, NO_COLOR, np.int64)
    conf = np.zeros(nc, np.float32)
    source = np.zeros(nc, np.int32)
    if n_pal == 0:
        return colors, conf, source
    best = votes[:, 1 : n_pal + 1].argmax(axis=1)
    top = votes[np.arange(nc), best + 1]
    ok = top > 0
    ok[0] = False
    colors[ok] = palette[best[ok]]
    conf[ok] = top[ok] / np.maximum(counted[ok], 1)
    # Votes that fell on lines say nothing; a region whose pixels mostly land on lines is a weak match.
    # (Votes that fell on another owner's regions were dropped as occlusion, not as "no match".)
    covered = counted if owners is None else np.maximum(counted, landed)
    if edge is not None:
        # Pixels that came from beyond the previous frame's edge are no evidence against a region that
        # goes on there: where the drawing's motion says they left it the same color (the region at the
        # edge went on beyond it), they count as covered. (Regions colored from there already counted them.)
        agree = edge[np.arange(nc), best + 1]
        covered = covered + np.where(beyond | ~ok, np.float32(0), agree)
    coverage = covered / np.maximum(cur.areas, 1)
    conf *= np.clip(coverage * 2.0, 0.0, 1.0).astype(np.float32)
    if owners is not None:
        # Few same-owner votes among many that fell on another owner: the flow may have followed the
        # occluder, or the region was hidden; either way the few votes say little.
        conf *= np.clip(2.0 * counted / np.maximum(landed, 1), 0.0, 1.0).astype(np.float32)
    # Votes from guessed positions (the nearest pixels of the owner) are a guess too.
    conf[lost] *= np.float32(LOST)
    conf[beyond] *= np.float32(EDGE)  # what lies beyond the edge is a guess: QA marks it
    if pairs is not None:
        # The prev region that gave most votes to the winning color (for texture carried region by region).
        same_color = idx_of_label[None, :] == (best + 1).astype(np.uint16)[:, None]
        source = np.where(same_color, pairs, np.float32(-1)).argmax(axis=1).astype(np.int32)
        source[~ok] = 0
        # A region that takes a small share of its source region's pixels is a part that was not there
        # (a new enclosure inside a larger area, a pocket): its color is a guess from around it.
        landed_on = pairs.sum(axis=0)
        share = pairs[np.arange(nc), source] / np.maximum(landed_on[source], 1)
        conf[ok] *= (0.5 + 0.5 * np.clip(share[ok] / SPLIT_SHARE, 0, 1)).astype(np.float32)
    return colors, conf, source


def _pair_votes(
    cur: Segmentation, prev16: np.ndarray, np_: int, where: Correspondence, motion: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(cur labels × `np_` prev labels) float32: how many pixels of each region of `cur` land on each label
    of `prev` (0: lines, outside), counted on a grid in large regions, pixel by pixel in small ones; and
    the same for the pixels that land outside `prev`, on the label at the edge pixel nearest to where
    `motion` (else `where`) places them (None when no pixel lands outside)."""
    nc = cur.count + 1
    h, w = prev16.shape
    sampled, xs, ys = vote_pixels(cur)
    at = where.sampled(VOTE_STEP)
    landed = cv2.remap(prev16, at, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    pairs = _histogram(sampled, landed, nc, np_)
    edge = None
    out = outside(at, (h, w)) & (landed == 0)
    if out.any():
        src = (
            at if motion is None else cv2.transform(grid(*at.shape[:2], VOTE_STEP), motion.astype(np.float32))
        )
        beyond = cv2.remap(prev16, src, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        beyond[~out] = 0
        edge = _histogram(sampled, beyond, nc, np_) if cv2.countNonZero(beyond) else None
    if len(xs):
        # Regions under SAMPLED_AREA: every pixel, looked up as cv2.remap does (nearest, outside: 0).
        raw = where.at(xs, ys)
        pos = np.rint(raw)
        px = np.clip(pos[:, 0], -1, w).astype(np.intp)
        py = np.clip(pos[:, 1], -1, h).astype(np.intp)
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        prev_label = np.where(inside, prev16[np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)], 0)
        cur16 = cur.labels16
        assert cur16 is not None  # vote_pixels needs uint16 labels
        cur_label = cur16[ys, xs].astype(np.intp)
        exact = np.bincount(cur_label * np_ + prev_label, minlength=nc * np_).reshape(nc, np_)
        small = np.zeros(nc, bool)
        small[cur_label] = True
        pairs[small] = exact[small]
        if not inside.all():
            o = ~inside
            src_pts = raw[o] if motion is None else _apply(motion, xs[o], ys[o])
            ex = np.clip(np.rint(src_pts[:, 0]), 0, w - 1).astype(np.intp)
            ey = np.clip(np.rint(src_pts[:, 1]), 0, h - 1).astype(np.intp)
            at_edge = np.zeros(len(xs), np.intp)
            at_edge[o] = prev16[ey, ex]
            exact = np.bincount(cur_label * np_ + at_edge, minlength=nc * np_).reshape(nc, np_)
            if edge is None:
                edge = np.zeros_like(pairs)
            edge[small] = exact[small]
    return pairs, edge


def _apply(affine: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(N, 2) float64: the 2×3 `affine` applied to the pixels (xs, ys)."""
    return np.stack([xs, ys, np.ones(len(xs))], axis=1) @ affine.T


def _histogram(sampled: np.ndarray, landed: np.ndarray, nc: int, np_: int) -> np.ndarray:
    """(nc × np_) float32 counts of (cur label, prev label) over the VOTE_STEP grid, VOTE_STEP² each."""
    # A 1-D histogram of cur * np_ + prev (uint16 keys when they fit, else float32, exact below 2^24):
    # several times faster than a 2-D calcHist or a bincount of int64 keys.
    if nc * np_ <= 65536:
        keys = sampled * np.uint16(np_) + landed  # the largest key is nc * np_ - 1: no wrap-around
    else:
        keys = cv2.add(cv2.multiply(sampled, np_, dtype=cv2.CV_32F), landed, dtype=cv2.CV_32F)
    pairs = cv2.calcHist([keys], [0], None, [nc * np_], [0, nc * np_]).reshape(nc, np_)
    pairs *= np.float32(VOTE_STEP * VOTE_STEP)
    return pairs


def _pixel_votes(
    cur: Segmentation,
    prev: Segmentation,
    owners: tuple[np.ndarray, np.ndarray] | None,
    where: Correspondence,
    motion: np.ndarray | None,
    idx_of_label: np.ndarray,
    bins: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Votes per (cur label, palette index) with every pixel voting, through full-size gathers (very many
    regions): (votes of the same owner, or all without owners; all votes with owners, else None; votes
    of the pixels that land outside `prev`, on the label at the edge pixel nearest to where `motion`,
    else `where`, places them, or None)."""
    nc = cur.count + 1
    maps = where.full()
    prev_idx = np.take(idx_of_label, prev.labels)
    warped = cv2.remap(prev_idx, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cur_keys = cur.labels.ravel().astype(np.int64) * bins
    keys = cur_keys + warped.ravel()
    votes = np.bincount(keys, minlength=nc * bins).reshape(nc, bins)
    out = outside(maps, prev.labels.shape) & (warped == 0)
    src = maps if motion is None or not out.any() else affine_map(motion, maps.shape[:2])
    edge_keys = None
    if out.any():
        beyond = cv2.remap(prev_idx, src, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        beyond[~out] = 0
        edge_keys = cur_keys + beyond.ravel() if cv2.countNonZero(beyond) else None
    if owners is None:
        edge = None if edge_keys is None else np.bincount(edge_keys, minlength=nc * bins).reshape(nc, bins)
        return votes, None, edge
    prev_owner = np.take(owners[1].astype(np.float32), prev.labels)
    warped_owner = cv2.remap(
        prev_owner, maps, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=-1
    )
    cur_owner = np.take(owners[0], cur.labels)
    same_px = (warped_owner == cur_owner).ravel()
    same = np.bincount(keys[same_px], minlength=nc * bins).reshape(nc, bins)
    edge = None
    if edge_keys is not None:  # the owner at the edge pixel too
        edge_owner = cv2.remap(prev_owner, src, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        mine = (edge_owner == cur_owner).ravel()
        edge = np.bincount(edge_keys[mine], minlength=nc * bins).reshape(nc, bins)
    return same, votes, edge


def color_votes(pairs: np.ndarray, idx_of_label: np.ndarray, bins: int) -> np.ndarray:
    """Votes per (cur label, palette index) from a (cur label, prev label) histogram, as int64."""
    votes = np.zeros((len(pairs), bins), np.float64)
    np.add.at(votes.T, idx_of_label, pairs.T.astype(np.float64))
    return votes.astype(np.int64)


def _nearest_owner_votes(
    cur: Segmentation,
    prev: Segmentation,
    owners: tuple[np.ndarray, np.ndarray],
    where: Correspondence,
    lost: np.ndarray,
    idx_of_label: np.ndarray,
    bins: int,
) -> np.ndarray:
    """Votes (nc × bins, rows of `lost` only) of each pixel of a `lost` region for the previous-frame
    region of the same owner nearest to where the flow says the pixel came from."""
    cur_owner, prev_owner = owners
    votes = np.zeros((cur.count + 1, bins), np.int64)
    h, w = prev.labels.shape
    ys, xs = np.nonzero(cur.per_pixel(lost.view(np.uint8)))
    labels = cur.labels[ys, xs]
    px_owner = cur_owner[labels]
    at = np.rint(where.at(xs, ys))
    src_x = np.clip(at[:, 0], 0, w - 1).astype(np.intp)
    src_y = np.clip(at[:, 1], 0, h - 1).astype(np.intp)
    prev_px_owner = np.take(prev_owner, prev.labels)
    for o in np.unique(px_owner):
        src = (prev_px_owner == o) & (prev.labels > 0)
        if not src.any():
            continue
        # Index (raster order among `src` pixels, from 1) of the nearest `src` pixel, for every pixel.
        _, near = cv2.distanceTransformWithLabels(
            np.where(src, 0, 255).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        mine = px_owner == o
        source_labels = prev.labels[src][near[src_y[mine], src_x[mine]] - 1]
        keys = labels[mine].astype(np.int64) * bins + idx_of_label[source_labels]
        votes += np.bincount(keys, minlength=votes.size).reshape(votes.shape)
    return votes
