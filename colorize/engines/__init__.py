"""Engines turn batches of line-art frames into colored frames; see `base.Engine`.

Each engine is described by an `EngineSpec`: how to build it, and what is known about it without building
it (no weights loaded): which line-art frames the output of a frame depends on, which settings it reads, a
fingerprint of its model, and in which batches the runner hands it the frames to color. The shot plan uses
the spec for validation (every frame an engine reads is checked) and for freshness (what each output was
made from); the runner for the order of the stream.

Freshness by declaration: each engine lists the settings it *reads* (`EngineSpec.reads`, dotted paths such
as `seed` or `flat.gap_close`); an output's settings digest covers exactly those, plus `WRITER_READS` (what
the writer does to every engine's image). Every other setting must be listed in `NOT_PIXELS` with why it
cannot change a pixel; `tests/test_settings_reads.py` walks every settings field and fails on a field that
is in neither list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from colorize.engines.base import Engine
from colorize.errors import UsageError
from colorize.settings import Settings

# (frame, frames of the whole line-art sequence (sorted), keyframes (sorted), settings) -> frames, f included
DependsOn = Callable[[int, Sequence[int], Sequence[int], Settings], tuple[int, ...]]
# (frames to color (sorted), frames of the whole sequence, keyframes, settings) -> the batches, in order: each
# frame to color exactly once
Schedule = Callable[[Sequence[int], Sequence[int], Sequence[int], Settings], list[tuple[int, ...]]]

# Settings that change no pixel of any output, each with why. A new settings field goes either into the
# `reads` of every engine whose pixels it can change (or WRITER_READS), or here.
NOT_PIXELS = frozenset(
    {
        "engine",  # the record names the engine itself
        "model",  # the folder's path: its contents are in the record (EngineSpec.fingerprint)
        "output_compression",  # zlib level: the same pixels at every level
        "max_unresolved",  # the quality gate judges a written frame, it does not change it
        "diffusion.offload",  # moves the same weights between memories: same kernels, same bytes
        "palette",  # a path: the palette's content is one of the shot's inputs (in every record)
        "timing",  # which drawing a frame shows (the plan's timing), never how a drawing is colored
    }
)
# What the writer applies to every engine's image (alpha, depth): in every engine's digest.
WRITER_READS = frozenset({"output_alpha", "output_depth"})


@dataclass(frozen=True)
class EngineSpec:
    name: str
    create: Callable[[Settings], Engine]
    depends_on: DependsOn
    reads: frozenset[str]  # the settings its pixels depend on: leaf fields as dotted paths (`flat.gap_close`)
    fingerprint: Callable[[Settings], str] | None = None  # of the model the settings name, if any
    check: Callable[[Settings], None] | None = None  # raises what is known to be missing before a run
    schedule: Schedule | None = None  # the batches to color; None: consecutive frames, `batch` at a time


@dataclass(frozen=True)
class BatchSizes:
    """Everything the stream and the engines size from `batch`, derived in this one place."""

    batch: int

    @property
    def read_ahead(self) -> int:
        """Frames the runner reads (and preprocesses) ahead of the engine."""
        return 2 * self.batch

    @property
    def open_chains(self) -> int:
        """Warp chains a diffusion batch's frames are drawn from (started ones first, then new ones)."""
        return 2 * self.batch

    @property
    def held_results(self) -> int:
        """Warp results the diffusion engine keeps (one per started chain, with room for the next ones)."""
        return 2 * self.open_chains

    @property
    def remembered_inks(self) -> int:
        """Line-art inks the diffusion engine keeps for the flow of the next frames: the frames read ahead,
        the current batch's and a few more."""
        return 2 * self.read_ahead + 8


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


