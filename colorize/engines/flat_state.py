"""What the flat engine keeps between frames: where each region's color came from (source codes), one
frame's colors as one chain sees them (`State`), keyframes decoded once (`Key`, `decode_key`) and the
correspondences between drawings (`FlowCache`).

A keyframe's region colors come from the pixels no line touches (anti-aliased edges are tinted by the
line); a region that has none takes the dominant color of all its pixels. With the colour model
(`palette`) every keyframe pixel is snapped to it as it is read, so every color carried from a keyframe
is a palette colour.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from colorize import images
from colorize.colormodel import Palette
from colorize.flow import Correspondence, Motion
from colorize.regions.palette import NO_COLOR, deep_colors, dominant_colors, widen
from colorize.regions.segment import Segmentation

SOURCES = ("keyframe", "forward", "backward", "reused", "matched", "reference", "neighbour", "unresolved")
KEYFRAME, FORWARD, BACKWARD, REUSED, MATCHED, REFERENCE, NEIGHBOUR, UNRESOLVED = range(len(SOURCES))
PROPAGATED = -1  # chain-state marker: propagated from the previous frame (forward/backward by chain)
FLAT_SHARE = 0.9  # a keyframe region is flat when this share of its line-free pixels has one color


@dataclass(frozen=True)
class State:
    """Colors of one frame's regions as one chain sees them."""

    colors: np.ndarray  # (n,) int64 packed colors, NO_COLOR where unresolved
    conf: np.ndarray  # (n,) float32
    origin: np.ndarray  # (n,) int64 region of the origin keyframe the color came from (0: unknown)
    how: np.ndarray  # (n,) int8: PROPAGATED, REUSED, MATCHED or KEYFRAME
    origin_key: int  # the keyframe `origin` refers to


@dataclass
class Key:
    """A keyframe as the engine uses it (decoded once, kept in a small LRU)."""

    seg: Segmentation
    image: np.ndarray  # H×W×4 RGBA keyframe, uint8 or uint16 (as the file is, with output_depth 16)
    colors: np.ndarray  # dominant color per region (line-free pixels first), 8-bit packed
    flat: np.ndarray  # (n,) bool: the region is flat in the keyframe
    alpha: bool  # the keyframe has transparency
    colors16: np.ndarray  # (n,) uint64: the 16-bit color each region's 8-bit color stands for (packed)

    def state(self, key: int) -> State:
        """The keyframe's own colors as a chain state: every region certain, from itself."""
        n = self.seg.count + 1
        return State(
            self.colors.copy(), np.ones(n, np.float32), np.arange(n), np.full(n, KEYFRAME, np.int8), key
        )


def decode_key(seg: Segmentation, image: np.ndarray, palette: Palette | None) -> Key:
    """The keyframe `image` (RGB or RGBA, 8 or 16 bits) over its drawing's segmentation `seg`."""
    if image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], np.iinfo(image.dtype).max, image.dtype)])
    if palette is not None:  # on model: every pixel carried from it is a palette colour
        image = palette.snap(images.to_uint8(image))
    image8 = images.to_uint8(image)
    clean = seg.labels > 0
    clean &= seg.ink == 0
    colors, share = dominant_colors(seg.labels, seg.count, image8, valid=clean)
    missing = colors == NO_COLOR
    missing[0] = False
    if missing.any():
        fallback, _ = dominant_colors(seg.labels, seg.count, image8, valid=seg.labels > 0)
        colors[missing] = fallback[missing]
        share[missing] = 1.0
    if image.dtype == np.uint16:
        colors16 = deep_colors(seg.labels, colors, image8, image, clean)
    else:
        colors16 = widen(np.where(colors == NO_COLOR, 0, colors))
    return Key(seg, image, colors, share >= FLAT_SHARE, images.has_transparency(image), colors16)


class FlowCache:
    """Correspondences between two drawings (`flow.correspondence`), kept by a key of the two drawings in
    an LRU bounded by their flows' bytes (the newest is kept whatever its size)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[bytes, bytes], tuple[Correspondence, Motion | None]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[bytes, bytes]) -> tuple[Correspondence, Motion | None] | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: tuple[bytes, bytes], found: tuple[Correspondence, Motion | None]) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[0].flow.nbytes
        self._items[key] = found
        self._bytes += found[0].flow.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, (evicted, _) = self._items.popitem(last=False)
            self._bytes -= evicted.flow.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
