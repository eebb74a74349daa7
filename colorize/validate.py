"""Validate a shot plan against its images: sizes, readability, the colour model, keys vs drawings.

`validate_plan` reads headers (and with `deep=True` every byte) of the images a run will need, after
`colorize.shot.plan_shot` checked what can be checked without reading pixels. It collects every problem
before failing, so a user fixes a shot in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import overload

from colorize.colormodel import Palette, keyframe_problems
from colorize.errors import ColorizeError, InputDataError
from colorize.images import image_size, read_rgba, verify_image
from colorize.shot import ShotPlan, raise_problems


@overload
def validate_plan(
    plan: ShotPlan, *, deep: bool, frames: tuple[int, ...] | None = None, problems: None = None
) -> tuple[int, int]: ...


@overload
def validate_plan(
    plan: ShotPlan, *, deep: bool, frames: tuple[int, ...] | None = None, problems: list[ColorizeError]
) -> tuple[int, int] | None: ...


def validate_plan(
    plan: ShotPlan,
    *,
    deep: bool,
    frames: tuple[int, ...] | None = None,
    problems: list[ColorizeError] | None = None,
) -> tuple[int, int] | None:
    """Read image headers (deep: every byte) of the inputs the frames need; return the shot (h, w).

    `frames` defaults to every frame the run reads (`plan.reads`: the selection and the frames its outputs
    depend on). Checks that every line-art frame, mask and keyframe has the shot's size and every
    reference reads.
    Raises CheckFailed with one problem per file, or appends them to `problems` when given (files already
    known to be missing are skipped there; the size is then None if no line-art frame could be read).
    """
    read = verify_image if deep else image_size
    frames = plan.reads if frames is None else frames
    collect = problems is not None
    problems = [] if problems is None else problems
    size: tuple[int, int] | None = None
    first = Path()  # the file `size` came from (set with it)

    def same_size(path: Path, what: str) -> None:
        nonlocal size, first
        if collect and not path.exists():
            return
        try:
            hw = read(path)
        except ColorizeError as error:
            problems.append(error)
            return
        if size is None:
            size, first = hw, path
        elif hw != size:
            problems.append(
                InputDataError(
                    f"{path}: {what} is {hw[1]}×{hw[0]} but the shot is {size[1]}×{size[0]} (from {first.name})"
                )
            )

    for f in frames:
        fp = plan.frame(f)
        same_size(fp.lineart, f"frame {f}")
    for f in frames:
        fp = plan.frame(f)
        if fp.keyframe:
            same_size(fp.keyframe, f"keyframe {f}")
    single_masks_done: set[str] = set()
    for c in plan.characters:
        if c.mask is None:
            continue
        if c.mask.is_sequence:
            for f in frames:
                same_size(c.mask.path(f), f"mask of {c.name!r} for frame {f}")
        elif c.name not in single_masks_done and not (collect and not c.mask.path().is_file()):
            single_masks_done.add(c.name)
            same_size(c.mask.path(), f"mask of {c.name!r}")
    palette = plan.palette if not problems else None  # (keyframes checked on model when all else reads)
    _check_references(plan, read, collect, problems)
    _check_keyframes(plan, frames, size, palette, problems)
    if not collect:
        raise_problems(problems)
        assert size is not None  # every line-art frame read (plan_shot refuses a shot without frames)
    return size


def _check_references(
    plan: ShotPlan, read: Callable[[Path], tuple[int, int]], collect: bool, problems: list[ColorizeError]
) -> None:
    """Every character reference and the background reference reads; a reference mask has its
    reference's size. `collect`: files plan_shot found missing are left out (it reported them)."""
    for ref in [c.reference for c in plan.characters] + ([plan.background] if plan.background else []):
        if collect and not ref.is_file():  # plan_shot reported it
            continue
        try:
            read(ref)
        except ColorizeError as error:
            problems.append(error)
    for c in plan.characters:
        if c.reference_mask is None or (
            collect and not (c.reference_mask.is_file() and c.reference.is_file())
        ):
            continue
        try:
            mask_hw, ref_hw = read(c.reference_mask), image_size(c.reference)
        except ColorizeError as error:
            problems.append(error)
            continue
        if mask_hw != ref_hw:
            problems.append(
                InputDataError(
                    f"{c.reference_mask}: reference_mask of {c.name!r} is {mask_hw[1]}×{mask_hw[0]} but its "
                    f"reference is {ref_hw[1]}×{ref_hw[0]}"
                )
            )


def _check_keyframes(
    plan: ShotPlan,
    frames: tuple[int, ...],
    size: tuple[int, int] | None,
    palette: Palette | None,
    problems: list[ColorizeError],
) -> None:
    """Each keyframe of `frames` and its drawing's line art, read once: its colours on the colour model
    (`palette`, when given) and its line work against its drawing (`colorize.keymatch`, when the shot's
    size is known). Files already found bad, and keys found off model, are left alone."""
    from colorize.keymatch import LineMasks, check_keyframe

    bad = {str(p).split(": ", 1)[0] for p in problems}
    lines = LineMasks(lambda d: read_rgba(plan.lineart_paths[d]))
    for d in frames:
        path = plan.keyframe_paths.get(d)
        if path is None or str(path) in bad or str(plan.lineart_paths[d]) in bad:
            continue
        try:
            key, line = read_rgba(path), lines.read(d)
        except ColorizeError:
            continue  # (reported where it is read)
        if palette is not None:
            off = keyframe_problems(palette, key, line, str(path))
            problems.extend(InputDataError(text) for text in off)
            if off:
                continue
        if size is not None and key.shape[:2] == size:
            check_keyframe(plan, d, key, lines, problems)
