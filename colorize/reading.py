"""What engines are handed of the plan's files: the shot's context (references decoded once, loaders for the
frames outside the batch) and one drawing's inputs (line art, masks, keyframe), read in the stream's reader
threads. `native_depth`: 16-bit files at 16 bits for an engine that takes them (`reads_native_depth`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from colorize import images
from colorize.engines.base import Character, FrameInput, ShotContext
from colorize.output import engine_layers
from colorize.shot import ShotPlan


def shot_context(
    plan: ShotPlan, size: tuple[int, int], qa: bool = False, native_depth: bool = False
) -> ShotContext:
    """What engines may know of the whole shot; references are decoded here, once. `native_depth`: line
    art and keyframes load at their files' depth (`reads_native_depth`), else as 8-bit."""
    read = images.read_image if native_depth else images.read_rgba

    def load_masks(frame: int) -> dict[str, np.ndarray]:
        return {c.name: images.read_mask(c.mask.path(frame)) for c in plan.characters if c.mask is not None}

    return ShotContext(
        frames=plan.frames,
        keyframes=tuple(sorted(plan.keyframe_paths)),
        size=size,
        characters=tuple(
            _character(c.name, c.reference, c.mask is not None, c.reference_mask) for c in plan.characters
        ),
        background=images.read_rgb(plan.background) if plan.background else None,
        settings=plan.settings,
        load_lineart=lambda f: read(plan.lineart_paths[f]),
        load_keyframe=lambda f: read(plan.keyframe_paths[f]),
        load_masks=load_masks,
        qa=qa,
        layers=engine_layers(plan),
        palette=plan.palette,
        shown_before=plan.exposures.shown_before,
    )


def read_frame(
    plan: ShotPlan,
    frame: int,
    preprocess: Callable[[FrameInput], FrameInput] | None = None,
    native_depth: bool = False,
) -> FrameInput:
    """Drawing `frame`'s files as the engine takes them, through the engine's `preprocess` when given."""
    fp = plan.frame(frame)
    read = images.read_image if native_depth else images.read_rgba
    frame_input = FrameInput(
        frame=frame,
        lineart=read(fp.lineart),
        masks={name: images.read_mask(path) for name, path in fp.masks.items()},
        keyframe=read(fp.keyframe) if fp.keyframe else None,
    )
    return preprocess(frame_input) if preprocess is not None else frame_input


def _character(name: str, reference: Path, has_mask: bool, reference_mask: Path | None) -> Character:
    """A character as engines know it: its reference decoded once (RGB over white, and its alpha when it
    has transparency: a painted frame with a transparent background stays transparent where it paints)."""
    rgba = images.read_rgba(reference)
    alpha = rgba[..., 3].copy() if images.has_transparency(rgba) else None
    mask = images.read_mask(reference_mask) if reference_mask else None
    return Character(name, images.over_white(rgba), has_mask, mask, alpha)
