#!/usr/bin/env python3
"""Generate the bundled sample shot: two characters moving over a background, 24 frames.

    python samples/make_sample_shot.py samples/shot001

Writes line art (anti-aliased black lines, one red shadow line), per-character masks, reference images, one
colored keyframe (frame 1001) and refs.yaml. Deterministic: the same files every time.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

W, H = 384, 256
FRAMES = range(1001, 1025)
INK = (20, 20, 24)
SHADOW_LINE = (200, 40, 40)

SKY, HILL, GROUND, SUN = (150, 200, 235), (110, 170, 90), (200, 180, 130), (250, 215, 90)
HERO = {
    "skin": (245, 205, 170),
    "hair": (70, 50, 40),
    "shirt": (60, 110, 200),
    "shirt_shade": (40, 80, 160),
    "pants": (50, 50, 70),
    "eye": (255, 255, 255),
}
CAT = {"fur": (235, 140, 50), "belly": (250, 225, 190), "ear": (240, 170, 170), "eye": (120, 200, 90)}


def background(canvas: np.ndarray, lines: np.ndarray) -> None:
    canvas[:] = SKY
    pts = np.array([[0, 150], [90, 110], [190, 140], [290, 100], [W, 135], [W, H], [0, H]], np.int32)
    cv2.fillPoly(canvas, [pts], HILL)
    cv2.polylines(lines, [pts[:5]], False, INK, 2, cv2.LINE_AA)
    ground = np.array([[0, 200], [W, 190], [W, H], [0, H]], np.int32)
    cv2.fillPoly(canvas, [ground], GROUND)
    cv2.line(lines, (0, 200), (W, 190), INK, 2, cv2.LINE_AA)
    cv2.circle(canvas, (330, 45), 22, SUN, -1, cv2.LINE_AA)
    cv2.circle(lines, (330, 45), 22, INK, 2, cv2.LINE_AA)


def hero(canvas: np.ndarray, lines: np.ndarray, mask: np.ndarray, x: int, y: int, t: float) -> None:
    """A simple kid: head with hair and eyes, shirt with a shadow side, legs."""
    swing = int(8 * math.sin(t * 2 * math.pi))
    legs = [
        np.array(
            [[x - 14, y + 40], [x - 2, y + 40], [x - 4 + swing, y + 80], [x - 16 + swing, y + 80]], np.int32
        ),
        np.array(
            [[x + 2, y + 40], [x + 14, y + 40], [x + 16 - swing, y + 80], [x + 4 - swing, y + 80]], np.int32
        ),
    ]
    body = np.array([[x - 20, y - 5], [x + 20, y - 5], [x + 24, y + 42], [x - 24, y + 42]], np.int32)
    for layer, color in ((canvas, None), (mask, 255)):
        for leg in legs:
            cv2.fillPoly(layer, [leg], color or HERO["pants"])
        cv2.fillPoly(layer, [body], color or HERO["shirt"])
    shade = np.array([[x + 4, y - 5], [x + 20, y - 5], [x + 24, y + 42], [x + 8, y + 42]], np.int32)
    cv2.fillPoly(canvas, [shade], HERO["shirt_shade"])
    for leg in legs:
        cv2.polylines(lines, [leg], True, INK, 2, cv2.LINE_AA)
    cv2.polylines(lines, [body], True, INK, 2, cv2.LINE_AA)
    cv2.line(lines, (x + 4, y - 5), (x + 8, y + 42), SHADOW_LINE, 1, cv2.LINE_AA)  # colored shadow boundary
    cv2.circle(canvas, (x, y - 25), 20, HERO["skin"], -1, cv2.LINE_AA)
    cv2.circle(mask, (x, y - 25), 21, 255, -1)
    cv2.ellipse(canvas, (x, y - 33), (20, 12), 0, 180, 360, HERO["hair"], -1, cv2.LINE_AA)
    cv2.ellipse(mask, (x, y - 33), (21, 13), 0, 180, 360, 255, -1)
    cv2.circle(lines, (x, y - 25), 20, INK, 2, cv2.LINE_AA)
    cv2.line(lines, (x - 20, y - 33), (x + 20, y - 33), INK, 2, cv2.LINE_AA)
    cv2.ellipse(lines, (x, y - 33), (20, 12), 0, 180, 360, INK, 2, cv2.LINE_AA)
    for dx in (-7, 7):
        cv2.circle(canvas, (x + dx, y - 24), 4, HERO["eye"], -1, cv2.LINE_AA)
        cv2.circle(lines, (x + dx, y - 24), 4, INK, 1, cv2.LINE_AA)


def cat(canvas: np.ndarray, lines: np.ndarray, mask: np.ndarray, x: int, y: int, t: float) -> None:
    """A cat: body, belly patch, head with ears and eyes, tail."""
    wag = int(10 * math.sin(t * 4 * math.pi))
    tail = np.array(
        [[x - 38, y - 2], [x - 62, y - 26 + wag], [x - 58, y - 30 + wag], [x - 34, y - 8]], np.int32
    )
    for layer, color in ((canvas, CAT["fur"]), (mask, 255)):
        cv2.fillPoly(layer, [tail], color)
        cv2.ellipse(layer, (x, y), (40, 20), 0, 0, 360, color, -1, cv2.LINE_AA)
        cv2.circle(layer, (x + 38, y - 18), 16, color, -1, cv2.LINE_AA)
        for ear in ((x + 26, y - 30), (x + 44, y - 33)):
            tri = np.array(
                [[ear[0] - 7, ear[1] + 4], [ear[0] + 7, ear[1] + 4], [ear[0], ear[1] - 12]], np.int32
            )
            cv2.fillPoly(layer, [tri], color)
    cv2.polylines(lines, [tail], True, INK, 2, cv2.LINE_AA)
    cv2.ellipse(lines, (x, y), (40, 20), 0, 0, 360, INK, 2, cv2.LINE_AA)
    cv2.ellipse(canvas, (x + 2, y + 8), (22, 9), 0, 0, 360, CAT["belly"], -1, cv2.LINE_AA)
    cv2.ellipse(lines, (x + 2, y + 8), (22, 9), 0, 0, 360, INK, 1, cv2.LINE_AA)
    cv2.circle(canvas, (x + 38, y - 18), 16, CAT["fur"], -1, cv2.LINE_AA)
    cv2.circle(lines, (x + 38, y - 18), 16, INK, 2, cv2.LINE_AA)
    for ear in ((x + 26, y - 30), (x + 44, y - 33)):
        inner = np.array([[ear[0] - 4, ear[1] + 2], [ear[0] + 4, ear[1] + 2], [ear[0], ear[1] - 7]], np.int32)
        cv2.fillPoly(canvas, [inner], CAT["ear"])
        cv2.polylines(lines, [inner], True, INK, 1, cv2.LINE_AA)
    for dx in (-6, 6):
        cv2.circle(canvas, (x + 38 + dx, y - 20), 3, CAT["eye"], -1, cv2.LINE_AA)
        cv2.circle(lines, (x + 38 + dx, y - 20), 3, INK, 1, cv2.LINE_AA)


def render(frame_index: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(line art RGB, colored frame RGB, masks) of one frame."""
    t = frame_index / len(FRAMES)
    color = np.zeros((H, W, 3), np.uint8)
    lines = np.full((H, W, 3), 255, np.uint8)
    background(color, lines)
    masks = {}
    # Each character is drawn on its own layers and laid over what is behind it (the cat passes in front).
    for name, draw, x, y in (
        ("hero", hero, 90 + 5 * frame_index, 135),
        ("cat", cat, 250 - 3 * frame_index, 200),
    ):
        c_color, c_lines, c_mask = np.zeros_like(color), np.full_like(lines, 255), np.zeros((H, W), np.uint8)
        draw(c_color, c_lines, c_mask, x, y, t)
        cover = cv2.dilate(c_mask, np.ones((3, 3), np.uint8)) > 0
        color[cover] = c_color[cover]
        lines[cover] = c_lines[cover]
        for other in masks.values():
            other[cover] = 0
        masks[name] = (cover * 255).astype(np.uint8)
    # The colored frame is painted under the same lines, as an artist's color key would be.
    ink = 255 - lines.min(axis=-1, keepdims=True).astype(np.float32)
    colored = (color * (1 - ink / 255) + lines * (ink / 255)).round().astype(np.uint8)
    return lines, colored, masks


