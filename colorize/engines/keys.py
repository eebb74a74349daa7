"""Key drawings painted by the diffusion engine: the `colorize keys` pass and `engine: hybrid`.

`KeysEngine` is the diffusion engine as `colorize keys` runs it (`keys_settings`): every key from its own
noise (`temporal: none`: a key never waits on another frame) and cel-finished (`diffusion.cel_finish`: one
color per line-art region, the flat engine's regions), with the line art multiplied over it (`with_lines`)
so that a painter reviews a finished-looking cel. Each result carries `info["pixels"]`, the digest of
the pixels as they are written (`provenance.pixels_digest`), which the runner stores in the key's record:
that is how `colorize keys` knows a keyframe file is one it wrote and nobody changed since.

`HybridEngine` (`engine: hybrid`) does both steps in one run: it chooses the keys (`colorize.keys`),
paints in memory, when the flat engine first asks for it, each key that has no keyframe file (a keyframe
the shot already has, a painter's, is used as it is), and hands everything to the flat engine. A key in
memory is the array the keys pass would have written and the flat engine read back, so the frames come out
the same as `colorize keys` followed by `colorize shot --engine flat`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from colorize import images
from colorize.engines.base import EngineBase, FrameInput, FrameResult, ShotContext
from colorize.engines.flat import FlatEngine
from colorize.errors import InternalError
from colorize.provenance import pixels_digest
from colorize.sequences import frame_range_text
from colorize.settings import Settings


def keys_settings(settings: Settings) -> Settings:
    """The settings the keys are painted with: `temporal: none` and `diffusion.cel_finish: true`."""
    diffusion = settings.diffusion.model_copy(update={"cel_finish": True})
    return settings.model_copy(update={"temporal": "none", "diffusion": diffusion})


class KeysEngine(EngineBase):
    """The diffusion engine painting keys (see the module docstring); `settings` from `keys_settings`."""

    name = "keys"

    def __init__(self, settings: Settings):
        from colorize.engines.diffusion.engine import DiffusionEngine

        super().__init__()
        self.settings = settings
        self.inner = DiffusionEngine(settings)
        self.notes = self.inner.notes  # the same list: the diffusion engine's messages are the keys'

    def close(self) -> None:
        self.inner.close()

    def prepare(self, shot: ShotContext) -> None:
        self.inner.prepare(shot)

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        return self.inner.preprocess(frame_input)

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        results = self.inner.colorize(batch)
        for fi, result in zip(batch, results, strict=False):
            if result.image is not None and result.frame == fi.frame:
                result.image = with_lines(result.image, fi.lineart, result.main_lines)
                written = images.output_array(
                    result.image, self.settings.output_alpha, self.settings.output_depth
                )
                result.info = {**result.info, "pixels": pixels_digest(written)}
        return results


class HybridEngine(EngineBase):
    """Keys chosen and painted in memory, then the flat engine (see the module docstring)."""

    name = "hybrid"
    native_depth = True  # as the flat engine: with output_depth 16, frames at their files' depth

    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings
        self.flat = FlatEngine(settings)
        self._shot: ShotContext | None = None
        self._painter: KeysEngine | None = None
        self._new: set[int] = set()  # keys without a keyframe file: painted here
        self._painted: dict[int, np.ndarray] = {}

    def prepare(self, shot: ShotContext) -> None:
        from colorize.keys import choose_keys

        self._shot = shot
        choice = choose_keys(
            shot.frames,
            shot.load_lineart,
            self.settings,
            load_masks=_masks_of(shot),
            characters=shot.characters,
            background=shot.background,
        )
        self._new = {k for k in choice.frames if k not in shot.keyframes}
        self._painted = {}
        keyframes = tuple(sorted(set(shot.keyframes) | set(choice.frames)))
        kept = [k for k in choice.frames if k not in self._new]
        self.notes.append(
            f"hybrid: keys {frame_range_text(list(choice.frames))} ({len(choice.keys)} of {len(shot.frames)} "
            f"frames, {choice.drawings} drawings)"
            + (f"; keyframe files used as they are: {frame_range_text(kept)}" if kept else "")
            + (
                f"; over keys.max_count: {frame_range_text([k.frame for k in choice.over])}"
                if choice.over
                else ""
            )
        )
        self.flat.prepare(replace(shot, keyframes=keyframes, load_keyframe=self._keyframe))

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        return self.flat.preprocess(frame_input)

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        batch = [
            replace(fi, keyframe=self._keyframe(fi.frame)) if fi.frame in self._new else fi for fi in batch
        ]
        return self.flat.colorize(batch)

    def close(self) -> None:
        try:
            self.flat.close()
        finally:
            if self._painter is not None:
                self._painter.close()

    def _keyframe(self, frame: int) -> np.ndarray:
        shot = self._require_shot()
        if frame not in self._new:
            return shot.load_keyframe(frame)
        if frame not in self._painted:
            self._painted[frame] = self._paint(frame)
        return self._painted[frame]

    def _paint(self, frame: int) -> np.ndarray:
        """Key `frame` as `colorize keys` writes it and the flat engine reads it back (RGBA; 16 bits with
        output_depth 16, as the runner reads 16-bit files for this engine)."""
        shot = self._require_shot()
        settings = keys_settings(self.settings)
        if self._painter is None:
            self._painter = KeysEngine(settings)
            self._painter.prepare(
                replace(
                    shot,
                    keyframes=(),
                    settings=settings,
                    load_lineart=lambda f: images.to_uint8(shot.load_lineart(f)),
                    load_keyframe=_no_keyframe,
                    qa=False,
                )
            )
            self.notes.extend(self._painter.notes)
        lineart = images.to_uint8(shot.load_lineart(frame))
        result = self._painter.colorize([FrameInput(frame, lineart, shot.load_masks(frame), None)])[0]
        if result.error is not None:
            raise result.error
        assert result.image is not None
        written = images.output_array(result.image, self.settings.output_alpha, self.settings.output_depth)
        return _as_read(written)

    def _require_shot(self) -> ShotContext:
        if self._shot is None:
            raise RuntimeError("HybridEngine.prepare(shot) must be called before colorize()")
        return self._shot


def with_lines(paint: np.ndarray, lineart: np.ndarray, main_lines: np.ndarray | None = None) -> np.ndarray:
    """The line art multiplied over a cel-finished key (RGB uint8), as a painted cel looks: main lines
    dark, nothing changed where the line art is white (the flat engine reads a key's colors there). With
    `main_lines` (the cel finish's main-line mask) only those pixels: colour-trace lines stay filled with
    the colour cel finish gave them, as in a finished cel."""
    lines = images.over_white(images.to_uint8(lineart))[..., :3].astype(np.uint16)
    if main_lines is not None:
        lines[~main_lines] = 255
    return ((paint[..., :3].astype(np.uint16) * lines + 127) // 255).astype(np.uint8)


def _as_read(image: np.ndarray) -> np.ndarray:
    """An image as `images.read_image` decodes it once written: RGBA at its depth."""
    if image.shape[2] == 4:
        return image
    return np.dstack([image, np.full(image.shape[:2], np.iinfo(image.dtype).max, image.dtype)])


def _masks_of(shot: ShotContext) -> Any:
    return shot.load_masks if any(c.has_mask for c in shot.characters) else None


def _no_keyframe(frame: int) -> np.ndarray:
    raise InternalError(f"frame {frame}: the keys pass reads no keyframe (a bug)")
