"""Looking at results: QA overlays (where each region's color came from), contact sheets, the QA folder.

A QA overlay is the frame, dimmed, with every region tinted by the source of its color and a legend:
keyframe (no tint), propagated forward / backward (blue / teal), reused drawing (cyan), matched by region
shape (violet), reference palette (orange), neighbour (yellow); unresolved regions are solid magenta and
low-confidence ones hatched red; colour-trace line pixels that could not be filled (no painted region
next to them) are drawn solid magenta, thickened so they show. `QAWriter` writes one overlay per frame into a QA folder, `qa.json` (the
figures per frame) and `worst_frames.png`, a contact sheet of the frames with most problems.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from colorize import images
from colorize.errors import OutputError
from colorize.regions.segment import Segmentation

TINTS = {
    "keyframe": None,
    "forward": (40, 110, 255),
    "backward": (0, 170, 160),
    "reused": (0, 220, 255),
    "matched": (150, 80, 255),
    "reference": (255, 150, 0),
    "neighbour": (255, 220, 0),
    "unresolved": (255, 0, 255),
}
LOW = (255, 30, 30)
QA_JSON = "qa.json"
WORST_SHEET = "worst_frames.png"


def qa_overlay(
    image: np.ndarray,
    seg: Segmentation,
    source: np.ndarray,
    low: np.ndarray,
    names: tuple[str, ...],
    trace_unfilled: np.ndarray | None = None,
) -> np.ndarray:
    """H×W×3 uint8: `image` dimmed, regions tinted by `source` (index into `names`), `low` hatched,
    `trace_unfilled` (H×W uint8 0/255: trace-line pixels left unfilled) solid magenta."""
    rgb = images.to_uint8(images.over_white(image))
    gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    base = cv2.addWeighted(rgb, 0.5, gray, 0.5, 0)
    lut = np.zeros((len(names), 4), np.float32)  # tint RGB + weight per source
    for i, name in enumerate(names):
        tint = TINTS.get(name)
        if tint is not None:
            lut[i] = (*tint, 1.0 if name == "unresolved" else 0.55)
    per_label = lut[source]  # (n, 4)
    per_label[0] = 0  # lines
    px = per_label[seg.labels]
    w = px[..., 3:4]
    out = base.astype(np.float32) * (1 - w) + px[..., :3] * w
    h, wd = seg.labels.shape
    yy, xx = np.mgrid[0:h, 0:wd]
    hatch = low[seg.labels] & (((xx + yy) // 4) % 3 == 0)
    out[hatch] = LOW
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    counts = np.bincount(source[1:], minlength=len(names))
    entries = [(n, TINTS.get(n), int(c)) for n, c in zip(names, counts, strict=True)]
    unfilled = 0 if trace_unfilled is None else cv2.countNonZero(trace_unfilled)
    if unfilled:
        assert trace_unfilled is not None
        out[cv2.dilate(trace_unfilled, np.ones((5, 5), np.uint8)) > 0] = TINTS["unresolved"]
        entries.append(("trace unfilled", TINTS["unresolved"], unfilled))
    return _with_legend(out, entries, low)


def _with_legend(image: np.ndarray, entries: list, low: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max(0.4, w / 1600)
    band = np.full((int(34 * scale) + 4, w, 3), 30, np.uint8)
    x = 6
    items = [(f"{n} {c}", t if t is not None else (200, 200, 200)) for n, t, c in entries if c]
    items.append((f"low confidence {int(low[1:].sum())}", LOW))
    for text, color in items:
        size = int(18 * scale)
        y = (band.shape[0] - size) // 2
        cv2.rectangle(band, (x, y), (x + size, y + size), tuple(int(v) for v in color), -1)
        x += size + 4
        cv2.putText(
            band,
            text,
            (x, y + size - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        x += int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)[0][0]) + int(16 * scale)
    return np.concatenate([image, band], axis=0)


# -- contact sheets ----------------------------------------------------------------------------------------


def _tile(img: np.ndarray, width: int) -> np.ndarray:
    img = images.to_uint8(images.over_white(img)) if img.ndim == 3 else img
    h, w = img.shape[:2]
    out = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray | None]], labels: list[str], tile: int = 400
) -> np.ndarray:
    """Grid of images (RGB or RGBA over white; None = blank tile), one row per frame, a caption per row."""
    out_rows = []
    for row, label in zip(rows, labels, strict=True):
        made = [None if img is None else _tile(img, tile) for img in row]
        height = max((t.shape[0] for t in made if t is not None), default=tile)
        filled = [t if t is not None else np.full((height, tile, 3), 128, np.uint8) for t in made]
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=40) for t in filled]
        strip = np.concatenate(
            [np.pad(t, ((0, 0), (2, 2), (0, 0)), constant_values=40) for t in tiles], axis=1
        )
        band = np.full((28, strip.shape[1], 3), 40, np.uint8)
        cv2.putText(band, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        out_rows.append(np.concatenate([band, strip], axis=0))
    width = max(r.shape[1] for r in out_rows)
    out_rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=40) for r in out_rows]
    return np.concatenate(out_rows, axis=0)


def grid_sheet(imgs: list[np.ndarray], captions: list[str], cols: int = 4, tile: int = 320) -> np.ndarray:
    """Images in rows of `cols`, each row captioned with its images' captions."""
    rows = [imgs[i : i + cols] + [None] * (cols - len(imgs[i : i + cols])) for i in range(0, len(imgs), cols)]
    labels = [", ".join(captions[i : i + cols]) for i in range(0, len(captions), cols)]
    return contact_sheet(rows, labels, tile=tile)