def reference_sheet(palette: dict, draw, size: tuple[int, int] = (192, 192)) -> np.ndarray:
    """A character on white, as a model-sheet reference."""
    h, w = size
    canvas = np.full((h, w, 3), 255, np.uint8)
    lines = np.full((h, w, 3), 255, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    draw(canvas, lines, mask, w // 2 - 10, h // 2 + 10, 0.0)
    ink = 255 - lines.min(axis=-1, keepdims=True).astype(np.float32)
    return (canvas * (1 - ink / 255) + lines * (ink / 255)).round().astype(np.uint8)


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])


MANIFEST = """\
# Sample shot: two characters over a background, 24 frames, one colored keyframe.
version: 1
lineart: lineart/sh001.####.png
output: color/sh001.####.png
keyframes: keys/sh001.####.png
characters:
  hero:
    reference: refs/hero.png
    mask: masks/hero/sh001.####.png
  cat:
    reference: refs/cat.png
    mask: masks/cat/sh001.####.png
background:
  reference: refs/bg.png
engine: auto
preset: default
seed: 1234
"""


def main(out: Path) -> None:
    for i, frame in enumerate(FRAMES):
        lines, colored, masks = render(i)
        write(out / "lineart" / f"sh001.{frame:04d}.png", lines)
        for name, mask in masks.items():
            write(out / "masks" / name / f"sh001.{frame:04d}.png", mask)
        if i == 0:
            write(out / "keys" / f"sh001.{frame:04d}.png", colored)
    write(out / "refs" / "hero.png", reference_sheet(HERO, hero))
    write(out / "refs" / "cat.png", reference_sheet(CAT, cat))
    bg = np.zeros((H, W, 3), np.uint8)
    bg_lines = np.full((H, W, 3), 255, np.uint8)
    background(bg, bg_lines)
    write(out / "refs" / "bg.png", bg)
    (out / "refs.yaml").write_text(MANIFEST)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "shot001"))
