"""Line roles: which line pixels are main lines (kept as ink) and which are colour-trace lines (filled).

Japanese line art has black main lines and red/blue/green colour-trace lines (色トレス) that bound shadows
and highlights; the trace lines are filled and vanish in the finished frame.

Classification (`classify`, from the line art and its regions alone):

1. Candidates: coloured line pixels (`segment.line_layers`: chroma well above the ink's) that are not
   dark: the line colour's value (its brightest channel, un-composited from white paper for opaque line
   art) is at least DARK. Dark or neutral lines are main lines.
2. Strokes: 8-connected components of candidates. Each stroke takes one hue class (red, yellow, green,
   cyan, blue, magenta: 60° sectors around the primaries and secondaries), the ink-weighted majority of
   its pixels' hues, so anti-aliased fringes and mixed pixels go with their stroke; the class's role
   comes from the settings (`trace_lines`).
3. Line work, not trace: a class whose pixels are more than `max_share` of the frame's line pixels (the
   drawing is traced in that colour), and a stroke that bounds no region (one region all round it, no
   other line along it: a mark drawn inside one paint area, such as blush hatching) stay main lines.

Filling (`trace_labels`): each trace pixel takes, among the regions it touches (through its own stroke, a
few pixels, never through main lines), the darkest (shadow) or lightest (highlight) painted one by luma
(Rec. 601; transparent regions only when nothing opaque is near); then every stroke takes its pixels'
majority, so a stroke is filled with one colour as painters fill it. A fixed-colour role paints the
stroke in that colour. Trace pixels with no painted region near (only unresolved ones) take the nearest
region's label like any line pixel and are counted as unfilled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from colorize.regions.segment import ink_level, line_layers, segment_ink
from colorize.settings import FlatSettings, TraceLineSettings

HUES = ("red", "yellow", "green", "cyan", "blue", "magenta")
NONE, SHADOW, HIGHLIGHT = 0, 1, 2  # role codes; fixed colour i is FIXED + i
FIXED = 3
DARK = 128  # a line colour whose brightest channel is under this is dark: a main line whatever its hue
REACH = 3  # pixels along a trace stroke within which its pixels look for the regions it separates
_NEAR = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)])


@dataclass(frozen=True)
class LineRoles:
    """Role code per hue class (NONE = main line), the fixed colours (packed 0xRRGGBB), `max_share`."""

    codes: tuple[int, ...]
    fixed: tuple[int, ...]
    max_share: float

    @classmethod
    def from_settings(cls, s: TraceLineSettings) -> LineRoles:
        codes, fixed = [], []
        for hue in HUES:
            role = getattr(s, hue)
            if role.startswith("#"):
                value = int(role[1:], 16)
                if value not in fixed:
                    fixed.append(value)
                codes.append(FIXED + fixed.index(value))
            else:
                codes.append({"main": NONE, "shadow": SHADOW, "highlight": HIGHLIGHT}[role])
        return cls(tuple(codes), tuple(fixed), s.max_share)

    @property
    def any(self) -> bool:
        return any(self.codes)


@dataclass
class LineWork:
    """Line roles of one frame (see the module docstring)."""

    role: np.ndarray  # H×W uint8: NONE (paper, main line), SHADOW, HIGHLIGHT, FIXED + i
    fixed: tuple[int, ...]  # packed 0xRRGGBB of the fixed-colour roles
    # H×W uint8 0/255: pixels of strokes in a trace colour, trace pixels and marks (a keyframe of this
    # drawing may paint them); not those of colours kept as main lines
    colored: np.ndarray
    kept_share: dict[str, float] = field(default_factory=dict)  # hue -> share of the line work, when kept
    marks: dict[str, int] = field(default_factory=dict)  # hue -> pixels of strokes bounding no region
    traced: dict[str, int] = field(default_factory=dict)  # hue -> trace pixels
    # the trace pixels as arrays, raster order: (ys, xs), role code and stroke id of each
    points: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    strokes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def trace(self) -> np.ndarray:
        """H×W uint8 0/255: the trace pixels (filled, never left in their pencil colour)."""
        return cv2.compare(self.role, NONE, cv2.CMP_GT)

    @property
    def count(self) -> int:
        """How many trace pixels."""
        return len(self.codes)

    def fixed_colors(self) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
        """(H×W bool mask, (r, g, b)) for each fixed-colour role: the pixels painted in that colour."""
        return [
            (cv2.compare(self.role, FIXED + i, cv2.CMP_EQ) > 0, ((c >> 16) & 255, (c >> 8) & 255, c & 255))
            for i, c in enumerate(self.fixed)
        ]


def empty(shape: tuple[int, int]) -> LineWork:
    zeros = np.zeros(shape, np.uint8)
    return LineWork(zeros, (), zeros)


def hue_classes(rgb: np.ndarray) -> np.ndarray:
    """Hue class (index into HUES) of N×3 uint8 RGB colours: 60° sectors centred on the primaries and
    secondaries (red is -30°..30°)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL)
    hue = hsv[:, 0, 0].astype(np.int32) * 360 // 256
    return ((hue + 30) % 360 // 60).astype(np.int64)


def line_values(rgb: np.ndarray, in_alpha: bool) -> np.ndarray:
    """Value (brightest channel, 0-255) of the line colour of N×3 uint8 line-art pixels: the pixel's own
    colour for lines in alpha; for opaque line art on white paper, un-composited (c = (p - min) / ink)."""
    rgb = rgb.astype(np.int32)
    hi, lo = rgb.max(axis=1), rgb.min(axis=1)
    if in_alpha:
        return hi
    return (hi - lo) * 255 // np.maximum(255 - lo, 1)


def classify(
    lineart: np.ndarray,
    ink: np.ndarray,
    colored: np.ndarray,
    in_alpha: bool,
    labels: np.ndarray,
    roles: LineRoles,
    line_threshold: float = 0.4,
    line_pixels: int | None = None,
) -> LineWork:
    """Line roles of one frame: `lineart` H×W×4 uint8, `ink`/`colored`/`in_alpha` from
    `segment.line_layers`, `labels` its regions (0 = line), `line_pixels` how many line pixels it has
    (default: ink at `line_threshold` or more). See the module docstring."""
    shape = ink.shape
    pts = cv2.findNonZero(colored)
    if pts is None or not roles.any:
        return empty(shape)
    pts = pts.reshape(-1, 2)
    xs, ys = pts[:, 0], pts[:, 1]
    rgb = lineart[ys, xs, :3]
    bright = line_values(rgb, in_alpha) >= DARK
    if not bright.any():
        return empty(shape)
    xs, ys, rgb = xs[bright], ys[bright], rgb[bright]
    x0, y0 = int(xs.min()), int(ys.min())
    box = (slice(y0, int(ys.max()) + 1), slice(x0, int(xs.max()) + 1))
    cand = np.zeros((box[0].stop - y0, box[1].stop - x0), np.uint8)  # candidates, in their bounding box
    cand[ys - y0, xs - x0] = 255
    n, strokes = cv2.connectedComponents(cand, connectivity=8, ltype=cv2.CV_32S)
    sid = strokes[ys - y0, xs - x0].astype(np.int64)
    votes = np.bincount(sid * len(HUES) + hue_classes(rgb), weights=ink[ys, xs], minlength=n * len(HUES))
    stroke_hue = votes.reshape(n, len(HUES)).argmax(axis=1)
    code = np.asarray(roles.codes, np.int64)[stroke_hue]
    code[0] = NONE
    # A colour that is most of the drawing's lines is its line work.
    if line_pixels is None:
        line_pixels = int(cv2.countNonZero(cv2.compare(ink, ink_level(line_threshold), cv2.CMP_GE)))
    total = max(1, line_pixels)
    per_hue = np.bincount(stroke_hue[sid], minlength=len(HUES))
    kept_share: dict[str, float] = {}
    for h, hue in enumerate(HUES):
        share = per_hue[h] / total
        if roles.codes[h] != NONE and share > roles.max_share:
            code[stroke_hue == h] = NONE
            kept_share[hue] = round(float(share), 3)
    bounds = _bounds_regions(labels, cand, (y0, x0), ys, xs, sid, n)
    marks_of = (code != NONE) & ~bounds
    code[marks_of] = NONE
    pixel_hue = stroke_hue[sid]
    marks = np.bincount(pixel_hue[marks_of[sid]], minlength=len(HUES))
    traced = np.bincount(pixel_hue[code[sid] != NONE], minlength=len(HUES))
    role = np.zeros(shape, np.uint8)
    keep = code[sid] != NONE
    role[ys[keep], xs[keep]] = code[sid[keep]]
    painted = np.zeros(shape, np.uint8)  # trace pixels and marks
    either = keep | marks_of[sid]
    painted[ys[either], xs[either]] = 255
    return LineWork(
        role,
        roles.fixed,
        painted,
        kept_share,
        {h: int(k) for h, k in zip(HUES, marks, strict=True) if k},
        {h: int(k) for h, k in zip(HUES, traced, strict=True) if k},
        (ys[keep], xs[keep]),
        code[sid[keep]].astype(np.uint8),
        sid[keep],
    )


def warnings(lw: LineWork, where: str) -> list[str]:
    """One line per line colour that the roles keep as main line work though the settings make it a trace
    colour (`where` names the frame): a drawing traced in that colour. (Marks, strokes bounding no region,
    are kept without a word: blush hatching is common.)"""
    out = []
    for hue, share in lw.kept_share.items():
        out.append(
            f"{where}: {hue} lines are {100 * share:.0f} % of the line work: kept as main lines, not filled "
            f"as trace lines (trace_lines.max_share; set trace_lines.{hue}: main to keep them always)"
        )
    return out


def _bounds_regions(
    labels: np.ndarray,
    cand: np.ndarray,
    origin: tuple[int, int],
    ys: np.ndarray,
    xs: np.ndarray,
    sid: np.ndarray,
    n: int,
) -> np.ndarray:
    """Per stroke (n entries): whether it bounds regions. Within 2 px of it: region pixels of two regions
    or more, the second touching it at least a quarter as much as the first; or one region and other line
    pixels (not coloured ones) at least a quarter as much (a trace line closing a region against a main
    line). A stroke with one region all round is a mark drawn inside it."""
    h, w = labels.shape
    ny = np.clip(ys[:, None] + _NEAR[:, 0], 0, h - 1)
    nx = np.clip(xs[:, None] + _NEAR[:, 1], 0, w - 1)
    near = labels[ny, nx].astype(np.int64)
    s = np.broadcast_to(sid[:, None], near.shape)
    ok = near > 0
    cy, cx = ny - origin[0], nx - origin[1]  # in `cand`'s box (candidates' bounding box)
    inside = (cy >= 0) & (cy < cand.shape[0]) & (cx >= 0) & (cx < cand.shape[1])
    coloured = np.zeros(near.shape, bool)
    coloured[inside] = cand[cy[inside], cx[inside]] > 0
    lined = np.bincount(s[~ok & ~coloured], minlength=n)
    out = np.zeros(n, bool)
    if not ok.any():
        return out
    big = int(near.max()) + 1
    pairs, counts = np.unique(s[ok] * big + near[ok], return_counts=True)
    stroke_of = pairs // big
    order = np.lexsort((-counts, stroke_of))
    stroke_of, counts = stroke_of[order], counts[order]
    starts = np.flatnonzero(np.r_[True, stroke_of[1:] != stroke_of[:-1]])
    ends = np.r_[starts[1:], len(counts)]
    second = np.where(ends - starts >= 2, counts[np.minimum(starts + 1, len(counts) - 1)], 0)
    out[stroke_of[starts]] = (np.maximum(second, lined[stroke_of[starts]]) * 4) >= counts[starts]
    return out


def luma(packed: np.ndarray) -> np.ndarray:
    """Rec. 601 luma (float, 0-255) of packed 0xAARRGGBB colours."""
    p = packed.astype(np.int64)
    return 0.299 * ((p >> 16) & 255) + 0.587 * ((p >> 8) & 255) + 0.114 * (p & 255)


def trace_labels(
    lw: LineWork,
    labels: np.ndarray,
    filled: np.ndarray,
    colors: np.ndarray,
    no_color: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(`filled` with every shadow/highlight trace pixel relabelled to the region it takes, the trace
    pixels left unfilled: H×W uint8 0/255). `colors`: packed 0xAARRGGBB per label (`no_color`: unresolved);
    `filled`: the labels with line pixels given a neighbour's (`segment.fill_lines`). See the module
    docstring. The work is on the trace pixels alone (a few thousand), not on the frame."""
    out = filled.copy()
    unfilled = np.zeros(lw.role.shape, np.uint8)
    n = len(colors)
    painted = colors != no_color
    painted[0] = False
    opaque = ((colors.astype(np.int64) >> 24) & 255) > 0
    h, w = labels.shape
    ys, xs = lw.points
    for code, sign in ((SHADOW, 1.0), (HIGHLIGHT, -1.0)):
        mine = lw.codes == code
        if not mine.any():
            continue
        py, px = ys[mine], xs[mine]
        # Rank of each label: painted opaque regions, darkest (shadow) or lightest (highlight) first, then
        # transparent ones, then unresolved ones; lines none.
        order = np.lexsort((np.arange(n), sign * luma(colors), ~opaque, ~painted))
        order = order[order != 0]
        rank = np.zeros(n, np.int64)
        rank[order] = np.arange(1, n)
        none = n + 1
        rank[0] = none
        flat = py.astype(np.int64) * w + px  # raster order: sorted
        key = np.full(len(py), none, np.int64)
        steps = []
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ny, nx = np.clip(py + dy, 0, h - 1), np.clip(px + dx, 0, w - 1)
            np.minimum(key, rank[labels[ny, nx]], out=key)  # a region next to the pixel
            at = np.minimum(np.searchsorted(flat, ny.astype(np.int64) * w + nx), len(flat) - 1)
            same = flat[at] == ny.astype(np.int64) * w + nx  # a trace pixel of this role next to it
            steps.append((np.flatnonzero(same), at[same]))
        for _ in range(REACH - 1):  # along the stroke
            reached = key.copy()
            for i, j in steps:
                np.minimum.at(reached, i, key[j])
            key = reached
        to = np.concatenate([[0], order, [0]])[np.minimum(key, n)]  # rank -> label (none: 0)
        to = _stroke_majority(lw.strokes[mine], to)
        got = to > 0
        out[py[got], px[got]] = to[got]
        bad = ~painted[to]  # no label, or an unresolved region's
        unfilled[py[bad], px[bad]] = 255
    return out, unfilled


def _stroke_majority(stroke: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Each pixel's label replaced by the most common label (> 0) of its stroke (ties: the lowest)."""
    if not len(label):
        return label
    have = label > 0
    if not have.any():
        return label
    big = int(label.max()) + 1
    pairs, counts = np.unique(stroke[have].astype(np.int64) * big + label[have], return_counts=True)
    s_of = pairs // big
    order = np.lexsort((pairs % big, -counts, s_of))
    s_of, pairs = s_of[order], pairs[order]
    first = np.r_[True, s_of[1:] != s_of[:-1]]
    best_s, best_l = s_of[first], pairs[first] % big
    at = np.minimum(np.searchsorted(best_s, stroke), len(best_s) - 1)
    return np.where(best_s[at] == stroke, best_l[at], 0)


def frame_line_work(lineart: np.ndarray, flat: FlatSettings, trace: TraceLineSettings) -> LineWork:
    """`classify` of one RGBA uint8 line-art frame, segmented as the flat engine does."""
    ink, colored, in_alpha = line_layers(lineart)
    seg = segment_ink(ink, flat.gap_close, flat.min_region, flat.line_threshold)
    return classify(
        lineart, ink, colored, in_alpha, seg.labels, LineRoles.from_settings(trace), flat.line_threshold
    )
