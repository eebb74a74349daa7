"""Layers: the files one frame writes besides its main output, for compositing.

- `paint`: RGBA, the fills alone: every pixel painted, main-line pixels as `flat.lines: fill` paints them
  (a neighbouring region's colour), trace lines filled;
- `line`: RGBA, the main lines alone in their ink, straight (unpremultiplied) alpha; `line` over `paint`
  gives the main output (within 1/255);
- `index`: 16-bit single channel, the palette id of each pixel of `paint` (`colormodel.TRANSPARENT_ID` where
  paint is transparent, `colormodel.UNASSIGNED_ID` where its colour is not in the palette).

Engines hand over `paint` and `line` (`FrameResult.layers`) when the shot asks for them
(`ShotContext.layers`); the index is derived from the paint here, in the writer's threads. Every file of a
frame (layers first, the main output last) is written in one step (`images.write_frames`), each with the
frame's provenance record, so a frame counts as done only when all of them are there and fresh.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from colorize import images
from colorize.colormodel import Palette
from colorize.errors import ColorizeError, ManifestError
from colorize.sequences import Pattern, parse_pattern

NAMES = ("index", "paint", "line")
ENGINE_LAYERS = ("paint", "line")  # what an engine makes; the index comes from the paint
ALPHA_EXTS = (".png", ".tif", ".tiff", ".tga")  # formats that keep an alpha channel
INDEX_EXTS = (".png", ".tif", ".tiff")  # formats that keep a 16-bit single channel


def plan_layers(
    entries: dict[str, str | None],
    base: Path,
    out_dir: Path | None,
    manifest_path: Path,
    has_palette: bool,
    problems: list[ColorizeError],
) -> dict[str, Pattern]:
    """The layer patterns of the manifest's `layers:` (problems appended). With --out DIR, each layer goes
    to DIR/<layer>/ under its own file names (so they never land on the main outputs)."""
    out: dict[str, Pattern] = {}
    for name in NAMES:
        text = entries.get(name)
        if not text:
            continue
        key = f"{manifest_path}: layers.{name}: {text!r}"
        pattern = parse_pattern(text, base)
        if not pattern.is_sequence:
            problems.append(ManifestError([f"{key} needs a frame number (####)"]))
            continue
        suffix = os.path.splitext("frame" + pattern.tail)[1].lower()
        allowed = INDEX_EXTS if name == "index" else ALPHA_EXTS
        if suffix not in allowed:
            what = "a 16-bit single channel" if name == "index" else "alpha"
            problems.append(
                ManifestError(
                    [f"{key}: {suffix or 'no extension'} cannot hold {what}; use {', '.join(allowed)}"]
                )
            )
            continue
        if name == "index" and not has_palette:
            problems.append(
                ManifestError(
                    [f"{key}: the index layer needs a palette (palette: FILE in the manifest or preset)"]
                )
            )
            continue
        out[name] = pattern if out_dir is None else pattern.with_folder(out_dir / name)
    return out


def clashes(patterns: dict[str, Pattern], frame: int) -> list[str]:
    """Names of files that two outputs of one frame share (`patterns` includes the main `output`)."""
    seen: dict[Path, str] = {}
    found = []
    for name, pattern in patterns.items():
        path = pattern.path(frame).resolve()
        if path in seen:
            found.append(f"{name} and {seen[path]} both write {pattern.path(frame)}")
        seen[path] = name
    return found


def layer_images(
    wanted: dict[str, Path], made: dict[str, np.ndarray], palette: Palette | None, depth: int
) -> list[tuple[Path, np.ndarray]]:
    """(path, array to write) of each wanted layer from what the engine made (`paint`, `line`): RGBA at
    the output depth, the index as uint16."""
    files = []
    for name, path in wanted.items():
        if name == "index":
            assert palette is not None  # (plan_layers refuses an index layer without a palette)
            paint = images.output_array(made["paint"], "on", 8)
            files.append((path, palette.index(paint)))
        else:
            files.append((path, images.output_array(made[name], "on", depth)))
    return files
