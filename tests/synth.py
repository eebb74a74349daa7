"""Generated cel drawings for tests, benchmarks and the evaluation set (no real data needed).

A drawing is a label map of filled shapes (a "character" with face, eyes, hair strands, a body with a
shadow and stripes, speckle-sized dots) over a background. Frames move the drawing by an affine
transform; lines are drawn at twice the size on region boundaries and downsampled (anti-aliased), with
the shadow boundaries drawn as blue colour-trace lines (shadow role) as in cel production.

The finished frame (`finished`: keyframes, evaluation ground truth) is made by construction, from what the
generator drew, never through colorize's segmentation or render. At twice the size every pixel is paint
(its shape's colour), a main-line pixel (black ink) or a trace-line pixel (blue pencil); a trace-line
pixel is painted the colour of the shape its role names: a shadow line takes the shadow shape it bounds
(`SHADOW_PAIRS`), never the shape the rasteriser happened to put under it. Downsampled like the line art,
each pixel is then its paint with the main lines' ink over it at their drawn coverage (an anti-aliased
main-line rim stays as drawn: black over the fill of its own side), and every pixel of a trace line is
its role's colour. Pixels whose truth would be a blend the product cannot paint (a trace line's outer rim
over the other shape, a pixel that a main line and a trace line both touch, two different paints with no
line between them) are `SynthFrame.unscored`: the evaluation leaves them out (see `colorize.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PALETTE = np.array(
    [
        [235, 240, 250],  # 0 background
        [250, 220, 200],  # 1 skin
        [255, 255, 255],  # 2 eye white
        [40, 110, 60],  # 3 iris
        [200, 80, 60],  # 4 hair
        [60, 70, 160],  # 5 body
        [40, 45, 110],  # 6 body shadow
        [240, 200, 40],  # 7 stripe
        [180, 60, 160],  # 8 dots
        [150, 55, 45],  # 9 hair shadow
    ],
    np.uint8,
)
# (light, shadow) classes whose boundary is drawn as a blue shadow trace line: the line is filled with the
# shadow's colour (the second class, the darker of the two by construction)
SHADOW_PAIRS = ((5, 6), (4, 9))


@dataclass
class SynthFrame:
    lineart: np.ndarray  # H×W×4 uint8 RGBA (opaque, lines dark on white)
    # H×W×3 uint8 the paint layer, flat colours of `paint` (off the lines each shape's own colour)
    color: np.ndarray
    regions: np.ndarray  # H×W int32 ground-truth region id (shape instance), before lines
    # H×W int32 the shape whose paint is under each pixel: trace lines by role (a shadow line the shadow
    # shape it bounds), under main lines the shape on the uncovered side (or the nearest one)
    paint: np.ndarray
    ink: np.ndarray  # H×W float32 0..1: coverage of the black main lines (what `finished` draws over)
    unscored: np.ndarray  # H×W bool: pixels whose truth is a blend no engine paints (module docstring)


def _label_map(h: int, w: int, dots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(instance ids, class per instance) of the drawing at size h×w."""
    rng = np.random.default_rng(seed)
    inst = np.zeros((h, w), np.int32)
    classes = [0]
    s = min(h, w) / 540.0

    def add(cls: int) -> int:
        classes.append(cls)
        return len(classes) - 1

    cx, cy = w // 2, h // 2
    body = add(5)
    cv2.rectangle(inst, (int(cx - 150 * s), int(cy + 60 * s)), (int(cx + 150 * s), h + 10), body, -1)
    shadow = add(6)
    pts = np.array(
        [[cx + 40 * s, cy + 60 * s], [cx + 150 * s, cy + 60 * s], [cx + 150 * s, h], [cx + 90 * s, h]]
    )
    cv2.fillPoly(inst, [pts.astype(np.int32)], shadow)
    for i in range(3):
        y = int(cy + (110 + 50 * i) * s)
        cv2.rectangle(inst, (int(cx - 130 * s), y), (int(cx + 20 * s), y + int(14 * s)), add(7), -1)
    hair_back = add(4)
    cv2.ellipse(inst, (cx, int(cy - 40 * s)), (int(140 * s), int(150 * s)), 0, 0, 360, hair_back, -1)
    face = add(1)
    cv2.ellipse(inst, (cx, int(cy - 10 * s)), (int(100 * s), int(120 * s)), 0, 0, 360, face, -1)
    for side in (-1, 1):
        ex = int(cx + side * 45 * s)
        ey = int(cy - 10 * s)
        cv2.ellipse(inst, (ex, ey), (int(26 * s), int(18 * s)), 0, 0, 360, add(2), -1)
        cv2.circle(inst, (ex, ey), int(12 * s), add(3), -1)
        cv2.circle(inst, (ex - int(5 * s), ey - int(5 * s)), max(2, int(4 * s)), add(2), -1)
    for i in range(7):
        x0 = cx - 110 * s + i * 36 * s
        tip = [x0 + 18 * s, cy + (-60 + 25 * (i % 3)) * s]
        pts = np.array([[x0, cy - 140 * s], [x0 + 36 * s, cy - 140 * s], tip])
        cv2.fillPoly(inst, [pts.astype(np.int32)], add(9 if i % 2 else 4))
    for _ in range(dots):
        x, y = rng.integers(int(20 * s), w - int(20 * s)), rng.integers(int(20 * s), int(cy - 160 * s) + 1)
        cv2.circle(inst, (int(x), int(y)), int(rng.integers(3, 7) * s) + 1, add(8), -1)
    return inst, np.array(classes, np.int32)


