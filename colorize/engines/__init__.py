"""Engines turn batches of line-art frames into colored frames; see `base.Engine`.

Each engine is described by an `EngineSpec`: how to build it, and what is known about it without building
it (no weights loaded): which line-art frames the output of a frame depends on, which settings never change
its pixels, a fingerprint of its model, and in which batches the runner hands it the frames to color. The
shot plan uses the spec for validation (every frame an engine reads is checked) and for freshness (what each
output was made from); the runner for the order of the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from colorize.engines.base import Engine
from colorize.errors import UsageError
from colorize.settings import Settings

# (frame, frames of the whole line-art sequence (sorted), keyframes (sorted), settings) -> frames, f included
DependsOn = Callable[[int, Sequence[int], Sequence[int], Settings], tuple[int, ...]]
# (frames to color (sorted), frames of the whole sequence, keyframes, settings) -> the batches, in order: each
# frame to color exactly once
Schedule = Callable[[Sequence[int], Sequence[int], Sequence[int], Settings], list[tuple[int, ...]]]

# Settings that change no engine's pixels: where a run writes and how it judges its results.
# `timing` decides which drawing a frame shows (the plan's timing), never how a drawing is colored.
NON_PIXEL_SETTINGS = frozenset({"engine", "model", "output_compression", "max_unresolved", "timing"})


@dataclass(frozen=True)
class EngineSpec:
    name: str
    create: Callable[[Settings], Engine]
    depends_on: DependsOn
    ignores: frozenset[str]  # settings this engine's pixels never depend on (top-level keys or `section.key`)
    fingerprint: Callable[[Settings], str] | None = None  # of the model the settings name, if any
    check: Callable[[Settings], None] | None = None  # raises what is known to be missing before a run
    schedule: Schedule | None = None  # the batches to color; None: consecutive frames, `batch` at a time


def consecutive_batches(todo: Sequence[int], batch: int) -> list[tuple[int, ...]]:
    """The frames in order, `batch` at a time (the last batch may be shorter)."""
    return [tuple(todo[i : i + batch]) for i in range(0, len(todo), batch)]


def batches_of(
    spec: EngineSpec, todo: Sequence[int], frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> list[tuple[int, ...]]:
    """The batches the runner hands the engine `spec` (its schedule, else consecutive frames)."""
    if spec.schedule is None:
        return consecutive_batches(todo, settings.batch)
    return spec.schedule(todo, frames, keyframes, settings)


def _create_flat(settings: Settings) -> Engine:
    from colorize.engines.flat import FlatEngine

    return FlatEngine(settings)


def _flat_depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    from colorize.engines.flat import depends_on

    return depends_on(frame, frames, keyframes, settings)


def _create_diffusion(settings: Settings) -> Engine:
    _diffusion_check(settings)
    from colorize.engines.diffusion.engine import DiffusionEngine

    return DiffusionEngine(settings)


def _diffusion_depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    from colorize.engines.diffusion.planning import depends_on

    return depends_on(frame, frames, keyframes, settings)


def _diffusion_schedule(
    todo: Sequence[int], frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> list[tuple[int, ...]]:
    from colorize.engines.diffusion.planning import schedule

    return schedule(todo, frames, keyframes, settings)


def _diffusion_check(settings: Settings) -> None:
    from colorize.engines.diffusion.planning import require_model_folder

    require_model_folder(settings.model)
    from colorize.engines.diffusion.engine import check_model_folder  # torch, no weights
    from colorize.engines.diffusion.planning import check_weight_files  # headers and file sizes only

    check_model_folder(settings.model or "")
    check_weight_files(settings.model or "")


def _diffusion_fingerprint(settings: Settings) -> str:
    from colorize.engines.diffusion.planning import model_fingerprint

    return model_fingerprint(settings.model)


_SPECS: dict[str, EngineSpec] = {
    "flat": EngineSpec(
        "flat",
        _create_flat,
        _flat_depends_on,
        ignores=NON_PIXEL_SETTINGS | {"seed", "batch", "temporal", "diffusion"},
    ),
    "diffusion": EngineSpec(
        "diffusion",
        _create_diffusion,
        _diffusion_depends_on,
        # offload moves the same weights around: same kernels, same bytes.
        ignores=NON_PIXEL_SETTINGS | {"flat", "diffusion.offload"},
        fingerprint=_diffusion_fingerprint,
        check=_diffusion_check,
        schedule=_diffusion_schedule,
    ),
}


def engine_spec(name: str) -> EngineSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r} (known: {', '.join(sorted(_SPECS))})") from None


def register_engine(spec: EngineSpec) -> EngineSpec | None:
    """Add or replace an engine (tests, plug-ins); returns the spec it replaced."""
    previous = _SPECS.get(spec.name)
    _SPECS[spec.name] = spec
    return previous


def choose_engine(settings: Settings) -> tuple[str, str]:
    """(engine name, why) for the settings; `auto` picks diffusion only when a model is configured."""
    if settings.engine != "auto":
        return settings.engine, "asked for"
    if settings.model:
        return "diffusion", f"auto: model {settings.model}"
    return "flat", "auto: no diffusion model configured (--model, COLORIZE_MODEL_DIR or manifest `model`)"


def create_engine(name: str, settings: Settings) -> Engine:
    """Build an engine by name. Heavy imports (torch, diffusers) happen only for the engine chosen."""
    return engine_spec(name).create(settings)
