"""The colour model (a show's palette): named paint styles with stable ids, and the off-model check.

A palette file is YAML:

    version: 1
    colors:
      - {id: 1, name: skin, color: "#f2d0b5"}
      - {id: 2, name: skin shadow, color: "#d9a88c"}
      - {id: 3, name: glass, color: "#a0c8ff80"}   # #rrggbbaa: straight alpha

Ids are positive integers below 65535 (the index layer is 16-bit; 0 means "transparent, no paint" and
65535 "painted, but not a palette colour": an unresolved region), unique; names and colours unique (two
entries of one colour could not be told apart in an index layer).

With a palette every painted pixel of every output is exactly a palette colour: keyframes are snapped to
it (`snap`), and a keyframe colour that is not in it (beyond a painter's slip of `SLIP` per channel) is an
input error (`off_model`). Distances between colours are CIELAB ΔE (CIE76, sRGB D65) plus the alpha
difference on the same 0-100 scale.

This module knows nothing of shots or engines: it takes arrays and paths and raises `colorize.errors`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import yaml
from pydantic import Field, ValidationError

from colorize.errors import ManifestError, MissingInputError, OutputError
from colorize.manifest import load_yaml_with_lines, validation_problems
from colorize.settings import StrictModel

TRANSPARENT_ID = 0  # index layer: no paint (alpha 0)
UNASSIGNED_ID = 65535  # index layer: painted in a colour that is not in the palette (unresolved regions)
SLIP = 2  # a keyframe colour within this many values (every channel) of a palette colour is that colour
COLOR_PATTERN = r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"


class PaletteColor(StrictModel):
    id: int = Field(ge=1, le=UNASSIGNED_ID - 1, description="Stable id (the index layer's value).")
    name: str = Field(min_length=1, description="The style's name (skin, skin shadow, ...).")
    color: str = Field(pattern=COLOR_PATTERN, description='"#rrggbb" or "#rrggbbaa" (straight alpha).')


class PaletteFile(StrictModel):
    """A colour model file, version 1."""

    version: Literal[1] = Field(description="Palette format version. Always 1.")
    colors: list[PaletteColor] = Field(min_length=1, description="The paint styles.")


@dataclass(frozen=True)
class Palette:
    """A loaded colour model. `rgba`: (n, 4) uint8 in file order; `ids`, `names` alike."""

    path: Path
    ids: np.ndarray  # (n,) uint16
    names: tuple[str, ...]
    rgba: np.ndarray  # (n, 4) uint8

    @property
    def packed(self) -> np.ndarray:
        """(n,) uint32: the colours as little-endian RGBA bytes read as one uint32 (see `pack`)."""
        return pack(self.rgba)

    def describe(self, i: int) -> str:
        return f'{int(self.ids[i])} "{self.names[i]}" {hex_color(self.rgba[i])}'

    def distances(self, colors: np.ndarray) -> np.ndarray:
        """(m, n) ΔE (CIE76) + alpha difference from each RGBA colour (m, 4) to each palette colour."""
        a, b = _lab(colors), _lab(self.rgba)
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))

    def nearest(self, colors: np.ndarray) -> np.ndarray:
        """(m,) index of the nearest palette colour of each RGBA colour (m, 4) uint8 (ties: file order)."""
        if len(colors) == 0:
            return np.zeros(0, np.int64)
        return self.distances(colors).argmin(axis=1)

    def slips(self, colors: np.ndarray) -> np.ndarray:
        """(m,) index of the palette colour each RGBA colour is a slip of (within SLIP), else -1."""
        diff = np.abs(colors[:, None, :].astype(np.int16) - self.rgba[None, :, :].astype(np.int16)).max(-1)
        close = diff <= SLIP
        best = np.where(close, diff, 999).argmin(axis=1)
        return np.where(close.any(axis=1), best, -1)

    def snap(self, image: np.ndarray) -> np.ndarray:
        """An H×W×4 RGBA uint8 image with every non-transparent pixel replaced by its nearest palette
        colour (transparent pixels stay transparent: all zero)."""
        flat = pack(image).ravel()
        colors, inverse = np.unique(flat, return_inverse=True)
        table = unpack(colors)
        visible = table[:, 3] > 0
        snapped = np.zeros_like(table)
        snapped[visible] = self.rgba[self.nearest(table[visible])]
        return snapped[inverse.ravel()].reshape(image.shape)

    def index(self, rgba: np.ndarray) -> np.ndarray:
        """H×W uint16 palette ids of an RGBA uint8 paint layer: TRANSPARENT_ID where alpha is 0,
        UNASSIGNED_ID where the colour is not in the palette."""
        flat = pack(rgba).ravel()
        modulus, slots = self._lookup
        pos = slots[flat % np.uint32(modulus)]
        hit = self.packed[pos] == flat
        out = np.where(hit, self.ids[pos], np.uint16(UNASSIGNED_ID)).astype(np.uint16)
        if rgba.shape[-1] == 4:
            out[rgba.reshape(-1, 4)[:, 3] == 0] = TRANSPARENT_ID
        return out.reshape(rgba.shape[:2])

    @functools.cached_property
    def _lookup(self) -> tuple[int, np.ndarray]:
        """(m, slots): a perfect hash of the packed colours, `slots[c % m]` = the position of colour c
        (the smallest m at which no two colours share a slot), so `index` is one modulo and one lookup
        per pixel."""
        keys = self.packed.astype(np.int64)
        if len(np.unique(keys)) < len(keys):
            raise ValueError("a palette with a colour given twice has no index")  # (load_palette refuses it)
        modulus = len(keys)
        while len(np.unique(keys % modulus)) < len(keys):
            modulus += 1
        slots = np.zeros(modulus, np.int64)
        slots[keys % modulus] = np.arange(len(keys))
        return modulus, slots


def pack(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) RGBA uint8 -> (...) uint32 (the four bytes read as one little-endian integer); RGB is
    taken as opaque."""
    if rgba.shape[-1] == 3:
        rgba = np.concatenate([rgba, np.full((*rgba.shape[:-1], 1), 255, np.uint8)], axis=-1)
    return np.ascontiguousarray(rgba, dtype=np.uint8).view("<u4")[..., 0]