# -- the QA folder --------------------------------------------------------------------------------------------


def badness(info: dict) -> tuple[int, int]:
    """How bad a frame looks from its engine figures: (unresolved regions, low-confidence regions)."""
    return int(info.get("unresolved", 0)), int(info.get("low_confidence", 0))


class QAWriter:
    """Writes QA overlays into a folder as frames are done, then the figures and the worst-frames sheet."""

    def __init__(self, folder: Path, worst: int = 12):
        self.folder = Path(folder)
        self.worst = worst
        self.figures: dict[int, dict] = {}
        self.paths: dict[int, Path] = {}

    def add(self, frame: int, output: Path, overlay: np.ndarray | None, info: dict) -> None:
        """Record a done frame; its overlay goes to FOLDER/<output file name>.png."""
        figures = {k: info[k] for k in ("regions", "unresolved", "low_confidence", "sources") if k in info}
        if overlay is None:  # an engine without overlays: what it says of the frame
            figures = {**{str(k): v for k, v in info.items() if k != "bleach_mask"}, **figures}
        self.figures[frame] = figures
        if overlay is None:
            return
        self._mkdir()
        path = self.folder / (Path(output).stem + ".png")
        images.write_image(path, overlay)
        self.paths[frame] = path

    def _mkdir(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{self.folder}: cannot create the QA folder ({error.strerror})") from None

    def finish(self) -> list[Path]:
        """Write qa.json and worst_frames.png (merged with what an earlier run of the shot wrote)."""
        self._mkdir()
        index = self.folder / QA_JSON
        frames = {}
        if index.is_file():
            try:
                frames = json.loads(index.read_text()).get("frames", {})
            except (ValueError, AttributeError):
                frames = {}
        frames.update(
            {
                str(f): {**v, "overlay": self.paths[f].name} if f in self.paths else v
                for f, v in self.figures.items()
            }
        )
        # The frames a painter must look at, worst first (unresolved regions, then low-confidence ones).
        review = sorted(
            (f for f, v in frames.items() if sum(badness(v)) > 0),
            key=lambda f: (tuple(-x for x in badness(frames[f])), int(f)),
        )
        index_data = {"check_first": [int(f) for f in review], "frames": frames}
        images.write_atomic(index, json.dumps(index_data, indent=1, sort_keys=True).encode())
        written = [index]
        ranked = [f for f in review if "overlay" in frames[f]][: self.worst]
        if ranked:
            overlays = [images.read_rgba(self.folder / frames[f]["overlay"]) for f in ranked]
            captions = [
                f"{f}: {badness(frames[f])[0]} unresolved, {badness(frames[f])[1]} low" for f in ranked
            ]
            sheet = self.folder / WORST_SHEET
            images.write_image(sheet, grid_sheet(overlays, captions, cols=3, tile=480))
            written.append(sheet)
        return written
