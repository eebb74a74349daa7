"""Rendering a filled frame: region colors, line pixels from a neighbour region, line layer on top."""

from __future__ import annotations

import cv2
import numpy as np

from colorize.regions.segment import Segmentation, colored_line_u8, fill_lines


def render(
    seg: Segmentation,
    region_colors: np.ndarray,
    lineart: np.ndarray,
    lines: str = "keep",
    colored_lines: str = "fill",
) -> np.ndarray:
    """H×W×3 uint8 RGB frame from packed per-label colors (`region_colors`, (count+1,) int32 0xRRGGBB).

    lines="fill": the flat layer only (line pixels take a neighbouring region's color).
    lines="keep": the original line layer is composited over it, except colored lines when
    colored_lines="fill" (cel finishing paints shadow/highlight boundary lines over).
    All full-frame arithmetic is OpenCV on uint8: numpy per-channel math costs several times more at 1080p.
    """
    packed = np.take(region_colors.astype(np.int32), fill_lines(seg.labels))
    # Little-endian 0x00RRGGBB reads as bytes B, G, R, 0.
    flat = cv2.cvtColor(packed.view(np.uint8).reshape(*packed.shape, 4), cv2.COLOR_BGRA2RGB)
    if lines == "fill":
        return flat
    ink = seg.ink
    colored = None
    if colored_lines == "fill":
        colored = colored_line_u8(lineart, ink)
        if cv2.countNonZero(colored):
            ink = cv2.subtract(ink, colored)  # 0 on colored lines
        else:
            colored = None
    rgb = cv2.cvtColor(lineart, cv2.COLOR_RGBA2RGB)
    if cv2.minMaxLoc(cv2.extractChannel(lineart, 3))[0] < 255:
        # Lines in alpha: plain "over" of the line layer.
        a3 = cv2.merge([ink, ink, ink])
        under = cv2.multiply(flat, cv2.bitwise_not(a3), scale=1 / 255)
        return cv2.add(under, cv2.multiply(rgb, a3, scale=1 / 255))
    # Opaque lines on white paper: un-composite from white, then over the flat colors:
    # out = p - (255 - fill) * (1 - ink). Colored lines painted over (ink set to 0) take the flat color.
    paper = cv2.bitwise_not(ink)
    out = cv2.subtract(
        rgb, cv2.multiply(cv2.bitwise_not(flat), cv2.merge([paper, paper, paper]), scale=1 / 255)
    )
    if colored is not None:
        cv2.copyTo(flat, colored, out)
    return out
