"""Colour-trace line figures of a finished frame, measured from the line art and the frame alone.

Independent of the engine's own classification (`regions.lines`), so the figures can judge it:

- pencil pixels: line-art pixels drawn in a saturated blue (shadow), red (highlight) or green (shadow)
  pencil: the colour's brightest channel is that one, at least 128, and the others under 100;
- strokes: 8-connected pencil pixels of one colour; the colours a stroke separates are the two most
  common colours of the frame's line-free pixels (line-art ink 0, opaque) within 2 px of it. A stroke
  whose second colour covers less than a quarter of what its first does separates nothing (a mark drawn
  inside one paint area): its pixels are not trace pixels;
- trace pixels: pencil pixels of the other strokes. A trace pixel is *on its role's side* when it has the
  darker (shadow) or lighter (highlight) of its stroke's two colours, by Rec. 601 luma; it *keeps its
  pencil colour* when it is within 8/255 per channel of the line art's colour (any pencil pixel).

`trace_figures` gives these per frame; `trace_match` compares a frame with its finished truth.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

PENCILS = {"blue": (2, "shadow"), "red": (0, "highlight"), "green": (1, "shadow")}  # channel, role
_NEAR = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)])


def _pencil(line: np.ndarray) -> dict[str, np.ndarray]:
    """Pencil colour name -> H×W bool of its pixels in the RGBA uint8 line art."""
    rgb = line[..., :3].astype(np.int16)
    drawn = line[..., 3] > 0 if (line[..., 3] < 255).any() else rgb.min(axis=-1) < 255
    out = {}
    for name, (c, _) in PENCILS.items():
        others = [rgb[..., k] for k in range(3) if k != c]
        out[name] = drawn & (rgb[..., c] >= 128) & (others[0] < 100) & (others[1] < 100)
    return out


def _packed(image: np.ndarray) -> np.ndarray:
    """H×W int64 0xAARRGGBB of an RGB/RGBA uint8 image (RGB opaque)."""
    img = image.astype(np.int64)
    a = img[..., 3] if img.shape[2] == 4 else np.full(img.shape[:2], 255, np.int64)
    return (a << 24) | (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]


def _luma(p: np.ndarray) -> np.ndarray:
    return 0.299 * ((p >> 16) & 255) + 0.587 * ((p >> 8) & 255) + 0.114 * (p & 255)


def _sides(mask: np.ndarray, off: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of `mask` (raster order): (its stroke's darker side colour, lighter side colour), -1 where
    the stroke separates nothing. `off`: line-free opaque pixels; `colors`: packed frame colours."""
    n, strokes = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(mask)
    sid = strokes[ys, xs].astype(np.int64)
    h, w = mask.shape
    ny = np.clip(ys[:, None] + _NEAR[:, 0], 0, h - 1)
    nx = np.clip(xs[:, None] + _NEAR[:, 1], 0, w - 1)
    ok = off[ny, nx]
    s = np.broadcast_to(sid[:, None], ok.shape)[ok]
    c = colors[ny, nx][ok]
    dark = np.full(n, -1, np.int64)
    light = np.full(n, -1, np.int64)
    if len(s):
        pairs, counts = np.unique(np.stack([s, c], axis=1), axis=0, return_counts=True)
        order = np.lexsort((-counts, pairs[:, 0]))
        pairs, counts = pairs[order], counts[order]
        starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
        ends = np.r_[starts[1:], len(pairs)]
        for a, b in zip(starts, ends, strict=True):
            if b - a < 2 or counts[a + 1] * 4 < counts[a]:
                continue
            two = pairs[a : a + 2, 1]
            lum = _luma(two)
            dark[pairs[a, 0]] = two[np.argmin(lum)]
            light[pairs[a, 0]] = two[np.argmax(lum)]
    return dark[sid], light[sid]