def setting_paths(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every leaf settings field as a dotted path (`batch`, `flat.gap_close`), walking nested settings
    models (a field whose type is a pydantic model is a section)."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths += setting_paths(kind, f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def pixel_settings(spec: EngineSpec, settings: Settings) -> dict[str, Any]:
    """The settings `spec`'s engine reads and the writer's (`WRITER_READS`), nested as `model_dump` nests
    them: what an output's settings digest covers."""
    dumped = settings.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in sorted(spec.reads | WRITER_READS):
        *sections, name = path.split(".")
        source, target = dumped, out
        for section in sections:
            source, target = source[section], target.setdefault(section, {})
        target[name] = source[name]
    return out


def _create_flat(settings: Settings) -> Engine:
    from colorize.engines.flat import FlatEngine

    return FlatEngine(settings)


def _flat_depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    from colorize.engines.flat import depends_on

    return depends_on(frame, frames, keyframes, settings)


def _create_diffusion(settings: Settings) -> Engine:
    from colorize.engines.diffusion.engine import DiffusionEngine  # (the plan checked the model folder)

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
    """The model folder's one validation of a run (the plan runs it; `check` and `status` too)."""
    from colorize.engines.diffusion.planning import check_weight_files, require_model_folder

    folder = require_model_folder(settings.model)
    from colorize.engines.diffusion.model_folder import check_model_folder  # torch, no weights

    check_model_folder(folder)
    check_weight_files(folder)  # headers and file sizes only


def _create_keys(settings: Settings) -> Engine:
    from colorize.engines.keys import KeysEngine

    return KeysEngine(settings)


def _itself(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    return (frame,)


def _create_hybrid(settings: Settings) -> Engine:
    from colorize.engines.keys import HybridEngine

    return HybridEngine(settings)


def _whole_shot(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    """hybrid: the keys are chosen from the whole shot's line art, so every frame may decide any output."""
    return tuple(frames)


def _diffusion_fingerprint(settings: Settings) -> str:
    from colorize.engines.diffusion.planning import model_fingerprint

    return model_fingerprint(settings.model)


def _section(name: str) -> frozenset[str]:
    """Every leaf field of the settings section `name`, as dotted paths."""
    return frozenset(path for path in setting_paths() if path.startswith(f"{name}."))


# Colour-trace lines: which line pixels are filled, and with which side's colour (regions/lines.py), in
# the flat engine and in the diffusion engine's cel finish.
TRACE_READS = _section("trace_lines")

# The flat engine reads its own section, every field (flat.py); nothing random, no batch dependence.
FLAT_READS = _section("flat") | TRACE_READS


# The diffusion engine (diffusion/): its section but offload, the noise and batch shape, the temporal mode,
# and the flat fields of the line-art segmentation it shares with the flat engine: masks derived from the
# line art (`preprocess.lineart_foreground`: gap_close, line_threshold) and cel finish (`cel.cel_regions`:
# gap_close, min_region, line_threshold).
DIFFUSION_READS = (
    frozenset(
        {
            "seed",  # each frame's noise
            "batch",  # the UNet's batch shape (a frame's floats can differ in the last bit with it)
            "temporal",
            "diffusion.steps",
            "diffusion.sampler",
            "diffusion.resolution",
            "diffusion.mode",
            "diffusion.ref_scale",
            "diffusion.sketch_scale",
            "diffusion.strength",
            "diffusion.cel_finish",
            "diffusion.device",  # other kernels, other last bits
            "diffusion.dtype",
            "diffusion.mask_dilation",
            "diffusion.mask_source",
            "diffusion.warp_anchor_every",
            "diffusion.occlusion_threshold",
            "diffusion.cuda_graph",  # until a GPU run shows the replay gives the eager bytes
            "flat.gap_close",
            "flat.line_threshold",
            "flat.min_region",
        }
    )
    | TRACE_READS
)


_SPECS: dict[str, EngineSpec] = {
    "flat": EngineSpec("flat", _create_flat, _flat_depends_on, reads=FLAT_READS),
    "diffusion": EngineSpec(
        "diffusion",
        _create_diffusion,
        _diffusion_depends_on,
        reads=DIFFUSION_READS,
        fingerprint=_diffusion_fingerprint,
        check=_diffusion_check,
        schedule=_diffusion_schedule,
    ),
    # `colorize keys`: the diffusion engine painting key drawings, each alone (temporal none) and
    # cel-finished with the flat engine's regions (so `flat` counts); see colorize.engines.keys.
    "keys": EngineSpec(
        "keys",
        _create_keys,
        _itself,
        # each key alone (temporal none) and cel-finished (cel_finish on), whatever the settings say;
        # which drawings are keys (`keys.*`) decides which files, not their pixels.
        reads=DIFFUSION_READS - {"temporal", "diffusion.cel_finish"},
        fingerprint=_diffusion_fingerprint,
        check=_diffusion_check,
    ),
    # `engine: hybrid`: keys chosen and painted in memory, then the flat engine, in one run.
    "hybrid": EngineSpec(
        "hybrid",
        _create_hybrid,
        _whole_shot,
        # the keys' painting and the flat engine's, and the choice of keys (it decides every output).
        reads=FLAT_READS | (DIFFUSION_READS - {"temporal", "diffusion.cel_finish"}) | _section("keys"),
        fingerprint=_diffusion_fingerprint,
        check=_diffusion_check,
    ),
}


def engine_spec(name: str) -> EngineSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r} (known: {', '.join(sorted(_SPECS))})") from None


def engine_specs() -> list[EngineSpec]:
    """Every registered engine's spec, by name."""
    return [_SPECS[name] for name in sorted(_SPECS)]


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