def unpack(packed: np.ndarray) -> np.ndarray:
    """`pack` undone: (...) uint32 -> (..., 4) RGBA uint8."""
    return np.ascontiguousarray(packed, dtype="<u4").view(np.uint8).reshape(*packed.shape, 4)


def hex_color(rgba: np.ndarray) -> str:
    r, g, b, a = (int(v) for v in rgba)
    return f"#{r:02x}{g:02x}{b:02x}" + ("" if a == 255 else f"{a:02x}")


def parse_color(text: str) -> tuple[int, int, int, int]:
    h = text.lstrip("#")
    a = int(h[6:8], 16) if len(h) == 8 else 255
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), a


def _lab(rgba: np.ndarray) -> np.ndarray:
    """(m, 4) RGBA uint8 -> (m, 4) float: CIELAB L*, a*, b* and alpha scaled to 0-100."""
    rgb = np.ascontiguousarray(rgba[:, :3], dtype=np.float32).reshape(-1, 1, 3) / 255.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)
    return np.column_stack([lab, rgba[:, 3].astype(np.float64) * (100.0 / 255.0)])


def load_palette(path: Path) -> Palette:
    """Read and validate a palette file; ManifestError listing every problem as `file:line: key: what`."""
    if not path.is_file():
        raise MissingInputError(f"{path}: palette {'is a folder' if path.is_dir() else 'not found'}")
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise ManifestError([f"{path}:1: a palette must be a mapping with version and colors"])
    try:
        model = PaletteFile.model_validate(data)
    except ValidationError as error:
        raise ManifestError(validation_problems(error, path, lines)) from None
    problems = []
    seen: dict[str, dict[object, int]] = {"id": {}, "name": {}, "color": {}}
    for i, entry in enumerate(model.colors):
        values = {"id": entry.id, "name": entry.name, "color": parse_color(entry.color)}
        for key, value in values.items():
            first = seen[key].setdefault(value, i)
            if first != i:
                line = lines.get(("colors", i, key), lines.get(("colors", i)))
                shown = entry.color if key == "color" else repr(value)
                problems.append(
                    f"{path}:{line}: colors.{i}.{key}: {shown} is also colors.{first} "
                    f"(line {lines.get(('colors', first))}); each {key} once"
                )
    if problems:
        raise ManifestError(problems)
    return Palette(
        path=path,
        ids=np.array([c.id for c in model.colors], np.uint16),
        names=tuple(c.name for c in model.colors),
        rgba=np.array([parse_color(c.color) for c in model.colors], np.uint8).reshape(-1, 4),
    )


