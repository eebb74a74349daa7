"""Choosing the key drawings of a shot from its line art alone (`colorize keys`, `engine: hybrid`).

A key is a frame the diffusion engine paints (cel-finished) so that the flat engine can carry its paint
through the rest of the shot. The choice reads nothing but the line art and the settings, and always walks
the whole sequence, so it is the same whatever `--frames` chunk asks for it:

- the first frame of the shot is a key;
- a drawing becomes a key when the flat engine, run forward from the last key (its correspondence, votes,
  reuse of repeats and region matching, on a stand-in keyframe that gives every region of the key its own
  color), leaves a region unresolved (it would take a reference's color, which no key has) or carries
  less than `keys.min_carried` of its regions with confidence (`frame_done`'s `unresolved` and
  `low_confidence`): what a painted key would lose there (a new pose, a turn, a character entering);
- the first *new* drawing (one that repeats no earlier drawing of the shot) `keys.max_gap` frames or more
  after the last key is a key, so propagation never runs longer than that through new drawings;
- an exact repeat (the same ink: hold, cycle, ping-pong) is never a key: the flat engine copies the colors
  of the drawing it repeats, and a repeat of a key drawing is rendered as that key;
- at most `keys.max_count` keys, the first ones; the frames that would have come next are reported (`over`).

`explicit` frames (`colorize keys --frames`) are the keys, as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from colorize.engines.base import Character, FrameInput, ShotContext
from colorize.engines.flat import FlatEngine
from colorize.regions.segment import Segmentation
from colorize.settings import Settings

FIRST, CHANGE, GAP, ASKED = "first frame", "drawing changes", "max gap", "asked for"


@dataclass(frozen=True)
class Key:
    frame: int
    reason: str  # FIRST, CHANGE, GAP or ASKED
    detail: str  # one line for people: why this frame
    carried: float | None = (
        None  # share of the paint area propagation regions propagation carried here from the last key
    )


@dataclass(frozen=True)
class KeyChoice:
    keys: tuple[Key, ...]
    over: tuple[Key, ...] = ()  # frames that would be keys beyond keys.max_count
    drawings: int = 0  # distinct drawings in the shot (0 when keys were named, not chosen)
    carried: dict[int, float] = field(default_factory=dict)  # frame -> share carried from its last key

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(k.frame for k in self.keys)


def choose_keys(
    frames: Sequence[int],
    load_lineart: Callable[[int], np.ndarray],
    settings: Settings,
    explicit: Sequence[int] | None = None,
    load_masks: Callable[[int], dict[str, np.ndarray]] | None = None,
    characters: tuple[Character, ...] = (),
    background: np.ndarray | None = None,
) -> KeyChoice:
    """The key drawings of the shot `frames` (sorted, the whole sequence); see the module docstring.

    `load_lineart(frame)` returns the frame's RGBA line art (it raises the `ColorizeError` naming a bad
    file); `load_masks(frame)` its character masks, when the manifest gives some (the flat engine keeps
    votes within a character); `characters` and `background` as the flat engine gets them (regions it
    would paint from a reference are regions no key carries)."""
    if explicit is not None:
        return KeyChoice(tuple(Key(f, ASKED, "named with --frames") for f in sorted(set(explicit))))
    walker = _Walker(settings, frames, load_lineart, load_masks, characters, background)
    keys: list[Key] = []
    over: list[Key] = []
    carried: dict[int, float] = {}
    last = 0  # position of the last key
    chosen: set[bytes] = set()  # the key drawings
    for pos, frame in enumerate(frames):
        fi, new = walker.frame(frame)
        if _digest(fi) in chosen:  # a repeat of a key drawing is never a key; the chain goes on from it
            carried[frame] = 1.0
            walker.restart(fi)
            continue
        share, lost = (1.0, 0) if pos == 0 else walker.carried(fi)
        carried[frame] = share
        key: Key | None = None
        if pos == 0:
            key = Key(frame, FIRST, "the first frame of the shot")
        elif share < settings.keys.min_carried or lost:
            why = f"{lost} regions it cannot carry (unresolved, or a reference's color), " if lost else ""
            key = Key(
                frame,
                CHANGE,
                f"propagation from key {frames[last]}: {why}{share:.0%} of its regions carried with confidence "
                f"(keys.min_carried {settings.keys.min_carried:.0%})",
                share,
            )
        elif new and pos - last >= settings.keys.max_gap:
            key = Key(
                frame,
                GAP,
                f"a new drawing {pos - last} frames after key {frames[last]} (keys.max_gap)",
                share,
            )
        if key is None:
            continue
        (keys if len(keys) < settings.keys.max_count else over).append(key)
        chosen.add(_digest(fi))
        walker.restart(fi)  # the chain starts again here (also past max_count: `over` lists what comes next)
        last = pos
    return KeyChoice(tuple(keys), tuple(over), len(walker.drawings), carried)


class _Walker:
    """The flat engine itself, run forward from the last key on a stand-in keyframe that paints every region
    of the key drawing its own color: what it cannot carry to a frame (regions left unresolved, or carried
    with low confidence: `frame_done`'s `unresolved` and `low_confidence`) is what a painted key would
    lose there."""

    def __init__(
        self,
        settings: Settings,
        frames: Sequence[int],
        load_lineart: Callable[[int], np.ndarray],
        load_masks: Callable[[int], dict[str, np.ndarray]] | None,
        characters: tuple[Character, ...] = (),
        background: np.ndarray | None = None,
    ):
        self.characters, self.background = characters, background
        self.settings = settings
        self.frames = tuple(frames)
        self.load_lineart = load_lineart
        self.load_masks = load_masks or (lambda frame: {})
        flat = settings.flat.model_copy(update={"fill": "flat"})  # (painting only: the counts are the same)
        self.engine = FlatEngine(
            settings.model_copy(update={"output_alpha": "off", "output_depth": 8, "flat": flat})
        )
        self.drawings: set[bytes] = set()  # every drawing of the shot so far
        self.size: tuple[int, int] = (0, 0)

    def frame(self, frame: int) -> tuple[FrameInput, bool]:
        """The frame as the engine takes it (segmented), and whether its drawing is new to the shot."""
        lineart = self.load_lineart(frame)
        fi = self.engine.preprocess(FrameInput(frame, lineart, self.load_masks(frame), None))
        assert isinstance(fi.prepared, Segmentation)
        digest = _digest(fi)
        new = digest not in self.drawings
        self.drawings.add(digest)
        self.size = lineart.shape[:2]
        return fi, new

    def restart(self, key: FrameInput) -> None:
        """`key` is a key: the engine starts again from it."""
        assert isinstance(key.prepared, Segmentation)
        stand_in = _region_colors(key.prepared.labels)
        key_frame = key.frame
        context = ShotContext(
            frames=self.frames,
            keyframes=(key_frame,),
            size=self.size,
            characters=self.characters,
            background=self.background,
            settings=self.engine.settings,
            load_lineart=self.load_lineart,
            load_keyframe=lambda frame: stand_in,
            load_masks=self.load_masks,
        )
        self.engine.prepare(context)
        self.engine.colorize([replace(key, keyframe=stand_in)])

    def carried(self, fi: FrameInput) -> tuple[float, int]:
        """(share of the frame's regions the engine carries from the last key with confidence, regions it
        cannot carry at all: the flat engine would paint those from a reference, a color no key has)."""
        info = self.engine.colorize([fi])[0].info
        regions = max(1, int(info["regions"]))
        lost = int(info["unresolved"]) + int(info["sources"].get("reference", 0))
        return 1.0 - (lost + int(info["low_confidence"])) / regions, lost


def _digest(fi: FrameInput) -> bytes:
    assert isinstance(fi.prepared, Segmentation)
    return fi.prepared.cache["signature"].digest


def _region_colors(labels: np.ndarray) -> np.ndarray:
    """An RGBA image painting every region of `labels` its own color (label + 1 in 24 bits)."""
    code = labels.astype(np.int64) + 1
    rgba = np.empty((*labels.shape, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = code >> 16, (code >> 8) & 255, code & 255
    rgba[..., 3] = 255
    return rgba
