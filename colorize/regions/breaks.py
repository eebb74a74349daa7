"""Line breaks: the 1-2 px gaps that scans, aliased exports and nearest-neighbour resampling leave in thin
lines, as candidate pixels that close them (`line_bridges`; `segment._bridged` decides which to keep), and
whether a frame's line art is of that kind (`breaks_likely`, for `flat.close_breaks: auto`).

Everything here works on the 0/1 uint8 line mask of a frame (`segment.segment_ink` makes it)."""

from __future__ import annotations

import cv2
import numpy as np

BRIDGE_AREA = 10  # a piece of gap closing has at most this many pixels (more: no gap)
SOFT_INK = 0.05  # line art with partial ink on more than this share of its inked pixels is anti-aliased
THIN_LINES = 0.05  # hard-edged art with this share of its line pixels one pixel thin breaks when resampled


def breaks_likely(ink: np.ndarray, lines: np.ndarray) -> bool:
    """Whether a frame's line art is of the kind whose lines break in 1-2 px gaps: hard-edged (partial ink
    on at most SOFT_INK of its inked pixels: no anti-aliasing, as nearest-neighbour resampled frames,
    binarised scans and aliased exports are) with THIN_LINES or more of its line pixels one pixel thin
    (paper on both sides, across or along). Resampling without anti-aliasing drops pixels of such lines;
    thick or anti-aliased lines keep closed, and closing breaks there only risks cutting a region where a
    line thins. `ink`: uint8 line strength; `lines`: its 0/1 line mask."""
    inked = cv2.countNonZero(ink)
    n_lines = cv2.countNonZero(lines)
    if not inked or not n_lines:
        return False
    partial = inked - cv2.countNonZero(cv2.compare(ink, 255, cv2.CMP_EQ))
    if partial > SOFT_INK * inked:
        return False
    paper = cv2.copyMakeBorder(1 - lines, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    across = cv2.bitwise_and(paper[:-2, 1:-1], paper[2:, 1:-1])  # paper above and below
    along = cv2.bitwise_and(paper[1:-1, :-2], paper[1:-1, 2:])  # paper left and right
    thin = cv2.countNonZero(cv2.bitwise_and(cv2.bitwise_or(across, along), lines))
    return thin >= THIN_LINES * n_lines


# Around a pixel, the 8 neighbours in ring order (N, NE, E, SE, S, SW, W, NW) as (dy, dx).
_RING8 = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _paper_sides() -> np.ndarray:
    """Per 8-bit ring code (bit i set: neighbour i is line), how many separate pieces of paper (4-connected
    through the ring) touch the pixel: 2 or more means the pixel joins paper that the lines around it
    would keep apart (a gap), 1 a pocket or an edge of a line, 0 a hole."""
    lut = np.zeros(256, np.uint8)
    for code in range(256):
        line = [(code >> i) & 1 for i in range(8)]
        sides = [i for i in (0, 2, 4, 6) if not line[i]]
        joins = sum(
            1 for i in (0, 2, 4, 6) if not line[i] and not line[(i + 1) % 8] and not line[(i + 2) % 8]
        )
        lut[code] = 1 if sides and joins == 4 else len(sides) - joins
    return lut


_PAPER_SIDES = _paper_sides()


def _line_tips() -> np.ndarray:
    """Per 8-bit ring code of a line pixel, 1 where the pixel ends a line: its line neighbours are one
    run of at most 3 around it (the end of a stroke, or the side of a gap in it)."""
    lut = np.zeros(256, np.uint8)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        runs = sum(1 for i in range(8) if bits[i] and not bits[i - 1])
        lut[code] = 1 if runs <= 1 and sum(bits) <= 3 else 0  # (runs 0: a lone dot, a line broken twice)
    return lut


_LINE_TIPS = _line_tips()


def line_bridges(lines: np.ndarray) -> np.ndarray | None:
    """0/1 uint8 mask of the paper pixels that close 1-px line gaps (candidates: `_bridged` decides),
    or None when there are none.

    A gap pixel joins pieces of paper that the lines around it keep apart and lies beside a line end (a
    pixel dropped from a 1-px line by nearest-neighbour resampling, a scan's break, a stroke stopping one
    pixel short of the line it meets). The inside of a thin channel between two lines (a hair strand, a
    collar stripe) is never a gap, only where it opens; pockets in a line's staircase are not gaps (the
    paper around them is one piece); pieces of more than BRIDGE_AREA pixels (8-connected) are not gaps.
    Trapped-ball splitting (`_split_leaks`) handles wider gaps between regions wide enough for its ball.
    """
    pad = 3
    big = cv2.copyMakeBorder(lines, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    ring = np.array(_RING8)

    def codes(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """8-bit ring codes (bit i: neighbour i is line) of the pixels (ys, xs)."""
        code = np.zeros(len(ys), np.uint8)
        for i, (dy, dx) in enumerate(ring):
            code |= big[ys + pad + dy, xs + pad + dx] << np.uint8(i)
        return code

    # Work on few pixels: line pixels with at most 3 line neighbours may end a line (the tip test), and
    # only paper beside a tip may be a gap. Clean closed art has few such pixels.
    neighbours = cv2.boxFilter(lines, cv2.CV_8U, (3, 3), normalize=False)  # the pixel and its 8 around
    maybe = cv2.bitwise_and(lines, cv2.compare(neighbours, 4, cv2.CMP_LE))
    pts = cv2.findNonZero(maybe)
    if pts is None:
        return None
    pts = pts.reshape(-1, 2)
    tip = _LINE_TIPS[codes(pts[:, 1], pts[:, 0])] > 0
    if not tip.any():
        return None
    tips = np.zeros_like(lines)
    tips[pts[tip, 1], pts[tip, 0]] = 1
    out = np.zeros_like(lines)
    link = _tip_links(big, pad, pts[tip, 1], pts[tip, 0])
    if link is not None:
        out[link[0], link[1]] = 1
    near = cv2.findNonZero(cv2.bitwise_and(cv2.dilate(tips, np.ones((3, 3), np.uint8)), 1 - lines))
    if near is None:
        return _kept_bridges(out)
    near = near.reshape(-1, 2)
    ys, xs = near[:, 1], near[:, 0]
    code = codes(ys, xs)
    gap = _PAPER_SIDES[code] >= 2
    # The inside of a thin channel (line on both sides across it, and the channel going on both ways
    # along it) is no gap: the channel stays paper, only where it opens may it be closed.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        gap &= ~(
            _across(big, pad, ys, xs, dy, dx)
            & _across(big, pad, ys + dy, xs + dx, dy, dx)
            & _across(big, pad, ys - dy, xs - dx, dy, dx)
        )
    out[ys[gap], xs[gap]] = 1
    return _kept_bridges(out)


def _kept_bridges(out: np.ndarray) -> np.ndarray | None:
    """`out` (0/1 gap pixels) without its 8-connected pieces of more than BRIDGE_AREA pixels, or None."""
    if not cv2.countNonZero(out):
        return None
    n, comp, stats, _ = cv2.connectedComponentsWithStats(out, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] <= BRIDGE_AREA
    keep[0] = False
    if not keep.any():
        return None
    return np.take(keep.view(np.uint8), comp) if not keep[1:].all() else out


LINK_REACH = 3  # a line end is linked to a line at most this far (px): gaps of 1-2 px
THIN_STROKE = 8  # a line end whose stroke has at most this many pixels within LINK_REACH is a thin stroke's


def _tip_links(big: np.ndarray, pad: int, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """(ys, xs) of the paper pixels that link the ends of thin strokes (`ys`, `xs`: line tips) to the
    nearest line pixel at most LINK_REACH px away that their own stroke does not reach there (the other
    side of a 1-2 px break, where nearest-neighbour resampling skipped pixels of a 1-px line); None if none.

    `big`: the 0/1 line mask with a `pad` (>= LINK_REACH) border. The link is the straight 8-connected
    segment between the two (it parts 4-connected paper); `_bridged` then keeps it only where it parts two
    large regions. Ends of thick lines (more than THIN_STROKE pixels of their stroke around them) are left
    alone: those lines do not break so, and a link there would cut a channel where the line only thins."""
    r = LINK_REACH
    if not len(ys):
        return None
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    patch = big[(ys + pad)[:, None, None] + oy, (xs + pad)[:, None, None] + ox]  # N x size x size
    reach = np.zeros_like(patch)
    reach[:, r, r] = 1
    for _ in range(2 * r):  # the tip's stroke inside the window: geodesic 8-connected growth
        grown = reach.copy()
        grown[:, 1:, :] |= reach[:, :-1, :]
        grown[:, :-1, :] |= reach[:, 1:, :]
        grown[:, :, 1:] |= grown[:, :, :-1].copy()
        grown[:, :, :-1] |= grown[:, :, 1:].copy()
        reach = grown & patch
    thin = reach.reshape(len(ys), -1).sum(axis=1) <= THIN_STROKE
    dist2 = (oy**2 + ox**2).ravel()
    other = (patch & (1 - reach)).reshape(len(ys), -1).astype(bool)
    other &= (dist2 >= 4) & (dist2 <= r * r + 1)  # beyond the tip's own neighbours, within reach
    cost = np.where(other, dist2[None, :], 1 << 20)
    best = cost.argmin(axis=1)  # nearest first; ties: the first in raster order (deterministic)
    ok = thin & (cost[np.arange(len(ys)), best] < (1 << 20))
    if not ok.any():
        return None
    ty, tx = ys[ok], xs[ok]
    dy, dx = oy.ravel()[best[ok]], ox.ravel()[best[ok]]
    steps = np.maximum(np.abs(dy), np.abs(dx))
    out_y, out_x = [], []
    for k in (1, 2):  # the pixels strictly between: k / steps of the way (steps is 2 or 3)
        on = k < steps
        out_y.append(ty[on] + np.floor(dy[on] * k / steps[on] + 0.5).astype(ys.dtype))
        out_x.append(tx[on] + np.floor(dx[on] * k / steps[on] + 0.5).astype(xs.dtype))
    ly, lx = np.concatenate(out_y), np.concatenate(out_x)
    h, w = big.shape[0] - 2 * pad, big.shape[1] - 2 * pad
    inside = (ly >= 0) & (ly < h) & (lx >= 0) & (lx < w)
    ly, lx = ly[inside], lx[inside]
    paper = big[ly + pad, lx + pad] == 0
    return (ly[paper], lx[paper]) if paper.any() else None


def _across(big: np.ndarray, pad: int, ys: np.ndarray, xs: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Whether each pixel (ys, xs) is paper with line on both sides perpendicular to (dy, dx) (`big`:
    the 0/1 line mask with a `pad` border)."""
    y, x = ys + pad, xs + pad
    return (big[y, x] == 0) & (big[y - dx, x + dy] > 0) & (big[y + dx, x - dy] > 0)
