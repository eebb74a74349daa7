"""The engine interface: `prepare(shot)` once per shot, `colorize(batch)` per batch.

Engines never read or write files. The runner hands them arrays (and loaders for frames outside the
batch, for engines that propagate through the shot) and takes arrays back.

What an engine is (declared, never probed: `EngineBase` gives every part its default):

- `preprocess(frame_input) -> FrameInput`: per-frame CPU work that needs no other frame's result (sketch
  normalisation, mask merging, line-art flow). The runner calls it in its reader threads, right after
  reading the frame, so it overlaps the engine's work on earlier batches; it must be thread-safe. What it
  returns (usually the input with `prepared` set) is what `colorize` gets. Default: the input unchanged.
- `notes`: a list of one-line messages for people (a setting ignored on this machine); the runner empties
  it into `message` events after `prepare` and after every batch.
- `native_depth = True`: with `output_depth: 16` the engine takes line art and keyframes at their files'
  depth (uint16 for 16-bit files, see `reads_native_depth`); without it every frame comes as 8-bit.
- `close()`: releases what the engine owns (thread pools); the runner calls it when the stream ends,
  whatever happened (an engine used directly: `with engine:` or `close()`). Default: nothing to release.
- Layers: when `ShotContext.layers` names "paint" and/or "line", each result carries them
  (`FrameResult.layers`); with `ShotContext.palette`, every painted pixel is a palette colour.
- A frame that cannot be made while the rest of its batch can (a bad input file read for it alone) comes
  back as a `FrameResult` with `error` set and no image: that frame fails, the others are written.
- Which frames come together, and what each reads, is declared in its `EngineSpec` (`colorize.engines`).

Determinism contract: the result for frame f must be a pure function of the shot's inputs, the settings
and f. It must not depend on which other frames this run processed before (a shot run whole and the
same shot run in frame-range chunks on many machines give byte-identical outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from colorize.colormodel import Palette
from colorize.errors import ColorizeError
from colorize.settings import Settings


@dataclass(frozen=True)
class Character:
    name: str
    reference: np.ndarray  # H×W×3 uint8 RGB
    has_mask: bool  # the manifest gives a mask (sequence or single image) for this character
    reference_mask: np.ndarray | None = None  # H×W bool: the character in its reference (manifest), if given
    reference_alpha: np.ndarray | None = None  # H×W uint8: the reference's alpha, when it has transparency


@dataclass(frozen=True)
class ShotContext:
    """What an engine may know about the whole shot. Built once by the runner.

    The loaders read line-art frames outside the batch (a chain from a keyframe or an anchor). The frames
    an engine may read are those its `depends_on` rule names (see `colorize.engines`): the plan validates
    exactly those before the run. A loader raises a `ColorizeError` naming the file when one is bad; the
    runner reports it as the failure of the frames of that batch.
    """

    frames: tuple[int, ...]  # every frame number of the line-art sequence, sorted (not only the range run)
    keyframes: tuple[int, ...]  # frame numbers that have a colored keyframe
    size: tuple[int, int]  # (height, width) of the line art
    characters: tuple[Character, ...]
    background: np.ndarray | None  # H×W×3 uint8 RGB background reference, or None
    settings: Settings
    load_lineart: Callable[[int], np.ndarray]  # frame -> H×W×4 RGBA line art (uint8; see native_depth)
    load_keyframe: Callable[[int], np.ndarray]  # frame -> H×W×4 RGBA colored keyframe (likewise)
    load_masks: Callable[[int], dict[str, np.ndarray]]  # frame -> {character: H×W bool}, given masks only
    qa: bool = False  # the run asks for QA overlays (FrameResult.qa) from engines that make them
    layers: tuple[str, ...] = ()  # layers each FrameResult must carry (`colorize.layers.ENGINE_LAYERS`)
    palette: Palette | None = None  # the colour model: every painted pixel must be one of its colours
    # {drawing: the drawing shown just before its first frame} where that is not the previous drawing in
    # number order (a folded exact repeat: A B A C): the nearest drawing in time to carry colours from
    shown_before: dict[int, int] = field(default_factory=dict)


@dataclass
class FrameInput:
    frame: int
    lineart: np.ndarray  # H×W×4 RGBA, uint8 (uint16: native_depth); lines are dark and/or opaque
    masks: dict[str, np.ndarray]  # character -> H×W bool (only characters with a mask in the manifest)
    keyframe: np.ndarray | None  # H×W×4 RGBA colored version of this very drawing (likewise), if any
    prepared: Any = None  # the engine's own `preprocess` output for this frame, if it has one


@dataclass
class FrameResult:
    frame: int
    # H×W×3 RGB or H×W×4 RGBA, uint8 or uint16, the line art's size (see images.output_array); None when
    # `error` says why this frame could not be made
    image: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)  # reported in the frame's event (`unresolved`: int)
    seconds: float | None = None  # engine time of this frame, when the engine can tell (else batch / n)
    qa: np.ndarray | None = None  # H×W×3 uint8 QA overlay, when the shot asks for one (ShotContext.qa)
    error: ColorizeError | None = None  # this frame alone could not be made (the rest of its batch could)
    # H×W bool: the main-line pixels (ink kept as drawn: `regions.lines`), from engines that know them;
    # trace lines and coloured lines a keyframe painted over are not main lines
    main_lines: np.ndarray | None = None
    # the layers the shot asks for (ShotContext.layers): "paint" (RGB/RGBA fills, lines painted over) and
    # "line" (RGBA main lines, straight alpha), same size and depth as `image`; `line` over `paint` = `image`
    layers: dict[str, np.ndarray] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    native_depth: bool
    notes: list[str]

    def prepare(self, shot: ShotContext) -> None:
        """Per-shot work (reference encodings, palettes). Called once before any batch."""

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        """Per-frame work ahead of the batch, in the runner's reader threads (thread-safe)."""

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        """Color one batch of frames; results in the same order."""

    def close(self) -> None:
        """Release what the engine owns (its thread pools)."""


class EngineBase:
    """The defaults of the optional parts of `Engine`; engines derive from it and override what they have."""

    name = "engine"
    native_depth = False

    def __init__(self) -> None:
        self.notes: list[str] = []

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        return frame_input

    def close(self) -> None:
        return None

    def __enter__(self) -> EngineBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reads_native_depth(engine: Engine, settings: Settings) -> bool:
    """Whether the runner hands `engine` 16-bit files at 16 bits: `output_depth: 16` and the engine says
    it works at 16 bits (`native_depth`); otherwise every frame is read as 8-bit, as the engine expects."""
    return settings.output_depth == 16 and engine.native_depth