def make_frame(
    h: int,
    w: int,
    shift: tuple[float, float] = (0.0, 0.0),
    angle: float = 0.0,
    dots: int = 12,
    seed: int = 0,
    line_width: int = 2,
    gaps: int = 0,
) -> SynthFrame:
    """One frame: the drawing moved by `shift` (x, y pixels) and rotated by `angle` degrees."""
    up = 2
    inst, classes = _label_map(h * up, w * up, dots, seed)
    m = cv2.getRotationMatrix2D((w * up / 2, h * up / 2), angle, 1.0)
    m[:, 2] += np.array(shift) * up
    inst = cv2.warpAffine(inst.astype(np.float32), m, (w * up, h * up), flags=cv2.INTER_NEAREST).astype(
        np.int32
    )
    drawn = _draw(inst, classes, h, w, up, line_width, gaps, seed)
    return SynthFrame(
        lineart=drawn.lineart,
        color=PALETTE[classes[drawn.paint]],
        regions=inst[::up, ::up],
        paint=drawn.paint,
        ink=drawn.ink,
        unscored=drawn.unscored,
    )


@dataclass
class _Drawn:
    lineart: np.ndarray
    paint: np.ndarray
    ink: np.ndarray
    unscored: np.ndarray


def _draw(
    inst: np.ndarray, classes: np.ndarray, h: int, w: int, up: int, line_width: int, gaps: int, seed: int
) -> _Drawn:
    """Line art at h×w of an instance map drawn at `up` times the size (`classes`: class per instance), with
    the paint under every pixel, the main lines' coverage and the unscored pixels (module docstring)."""
    cls = classes[inst]
    edge = np.zeros(inst.shape, bool)
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    edge[1:, :] |= inst[1:, :] != inst[:-1, :]
    pairs = []
    for a, b in SHADOW_PAIRS:
        pair = np.zeros(inst.shape, bool)
        pair[:, 1:] |= ((cls[:, 1:] == a) & (cls[:, :-1] == b)) | ((cls[:, 1:] == b) & (cls[:, :-1] == a))
        pair[1:, :] |= ((cls[1:, :] == a) & (cls[:-1, :] == b)) | ((cls[1:, :] == b) & (cls[:-1, :] == a))
        pairs.append(pair)
    colored = np.logical_or.reduce(pairs)
    k = np.ones((line_width * up - 1, line_width * up - 1), np.uint8)
    black = cv2.dilate((edge & ~colored).view(np.uint8), k)
    blue = cv2.dilate(colored.view(np.uint8), k) & (1 - black)
    if gaps:
        rng = np.random.default_rng(seed + 1)
        ys, xs = np.nonzero(black)
        for i in rng.choice(len(ys), size=min(gaps, len(ys)), replace=False):
            r = up * 2
            black[max(0, ys[i] - r) : ys[i] + r, max(0, xs[i] - r) : xs[i] + r] = 0
    # Paint: each shape's own pixels; a shadow trace line's pixels the shadow shape it bounds (the nearest
    # pixel of the pair's shadow class); under the main lines the nearest paint.
    paint = inst.copy()
    for (_, shadow), pair in zip(SHADOW_PAIRS, pairs, strict=True):
        line = (cv2.dilate(pair.view(np.uint8), k) > 0) & (blue > 0) & (cls != shadow)
        if line.any():
            paint[line] = _nearest(cls == shadow, inst, line)
    ink_up = black > 0
    if ink_up.any() and not ink_up.all():
        paint[ink_up] = _nearest(~ink_up, paint, ink_up)
    rgb = np.full((h * up, w * up, 3), 255, np.float32)
    rgb[black > 0] = 0
    rgb[blue > 0] = (30, 60, 255)
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    lineart = np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.full((h, w), 255, np.uint8)])
    # Per pixel of the h×w frame, its up×up samples: the paint of those no main line covers.
    blocks = paint.reshape(h, up, w, up).transpose(0, 2, 1, 3).reshape(h, w, up * up)
    bare = ~ink_up.reshape(h, up, w, up).transpose(0, 2, 1, 3).reshape(h, w, up * up)
    big = int(paint.max()) + 1
    lo = np.where(bare, blocks, big).min(axis=-1)
    hi = np.where(bare, blocks, -1).max(axis=-1)
    # The main lines' coverage as the line art stores it (8 bits: a half-covered pixel is 128, ink 127).
    cover = cv2.resize(ink_up.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    ink = (255 - np.clip(255 * (1 - cover) + 0.5, 0, 255).astype(np.uint8)).astype(np.float32) / 255
    trace = cv2.resize((blue > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    small = np.where(bare.any(axis=-1), lo, blocks[..., 0]).astype(np.int32)
    unscored = (bare.any(axis=-1) & (lo != hi)) | ((ink > 0) & (trace > 0))
    return _Drawn(lineart, small, ink, unscored)


def _nearest(source: np.ndarray, values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`values` at the nearest `source` pixel (H×W bool) of each `where` pixel, in raster order."""
    _, nearest = cv2.distanceTransformWithLabels(
        (~source).view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    sy, sx = np.nonzero(source)
    k = nearest[where] - 1
    return values[sy[k], sx[k]]


@dataclass
class OverlapFrame(SynthFrame):
    masks: dict[str, np.ndarray]  # character -> H×W bool, visible pixels only (as in production masks)


def make_overlap_frame(
    h: int, w: int, t: float, post_speed: float = 0.0, tail: float = 7.0, line_width: int = 2
) -> OverlapFrame:
    """Two characters, "post" (standing, body over dark legs, moving right by `post_speed` * w over the
    shot) and "cat" (a round body with a long thin tail, walking right to left in front of the post): at
    `t` = 0 the cat is right of the post, at 1 it has passed in front of it. Masks hold each character's
    visible pixels."""
    up = 2
    hh, ww = h * up, w * up
    s = min(h, w) / 180.0 * up
    inst = np.zeros((hh, ww), np.int32)
    owner = [0]  # per instance: 0 background, 1 post, 2 cat
    classes = [0]

    def add(cls: int, who: int) -> int:
        classes.append(cls)
        owner.append(who)
        return len(classes) - 1

    px = int(ww * (0.5 + post_speed * (t - 0.5)))
    cv2.rectangle(inst, (int(px - 30 * s), int(20 * s)), (int(px + 30 * s), int(90 * s)), add(5, 1), -1)
    cv2.rectangle(inst, (int(px - 24 * s), int(90 * s)), (int(px - 4 * s), int(160 * s)), add(6, 1), -1)
    cv2.rectangle(inst, (int(px + 4 * s), int(90 * s)), (int(px + 24 * s), int(160 * s)), add(6, 1), -1)
    cx, cy = ww * (0.85 - 0.7 * t), 140 * s
    ends = np.array([[cx - 30 * s, cy - 10 * s], [cx - 70 * s, cy - 60 * s]])
    cv2.line(inst, ends[0].astype(int), ends[1].astype(int), add(4, 2), max(2, int(tail * s)))
    cv2.ellipse(inst, (int(cx), int(cy)), (int(40 * s), int(22 * s)), 0, 0, 360, add(7, 2), -1)
    cv2.ellipse(
        inst, (int(cx + 5 * s), int(cy + 6 * s)), (int(22 * s), int(10 * s)), 0, 0, 360, add(1, 2), -1
    )
    cls = np.array(classes, np.int32)
    drawn = _draw(inst, cls, h, w, up, line_width, 0, 0)
    small = inst[::up, ::up]
    who = np.array(owner)[small]
    return OverlapFrame(
        lineart=drawn.lineart,
        color=PALETTE[cls[drawn.paint]],
        regions=small,
        paint=drawn.paint,
        ink=drawn.ink,
        unscored=drawn.unscored,
        masks={"post": who == 1, "cat": who == 2},
    )


def finished(frame: SynthFrame, colors: np.ndarray | None = None) -> np.ndarray:
    """The finished frame by construction (what a colored keyframe or the ground truth looks like): the
    paint (`colors`, H×W×3 or ×4, uint8 or uint16, default the flat `frame.color`; made from `frame.paint`,
    so trace lines are in their role's colour) with the black main lines over it at their drawn coverage
    (`frame.ink`, straight alpha: over transparent paint a line keeps its own coverage as alpha)."""
    paint = frame.color if colors is None else colors
    top = float(np.iinfo(paint.dtype).max)
    a = frame.ink[..., None].astype(np.float64)
    p = paint.astype(np.float64)
    if paint.shape[2] == 3:
        out = p * (1 - a)
    else:
        pa = p[..., 3:] / top
        out_a = a + pa * (1 - a)
        rgb = p[..., :3] * pa * (1 - a) / np.maximum(out_a, 1e-9)
        out = np.dstack([np.where(out_a > 0, rgb, 0), out_a * top])
    return np.clip(out + 0.5, 0, top).astype(paint.dtype)


def region_map(frame: SynthFrame) -> np.ndarray:
    """Ground-truth region ids (shape instance + 1) with every pixel a line touches set to 0 (not counted)."""
    ids = frame.regions.astype(np.int64) + 1
    ids[frame.lineart[..., :3].min(axis=-1) < 255] = 0
    return ids


def shading(h: int, w: int, shift: tuple[float, float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """A smooth multiplicative shading field (H×W float32, about 0.55..1.15) drawn in the drawing's own
    coordinates and moved with it: light from the top left, a soft round shadow, fine paper grain."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    s = min(h, w)
    field = 1.1 - 0.35 * (xs / w * 0.4 + ys / h * 0.6)
    field -= 0.25 * np.exp(-(((xs - 0.62 * w) ** 2 + (ys - 0.58 * h) ** 2) / (2 * (0.12 * s) ** 2)))
    field += 0.03 * np.sin(xs / 3.0) * np.sin(ys / 4.0)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(field, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def shaded(color: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Flat colors times a shading field (a painted keyframe)."""
    return np.clip(color.astype(np.float32) * field[..., None] + 0.5, 0, 255).astype(np.uint8)


def alpha_lines(lineart: np.ndarray) -> np.ndarray:
    """The same line art with the lines in alpha over full transparency (as ink-and-paint packages export)."""
    rgb = lineart[..., :3].astype(np.float32)
    ink = 255 - rgb.min(axis=-1)
    a = np.maximum(ink / 255, 1e-6)[..., None]
    color = np.clip((rgb - 255 * (1 - a)) / a + 0.5, 0, 255)  # the line's own color, un-composited
    return np.dstack([color, ink]).astype(np.uint8)


def transparent_background(color: np.ndarray) -> np.ndarray:
    """RGBA colors with the background (PALETTE[0]) transparent, as a production cel."""
    bg = (color == PALETTE[0]).all(axis=-1)
    return np.dstack([color, np.where(bg, 0, 255).astype(np.uint8)])


def deep_color(frame: SynthFrame) -> np.ndarray:
    """16-bit flat colors (H×W×3 uint16) that round to the frame's 8-bit colors (`frame.color`), each shape
    instance (`frame.paint`) with its own low bytes (two stripes of one 8-bit color differ at 16 bits), as
    a 16-bit paint package's."""
    inst = frame.paint.astype(np.int64)[..., None]
    offset = (inst * 53 + np.arange(3) * 29) % 201 - 100  # |offset| <= 100 < 257 / 2: same 8-bit color
    return np.clip(frame.color.astype(np.int64) * 257 + offset, 0, 65535).astype(np.uint16)


# -- colour-trace lines -------------------------------------------------------------------------------------

TRACE_COLORS = {
    "background": (235, 240, 250),
    "light": (250, 220, 200),  # left of the blue line
    "shadow": (200, 150, 130),  # between the blue and the red line: the darker side of both
    "highlight": (255, 245, 235),  # right of the red line: the lighter side
}
BLUE_PENCIL, RED_PENCIL = (0, 0, 255), (255, 0, 0)


@dataclass
class TraceFrame:
    lineart: np.ndarray  # H×W×4 uint8: opaque, anti-aliased lines on white
    color: np.ndarray  # H×W×3 uint8: the expected fill (trace lines in their role's colour, marks not)
    blue: np.ndarray  # H×W bool: core pixels of the blue (shadow) line
    red: np.ndarray  # H×W bool: core pixels of the red (highlight) line
    mark: np.ndarray  # H×W bool: core pixels of a red mark inside one region (line work, kept)
    black: np.ndarray  # H×W bool: core pixels of the black main lines


def trace_frame(
    h: int = 120, w: int = 200, shift: tuple[int, int] = (0, 0), pencil: str = "trace"
) -> TraceFrame:
    """A box split in three by a blue line (shadow: light | shadow) and a red line (highlight: shadow |
    highlight), a short red mark inside the light part; black main lines. `pencil="blue"`: the same
    drawing with every line in blue pencil (a drawing traced in blue). Expected fill by construction:
    blue line pixels take the shadow colour, red line pixels the highlight colour."""
    dx, dy = shift
    box = ((20 + dx, 15 + dy), (180 + dx, 105 + dy))
    blue_line = ((80 + dx, 15 + dy), (70 + dx, 105 + dy))
    red_line = ((130 + dx, 15 + dy), (140 + dx, 105 + dy))
    mark = ((40 + dx, 50 + dy), (46 + dx, 70 + dy))
    color = np.zeros((h, w, 3), np.uint8)
    color[:] = TRACE_COLORS["background"]
    x0, y0 = box[0]
    x1, y1 = box[1]
    parts = (
        ("light", [(x0, y0), blue_line[0], blue_line[1], (x0, y1)]),
        ("shadow", [blue_line[0], red_line[0], red_line[1], blue_line[1]]),
        ("highlight", [red_line[0], (x1, y0), (x1, y1), red_line[1]]),
    )
    for name, pts in parts:
        cv2.fillPoly(color, [np.array(pts, np.int32)], TRACE_COLORS[name])

    def stroke(ends: tuple, width: int = 2) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.line(m, ends[0], ends[1], 255, width, cv2.LINE_AA)
        return m

    black_ink = np.zeros((h, w), np.uint8)
    cv2.rectangle(black_ink, box[0], box[1], 255, 2, cv2.LINE_AA)
    inks = {"blue": stroke(blue_line), "red": stroke(red_line), "mark": stroke(mark)}
    # Expected fill under the trace lines (their cores; fringes keep their own side's colour): their role's
    # side.
    color[inks["blue"] >= 200] = TRACE_COLORS["shadow"]
    color[inks["red"] >= 200] = TRACE_COLORS["highlight"]
    pencils = {"black": (0, 0, 0), "blue": BLUE_PENCIL, "red": RED_PENCIL, "mark": RED_PENCIL}
    if pencil == "blue":
        pencils = dict.fromkeys(pencils, BLUE_PENCIL)
    rgb = np.full((h, w, 3), 255.0, np.float32)
    for name, ink in (
        ("blue", inks["blue"]),
        ("red", inks["red"]),
        ("mark", inks["mark"]),
        ("black", black_ink),
    ):
        a = ink.astype(np.float32)[..., None] / 255
        rgb = rgb * (1 - a) + np.array(pencils[name], np.float32) * a
    lineart = np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.full((h, w), 255, np.uint8)])
    core = {name: (ink >= 200) & (black_ink == 0) for name, ink in inks.items()}
    return TraceFrame(lineart, color, core["blue"], core["red"], core["mark"], black_ink >= 200)


def trace_keyframe(frame: TraceFrame, blue_fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """The painted keyframe of a `trace_frame` as a painter hands it in (RGB): the expected fill, the black
    lines and the mark drawn over it, trace lines painted (the blue line in `blue_fill` when given)."""
    out = frame.color.copy()
    if blue_fill is not None:
        out[frame.blue] = blue_fill
    out[frame.black] = 0
    out[frame.mark] = RED_PENCIL
    return out


def cut_by_the_top_edge(h: int = 160, w: int = 240) -> np.ndarray:
    """Line art cut by the frame's top edge: a horizontal line at y = 10 under two strokes from the edge
    at x = 100 and 104 (a 3-px channel, 10 rows tall, that goes on beyond the edge), and circles below
    (ink for the global motion to follow)."""
    img = np.full((h, w, 4), 255, np.uint8)
    black = (0, 0, 0, 255)
    cv2.line(img, (0, 10), (w - 1, 10), black, 1)
    cv2.line(img, (100, 0), (100, 10), black, 1)
    cv2.line(img, (104, 0), (104, 10), black, 1)
    for cx, cy, r in ((40, 60, 18), (120, 90, 25), (190, 50, 15), (70, 130, 12), (200, 125, 20)):
        cv2.circle(img, (cx, cy), r, black, 2)
    return img


def run_flat(
    frames: list[tuple[np.ndarray, np.ndarray]], only: list[int] | None = None, **flat: object
) -> list:
    """The flat engine on (line art RGBA, colored frame RGB) pairs, frame 0 the only keyframe (the others'
    colors are not given to it): its results, in order (of the frames `only`, when given: a chunk).
    `flat`: flat.* settings."""
    from colorize.engines.base import FrameInput, ShotContext
    from colorize.engines.flat import FlatEngine
    from colorize.settings import Settings

    settings = Settings.model_validate({"flat": flat})
    engine = FlatEngine(settings)
    engine.prepare(
        ShotContext(
            frames=tuple(range(len(frames))),
            keyframes=(0,),
            size=frames[0][0].shape[:2],
            characters=(),
            background=None,
            settings=settings,
            load_lineart=lambda f: frames[f][0],
            load_keyframe=lambda f: frames[f][1],
            load_masks=lambda f: {},
        )
    )
    return engine.colorize(
        [
            FrameInput(f, line, {}, color if f == 0 else None)
            for f, (line, color) in enumerate(frames)
            if only is None or f in only
        ]
    )


def painted_at(result, line: np.ndarray, point: tuple[int, int]) -> tuple[int, int, int]:
    """The color a result has in the region (of the line art `line`) around `point` (x, y): the median
    over its pixels off the lines."""
    from colorize.regions.segment import segment

    seg = segment(line, 2, 8, 0.4)
    inside = (seg.labels == seg.labels[point[1], point[0]]) & (seg.ink == 0)
    return tuple(int(v) for v in np.median(result.image[..., :3][inside], axis=0))