def trace_figures(line: np.ndarray, result: np.ndarray) -> dict[str, Any]:
    """Figures of one finished frame (`result`, RGB/RGBA uint8) of the line art `line` (RGBA uint8):
    pencil and trace pixel counts, pencil pixels that kept their pencil colour, and per role the trace
    pixels on their role's side (see the module docstring)."""
    out: dict[str, Any] = {"pencil_pixels": 0, "pencil_kept": 0, "marks": 0, "trace_kept": 0}
    ink = line[..., 3] if (line[..., 3] < 255).any() else 255 - line[..., :3].min(axis=-1)
    opaque = result[..., 3] >= 128 if result.shape[2] == 4 else np.ones(result.shape[:2], bool)
    off = (ink == 0) & opaque
    colors = _packed(result)
    side: dict[str, list[int]] = {"shadow": [0, 0], "highlight": [0, 0]}
    for name, mask in _pencil(line).items():
        if not mask.any():
            continue
        role = PENCILS[name][1]
        got = result[mask][:, :3].astype(np.int16)
        kept = np.abs(got - line[mask][:, :3].astype(np.int16)).max(axis=1) <= 8
        out["pencil_pixels"] += int(mask.sum())
        out["pencil_kept"] += int(kept.sum())
        dark, light = _sides(mask, off, colors)
        want = dark if role == "shadow" else light
        trace = want >= 0
        out["marks"] += int((~trace).sum())
        out["trace_kept"] += int(kept[trace].sum())
        side[role][0] += int(trace.sum())
        side[role][1] += int((colors[mask][trace] == want[trace]).sum())
    out["trace_pixels"] = side["shadow"][0] + side["highlight"][0]
    for role, (total, right) in side.items():
        out[f"{role}_pixels"] = total
        out[f"{role}_side"] = right / total if total else None
    return out


def trace_match(line: np.ndarray, result: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """How a frame equals its finished truth (both RGBA uint8; fully transparent pixels are equal whatever
    their RGB): share of all pixels, of the truth's trace pixels and of all pencil pixels."""

    def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a4 = a if a.shape[2] == 4 else np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
        b4 = b if b.shape[2] == 4 else np.dstack([b, np.full(b.shape[:2], 255, np.uint8)])
        return (a4 == b4).all(axis=-1) | ((a4[..., 3] == 0) & (b4[..., 3] == 0))

    eq = same(result, truth)
    ink = line[..., 3] if (line[..., 3] < 255).any() else 255 - line[..., :3].min(axis=-1)
    opaque = truth[..., 3] >= 128 if truth.shape[2] == 4 else np.ones(truth.shape[:2], bool)
    off, colors = (ink == 0) & opaque, _packed(truth)
    trace = np.zeros(eq.shape, bool)
    pencil = np.zeros(eq.shape, bool)
    for name, mask in _pencil(line).items():
        if mask.any():
            pencil |= mask
            dark, light = _sides(mask, off, colors)
            trace[mask] = (dark if PENCILS[name][1] == "shadow" else light) >= 0
    return {
        "pixels_equal": float(eq.mean()),
        "trace_pixels": int(trace.sum()),
        "trace_equal": float(eq[trace].mean()) if trace.any() else None,
        "pencil_pixels": int(pencil.sum()),
        "pencil_equal": float(eq[pencil].mean()) if pencil.any() else None,
    }


def case_figures(
    lines: dict[int, np.ndarray],
    results: dict[int, np.ndarray],
    truths: dict[int, np.ndarray],
    keys: set[int],
) -> dict[str, Any]:
    """A trace case's figures (frame -> line art, output, finished truth): for keyframe frames with a
    truth, the worst share of equal pixels and of equal trace pixels; over every frame, the trace pixels
    left in their pencil colour; over the other frames, the worst share of shadow and of highlight trace
    pixels on their role's side."""
    out: dict[str, Any] = {"key_pixels_equal": None, "key_trace_equal": None, "trace_kept": 0}
    shadow: list[float] = []
    highlight: list[float] = []
    for f, line in lines.items():
        fig = trace_figures(line, results[f])
        out["trace_kept"] += fig["trace_kept"]
        if f in keys and f in truths:
            m = trace_match(line, results[f], truths[f])
            for key, value in (
                ("key_pixels_equal", m["pixels_equal"]),
                ("key_trace_equal", m["trace_equal"]),
            ):
                if value is not None:
                    out[key] = value if out[key] is None else min(out[key], value)
        elif f not in keys:
            shadow += [fig["shadow_side"]] if fig["shadow_side"] is not None else []
            highlight += [fig["highlight_side"]] if fig["highlight_side"] is not None else []
    out["shadow_side"] = min(shadow) if shadow else None
    out["highlight_side"] = min(highlight) if highlight else None
    return out


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table of trace cases' figures (`case_figures`), one row per (case name, figures)."""

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f} %"

    head = (
        "| trace case | keyframe's frame = finished: pixels / trace pixels | trace pixels in pencil colour "
        "| shadow on its side (worst frame) | highlight on its side (worst frame) |\n|---|---|---|---|---|\n"
    )
    body = [
        f"| {name} | {pct(f['key_pixels_equal'])} / {pct(f['key_trace_equal'])} | {f['trace_kept']} "
        f"| {pct(f['shadow_side'])} | {pct(f['highlight_side'])} |"
        for name, f in rows
    ]
    return head + "\n".join(body) + "\n"