def interior(image: np.ndarray, off_lines: np.ndarray | None = None) -> np.ndarray:
    """H×W bool: the pixels that count as painted colour of a keyframe: visible (alpha > 0), off the
    lines (`off_lines`, when the line art is known: pixels at least one pixel away from any ink), and inside
    a flat patch (all eight neighbours have the same colour), which leaves out the anti-aliased edges of
    the paint, where a painter's colours mix."""
    packed = pack(image)
    same = packed[1:-1, 1:-1]
    flat = np.ones(same.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                flat &= packed[1 + dy : packed.shape[0] - 1 + dy, 1 + dx : packed.shape[1] - 1 + dx] == same
    out = np.zeros(packed.shape, bool)
    out[1:-1, 1:-1] = flat
    if image.shape[-1] == 4:
        out &= image[..., 3] > 0
    if off_lines is not None:
        out &= off_lines
    return out


def off_lines_of(ink: np.ndarray) -> np.ndarray:
    """H×W bool: pixels with no ink within one pixel (ink: the line strength, 0 = paper)."""
    lines = cv2.dilate(cv2.compare(ink, 0, cv2.CMP_GT), np.ones((3, 3), np.uint8))
    return lines == 0


def off_model(palette: Palette, image: np.ndarray, counted: np.ndarray, where: str) -> list[str]:
    """One line per colour of `image` (RGBA uint8) on the `counted` pixels that is not in the palette (nor
    a slip of one): the colour, `where` (the keyframe file), its pixel count and bounding box, and the
    nearest palette entries. The most frequent first; empty when every colour is on model."""
    flat = pack(image)[counted]
    colors, counts = np.unique(flat, return_counts=True)
    table = unpack(colors)
    bad = palette.slips(table) < 0
    if not bad.any():
        return []
    problems = []
    order = np.flatnonzero(bad)[np.argsort(-counts[bad], kind="stable")]
    ys, xs = np.nonzero(counted)
    shown = order[:5]
    for k in shown:
        mine = flat == colors[k]
        y, x = ys[mine], xs[mine]
        dist = palette.distances(table[k : k + 1])[0]
        near = np.argsort(dist, kind="stable")[:2]
        nearest = ", ".join(f"{palette.describe(int(i))} (ΔE {dist[i]:.1f})" for i in near)
        problems.append(
            f"{where}: colour {hex_color(table[k])} is not in palette {palette.path.name} "
            f"({int(counts[k])} px off the lines, first at x={int(x[0])} y={int(y[0])}, box x {int(x.min())}-"
            f"{int(x.max())} y {int(y.min())}-{int(y.max())}); nearest: {nearest}"
        )
    if len(order) > len(shown):
        problems[-1] += f"; and {len(order) - len(shown)} more off-model colours"
    return problems


def extract(images: list[np.ndarray], min_pixels: int = 1) -> list[tuple[tuple[int, ...], int]]:
    """The painted colours of keyframes (RGBA uint8): (rgba, pixels) of each colour with at least
    `min_pixels` interior pixels (`interior`, without line art), most frequent first, then by colour."""
    total: dict[int, int] = {}
    for image in images:
        colors, counts = np.unique(pack(image)[interior(image)], return_counts=True)
        for c, n in zip(colors.tolist(), counts.tolist(), strict=True):
            total[c] = total.get(c, 0) + n
    keep = [(c, n) for c, n in total.items() if n >= min_pixels]
    keep.sort(key=lambda cn: (-cn[1], cn[0]))
    return [(tuple(int(v) for v in unpack(np.array([c], np.uint32))[0]), n) for c, n in keep]


def palette_yaml(colors: list[tuple[tuple[int, ...], int]], sources: list[str]) -> str:
    """A starter palette file: ids 1.. in the given order, names `color N` to edit."""
    head = (
        "# colorize palette (colour model), extracted from: " + ", ".join(sources) + "\n"
        "# Rename the colours (skin, skin shadow, ...); keep the ids once shots use them.\n"
    )
    entries = [
        {"id": i, "name": f"color {i}", "color": hex_color(np.array(rgba))}
        for i, (rgba, _) in enumerate(colors, start=1)
    ]
    lines = [f'  - {{id: {e["id"]}, name: {e["name"]}, color: "{e["color"]}"}}' for e in entries]
    text = head + "version: 1\ncolors:\n" + "\n".join(lines) + "\n"
    yaml.safe_load(text)  # (it must read back)
    return text


def write_palette(path: Path, text: str, overwrite: bool = False) -> None:
    from colorize.images import write_atomic

    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; a palette may hold a painter's names: pass --force to replace it")
    write_atomic(path, text.encode("utf-8"))


def keyframe_problems(palette: Palette, keyframe: np.ndarray, lineart: np.ndarray, where: str) -> list[str]:
    """`off_model` of a keyframe (RGBA, as read), counting its interior pixels off its line art's lines;
    `where` names the keyframe file in the lines."""
    from colorize.regions.segment import ink_u8

    ink = ink_u8(lineart)
    if ink.shape != keyframe.shape[:2]:
        return []  # (a size mismatch is reported on its own)
    return off_model(palette, keyframe, interior(keyframe, off_lines_of(ink)), where)
