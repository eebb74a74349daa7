"""Rendering a filled frame: a paint layer (flat region colors, or pixels carried region by region from a
colored source), then the line layer on top.

The paint layer is RGB (opaque output) or RGBA (output with alpha: transparent regions stay transparent),
uint8, or uint16 for 16-bit output from 16-bit sources (`paint_layer16`: colors and lines composited at 16
bits). Full-frame arithmetic on the 8-bit opaque path is OpenCV on uint8: numpy per-channel math costs
several times more at 1080p; the RGBA and 16-bit paths are float32 numpy (they only run for shots with
transparency or 16-bit output).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from colorize.flow import warp
from colorize.images import to_uint8, to_uint16
from colorize.regions.lines import LineWork, trace_labels
from colorize.regions.palette import unpack_color16
from colorize.regions.segment import Segmentation, colored_line_u8, lookup


def _per_pixel(seg: Segmentation, table: np.ndarray, filled: np.ndarray | None) -> np.ndarray:
    """`table` per pixel of `filled` (labels with the lines filled in), default `seg.filled`."""
    return seg.per_pixel(table, filled=True) if filled is None else lookup(filled, table)


def paint_layer(
    seg: Segmentation, region_colors: np.ndarray, alpha: bool, filled: np.ndarray | None = None
) -> np.ndarray:
    """H×W×3 RGB (or ×4 RGBA) uint8 from packed per-label colors; line pixels take a neighbour region's
    (the label `filled` gives them, default `seg.filled`)."""
    packed = _per_pixel(seg, region_colors.astype(np.int64).astype(np.uint32).view(np.int32), filled)
    # Little-endian 0xAARRGGBB reads as bytes B, G, R, A.
    bgra = packed.view(np.uint8).reshape(*packed.shape, 4)
    if alpha:
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    rgb = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)
    if (region_colors == 0).any():  # transparent regions in an opaque output: paper white
        rgb[packed == 0] = 255
    return rgb


def paint_layer16(
    seg: Segmentation, region_colors16: np.ndarray, alpha: bool, filled: np.ndarray | None = None
) -> np.ndarray:
    """`paint_layer` at 16 bits: H×W×3 RGB (or ×4 RGBA) uint16 from packed 16-bit per-label colors
    (`palette.pack_color16`)."""
    rgba = unpack_color16(_per_pixel(seg, region_colors16, filled)).reshape(*seg.labels.shape, 4)
    if alpha:
        return rgba
    rgb = np.ascontiguousarray(rgba[..., :3])
    if (region_colors16 == 0).any():  # transparent regions in an opaque output: paper white
        rgb[rgba[..., 3] == 0] = 65535
    return rgb


def fill_trace(
    seg: Segmentation,
    lw: LineWork,
    colors: np.ndarray,
    no_color: int,
    table: np.ndarray,
    alpha: bool,
    layer: Callable[..., np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(the paint layer `layer(seg, table, alpha, filled)` (`paint_layer` or `paint_layer16`) with the
    trace lines of `lw` filled by their roles, the trace pixels left unfilled (H×W uint8 0/255)).
    `colors`: the regions' packed 8-bit colors (`no_color`: unresolved), what the roles compare."""
    if not lw.count:
        return layer(seg, table, alpha), np.zeros(seg.labels.shape, np.uint8)
    base = seg.filled16 if seg.filled16 is not None else seg.filled
    filled, unfilled = trace_labels(lw, seg.labels, base, colors, no_color)
    paint = layer(seg, table, alpha, filled)
    top = int(np.iinfo(paint.dtype).max)
    for mask, rgb in lw.fixed_colors():
        paint[mask] = [c * top // 255 for c in rgb] + [top] * (paint.shape[2] - 3)
    return paint, unfilled


def keyframe_lines(
    lw: LineWork, lineart: np.ndarray, keyframe: np.ndarray, tolerance: int = 48
) -> np.ndarray:
    """H×W uint8 0/255: the trace-coloured line pixels (trace lines, marks) a keyframe of this very drawing
    painted:
    opaque there and off the pencil's colour by more than `tolerance` in some channel."""
    out = np.zeros(lw.colored.shape, np.uint8)
    pts = cv2.findNonZero(lw.colored)
    if pts is None:
        return out
    pts = pts.reshape(-1, 2)
    xs, ys = pts[:, 0], pts[:, 1]
    key = to_uint8(keyframe)[ys, xs].astype(np.int16)
    pencil = to_uint8(lineart)[ys, xs, :3].astype(np.int16)
    painted = np.abs(key[:, :3] - pencil).max(axis=1) > tolerance
    if key.shape[1] == 4:
        painted &= key[:, 3] >= 128
    out[ys[painted], xs[painted]] = 255
    return out


def paste_off_lines(
    paint: np.ndarray, seg: Segmentation, source: np.ndarray, where: np.ndarray | None = None
) -> None:
    """Copy `source` pixels (same layout as `paint`) into `paint` where `where` (H×W bool, default
    everywhere) and there is no ink at all: pixels the line layer does not touch keep the source's values."""
    mask = cv2.compare(seg.ink, 0, cv2.CMP_EQ)
    if where is not None:
        mask = cv2.bitwise_and(mask, where.view(np.uint8))
    cv2.copyTo(source, mask, paint)


def carry_texture(
    paint: np.ndarray,
    seg: Segmentation,
    textured: np.ndarray,
    origin: np.ndarray,
    maps: np.ndarray,
    source_seg: Segmentation,
    source: np.ndarray,
) -> int:
    """Carry the source's pixels into each textured region, never across a line: region r of this frame
    (`textured[r]`) takes only pixels of its matched source region `origin[r]`, found through `maps`
    (positions in the source frame). Pixels whose mapped position falls outside that region take the
    nearest carried pixel of the same region, or keep the flat paint. Returns the pixels carried."""
    labels = seg.labels
    want = np.take(textured.view(np.uint8), labels) > 0
    if not want.any():
        return 0
    src_labels = (
        source_seg.labels16 if source_seg.labels16 is not None else source_seg.labels.astype(np.float32)
    )
    landed = warp(src_labels, maps, nearest=True).astype(np.int64)
    valid = want & (landed == np.take(origin, labels))
    if not valid.any():
        return 0
    sampled = warp(source, maps, nearest=True)
    fill = want & ~valid
    if fill.any():
        # Nearest carried pixel (raster index among valid pixels), kept only when it is in the same region.
        _, nearest = cv2.distanceTransformWithLabels(
            (~valid).view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        vy, vx = np.nonzero(valid)
        fy, fx = np.nonzero(fill)
        k = nearest[fy, fx] - 1
        same = labels[vy[k], vx[k]] == labels[fy, fx]
        sampled[fy[same], fx[same]] = sampled[vy[k[same]], vx[k[same]]]
        valid[fy[same], fx[same]] = True
    paste_off_lines(paint, seg, sampled, valid)
    return int(valid.sum())


def colored_lines_of(seg: Segmentation, lineart: np.ndarray) -> np.ndarray:
    """`colored_line_u8` of the line art `seg` was made from (cached on the segmentation)."""
    if "colored" not in seg.cache:
        seg.cache["colored"] = colored_line_u8(to_uint8(lineart), seg.ink)
    return seg.cache["colored"]


def lines_in_alpha(seg: Segmentation, lineart: np.ndarray) -> bool:
    """Whether the line art `seg` was made from has its lines in alpha (any transparency at 8 bits, as
    the segmentation saw it; cached)."""
    if "alpha" not in seg.cache:
        seg.cache["alpha"] = bool(cv2.minMaxLoc(cv2.extractChannel(to_uint8(lineart), 3))[0] < 255)
    return seg.cache["alpha"]


def render(
    seg: Segmentation,
    paint: np.ndarray,
    lineart: np.ndarray,
    lines: str = "keep",
    colored_lines: str = "fill",
    over: np.ndarray | None = None,
) -> np.ndarray:
    """The finished frame: the line layer of `lineart` over `paint` (RGB or RGBA, which sets the output;
    uint8, or uint16: then the lines are composited at 16 bits from `lineart`, uint8 or uint16).

    lines="fill": the paint layer only (line pixels already carry a neighbouring region's color).
    lines="keep": the original line layer is composited over it, except colored lines when
    colored_lines="fill" (cel finishing paints shadow/highlight boundary lines over): the pixels of `over`
    (H×W uint8 0/255, the trace lines of `lines.classify`), default every colored line pixel.
    """
    if lines == "fill":
        return paint
    ink, colored = main_line_ink(seg, lineart, colored_lines, over)
    alpha_lines = lines_in_alpha(seg, lineart)
    if paint.dtype == np.uint16:
        return _over(paint, *_line_layer16(lineart, ink, alpha_lines), alpha_lines)
    if paint.shape[2] == 4:
        return _over(paint, lineart, ink, alpha_lines)
    rgb = cv2.cvtColor(lineart, cv2.COLOR_RGBA2RGB)
    if alpha_lines:
        # Lines in alpha: plain "over" of the line layer.
        a3 = cv2.merge([ink, ink, ink])
        under = cv2.multiply(paint, cv2.bitwise_not(a3), scale=1 / 255)
        return cv2.add(under, cv2.multiply(rgb, a3, scale=1 / 255))
    # Opaque lines on white paper: un-composite from white, then over the paint:
    # out = p - (255 - fill) * (1 - ink). Colored lines painted over (ink set to 0) take the paint.
    paper = cv2.bitwise_not(ink)
    out = cv2.subtract(
        rgb, cv2.multiply(cv2.bitwise_not(paint), cv2.merge([paper, paper, paper]), scale=1 / 255)
    )
    if colored is not None:
        cv2.copyTo(paint, colored, out)
    return out


def main_line_ink(
    seg: Segmentation, lineart: np.ndarray, colored_lines: str = "fill", over: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(ink of the main lines, the painted-over mask or None): the one place that splits the line art into
    main lines (composited as drawn: the output's and the line layer's lines) and lines painted over.
    With colored_lines="fill", the pixels of `over` (H×W uint8 0/255: the trace lines of `lines.classify`,
    and coloured lines a keyframe painted over) are painted over (ink 0 there); default every coloured
    line pixel."""
    ink = seg.ink
    if colored_lines == "fill":
        colored = colored_lines_of(seg, lineart) if over is None else over
        if cv2.countNonZero(colored):
            return cv2.subtract(ink, colored), colored  # 0 on colored lines
    return ink, None


def line_layer(
    seg: Segmentation,
    lineart: np.ndarray,
    dtype: np.dtype,
    lines: str = "keep",
    colored_lines: str = "fill",
    over: np.ndarray | None = None,
) -> np.ndarray:
    """The line layer: H×W×4 RGBA of `dtype` (uint8 or uint16, the paint's), the main lines alone in their
    ink with straight (unpremultiplied) alpha, so that `line` over the paint layer is what `render` makes
    (within rounding). Lines in alpha keep their color; opaque line art on white paper has the paper taken
    out (color = (p - top * (1 - a)) / a). All transparent with lines="fill"."""
    h, w = seg.labels.shape
    if lines == "fill":
        return np.zeros((h, w, 4), dtype)
    ink, _ = main_line_ink(seg, lineart, colored_lines, over)
    alpha_lines = lines_in_alpha(seg, lineart)
    if dtype == np.uint8:  # OpenCV on uint8 planes (numpy float math costs several times more at 1080p)
        r, g, b, _ = cv2.split(to_uint8(lineart))
        if not alpha_lines:  # (p - (255 - ink)) * 255 / ink, rounded; 0 where ink is 0
            paper = cv2.bitwise_not(ink)
            r, g, b = (cv2.divide(cv2.subtract(c, paper), ink, scale=255) for c in (r, g, b))
        out = cv2.merge([r, g, b, ink])
        return cv2.bitwise_and(out, out, mask=cv2.compare(ink, 0, cv2.CMP_GT))
    source, ink = _line_layer16(lineart, ink, alpha_lines)
    top = float(np.iinfo(dtype).max)
    a = ink.astype(np.float32)[..., None] / top
    p = source[..., :3].astype(np.float32)
    color = p if alpha_lines else np.maximum(p - top * (1 - a), 0) / np.maximum(a, 1e-6)
    out = np.dstack([np.clip(color + 0.5, 0, top), ink.astype(np.float32)]).astype(dtype)
    out[ink == 0] = 0
    return out


def _line_layer16(lineart: np.ndarray, ink: np.ndarray, alpha_lines: bool) -> tuple[np.ndarray, np.ndarray]:
    """(line art as uint16, its line strength at 16 bits): alpha for lines in alpha, else the darkness of
    the darkest channel (as `segment.ink_u8`), kept only where the 8-bit `ink` (what the segmentation saw,
    with colored lines painted over taken out) is not 0, so pixels off the lines keep the paint exactly."""
    line16 = to_uint16(lineart)
    r, g, b, a = cv2.split(line16)
    ink16 = a if alpha_lines else cv2.bitwise_not(cv2.min(cv2.min(r, g), b))
    return line16, cv2.bitwise_and(ink16, ink16, mask=cv2.compare(ink, 0, cv2.CMP_GT))


def _over(paint: np.ndarray, lineart: np.ndarray, ink: np.ndarray, alpha_lines: bool) -> np.ndarray:
    """Line layer (color, alpha = ink) over the paint layer, in float32 at the paint's depth (`lineart` and
    `ink` have it too); over RGBA paint lines keep their alpha."""
    top = int(np.iinfo(paint.dtype).max)
    la = ink.astype(np.float32)[..., None] / top
    p = lineart[..., :3].astype(np.float32)
    # Premultiplied line color: the line art's RGB for lines in alpha; for opaque line art on white paper,
    # what is left after taking the white paper out (p = c * a + top * (1 - a)).
    line = p * la if alpha_lines else np.maximum(p - top * (1 - la), 0)
    if paint.shape[2] == 3:
        rgb = line + paint.astype(np.float32) * (1 - la)
        return np.clip(rgb + 0.5, 0, top).astype(paint.dtype)
    pa = paint[..., 3:4].astype(np.float32) / top
    under = paint[..., :3].astype(np.float32) * pa * (1 - la)
    out_a = la + pa * (1 - la)
    rgb = (line + under) / np.maximum(out_a, 1e-6)
    out = np.dstack([np.clip(rgb + 0.5, 0, top), np.clip(out_a * top + 0.5, 0, top)]).astype(paint.dtype)
    out[out[..., 3] == 0, :3] = 0
    return out
