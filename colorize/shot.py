"""Resolve a manifest into a `ShotPlan`: frames, masks, keyframes, outputs, range, settings, engine.

Timing (`colorize.timing`) is resolved here, once (`colorize.shot_frames`): which drawing each output frame
shows (strict, holds, or a timesheet). The plan's engine-facing numbers are drawings; its outputs, selection
and events are frames.

The plan also names every line-art frame the engine will read for the selected range (its `depends_on`
rule: a flat-engine chain from a keyframe, a diffusion warp chain from its anchor), so validation covers
them and `check` and `shot` agree on what a run touches; and it lists, per output, the input files that
output is made from (see `colorize.provenance`).

`plan_shot` checks what can be checked without reading pixels; `colorize.validate.validate_plan` reads
headers (and with `deep=True` every byte) of the images a run will need. Both collect every problem
before failing, so a user fixes a manifest in one pass.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from colorize.colormodel import Palette, load_palette
from colorize.engines import DependsOn, choose_engine, engine_spec
from colorize.errors import (
    CheckFailed,
    ColorizeError,
    ManifestError,
    MissingInputError,
    OutputError,
    UsageError,
)
from colorize.images import IMAGE_EXTS
from colorize.layers import clashes, plan_layers
from colorize.manifest import Manifest, load_manifest, load_preset, load_yaml_with_lines, preset_path
from colorize.repeats import Digests, fold_repeats
from colorize.sequences import Pattern, frame_range_text, list_frames, parse_pattern
from colorize.settings import Settings, merge_layers
from colorize.shot_frames import (
    dependencies_of,
    keyframe_files,
    keyframes_by_drawing,
    report_gaps,
    selection,
    shot_timing,
)
from colorize.timing import Timing

MODEL_ENV = "COLORIZE_MODEL_DIR"


@dataclass(frozen=True)
class CharacterPlan:
    name: str
    reference: Path
    mask: Pattern | None  # a sequence, or a single image for every frame (width 0)
    reference_mask: Path | None = None  # the character in its reference image


@dataclass(frozen=True)
class FramePlan:
    """The files of one drawing (line art, its keyframe, its masks), as the engine reads them."""

    frame: int  # the drawing's number (a frame number under strict timing)
    lineart: Path
    keyframe: Path | None
    masks: dict[str, Path]


@dataclass(frozen=True)
class ShotPlan:
    """A run, resolved. Two kinds of numbers: *frames* (outputs, `selected`, events) and *drawings*
    (line-art numbers: `frames`, `lineart_paths`, `keyframe_paths`, `dependencies`' values, what engines
    color); `timing` maps one to the other. Under strict timing they are the same numbers."""

    manifest_path: Path
    lineart: Pattern
    output: Pattern
    frames: tuple[int, ...]  # every drawing the shot shows (line-art numbers), sorted: the engines' sequence
    selected: tuple[int, ...]  # the output frames this run produces
    lineart_paths: dict[int, Path]  # line-art number -> file (every drawing shown, and exact repeats of one)
    keyframe_paths: dict[int, Path]  # drawing -> the colored keyframe of a frame that shows it
    characters: tuple[CharacterPlan, ...]
    background: Path | None
    settings: Settings
    engine: str = "flat"
    engine_reason: str = ""
    # selected frame -> the drawings its output is made from (the engine's rule; includes the frame's own
    # drawing; none for a blank frame)
    dependencies: dict[int, tuple[int, ...]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # where settings came from, for the run log
    timing: Timing | None = None  # frame -> drawing; None: strict over `frames`
    keyframe_frames: dict[int, int] = field(default_factory=dict)  # drawing -> the frame its keyframe names

    def __post_init__(self) -> None:
        if self.timing is None:
            object.__setattr__(self, "timing", Timing.strict(self.frames))

    @property
    def exposures(self) -> Timing:
        assert self.timing is not None  # (set in __post_init__)
        return self.timing

    palette: Palette | None = None  # the colour model (`settings.palette`, loaded)
    layers: dict[str, Pattern] = field(default_factory=dict)  # layer name -> pattern (`colorize.layers`)
    # file -> sha256 of its bytes, for the files the plan already read (`colorize.repeats`); freshness
    # records reuse them instead of reading the files again
    digests: dict[Path, str] = field(default_factory=dict, compare=False, repr=False)

    def outputs_of(self, f: int) -> dict[str, Path]:
        """Every file frame `f` writes: its layers, then the main output (`output`), in writing order."""
        return {**{name: p.path(f) for name, p in self.layers.items()}, "output": self.output.path(f)}

    @property
    def reads(self) -> tuple[int, ...]:
        """Every drawing the engine reads for the selected frames, sorted."""
        return tuple(sorted({d for deps in self.dependencies.values() for d in deps}))

    def drawing(self, frame: int) -> int | None:
        """The drawing output frame `frame` shows (None: a blank frame)."""
        return self.exposures.drawing(frame)

    def frame(self, d: int) -> FramePlan:
        """The files of drawing `d`."""
        return FramePlan(
            frame=d,
            lineart=self.lineart_paths[d],
            keyframe=self.keyframe_paths.get(d),
            masks={c.name: c.mask.path(d) for c in self.characters if c.mask is not None},
        )

    def joined(self, previous: int, frame: int) -> bool:
        """Whether output `frame` shares work with output `previous` (the frame before it): the same
        drawing, or a drawing made from `previous`'s (a chain): a chunk cut between them colors a drawing
        twice or recomputes a chain."""
        d = self.exposures.drawing(previous)
        return d is not None and (d == self.exposures.drawing(frame) or d in self.dependencies.get(frame, ()))

    @property
    def selected_range(self) -> str:
        return frame_range_text(list(self.selected))

    def input_paths(self) -> set[Path]:
        """Every input file of the shot (resolved), whatever the selection: outputs must never be one."""
        paths = set(self.lineart_paths.values()) | set(self.keyframe_paths.values())
        for f in self.frames:
            paths.update(self.frame_inputs(f).values())
        paths.update(self.shot_inputs().values())
        return {p.resolve() for p in paths}

    def frame_inputs(self, frame: int) -> dict[str, Path]:
        """A drawing's own files by role (`lineart 1001`, `keyframe 1001`, `mask hero 1001`: the drawing's
        number; its keyframe, whichever frame names it).

        Roles never name folders: moving a shot elsewhere keeps them."""
        files = {f"lineart {frame}": self.lineart_paths[frame]}
        if frame in self.keyframe_paths:
            files[f"keyframe {frame}"] = self.keyframe_paths[frame]
        for c in self.characters:
            if c.mask is not None and c.mask.is_sequence:
                files[f"mask {c.name} {frame}"] = c.mask.path(frame)
        return files

    def shot_inputs(self) -> dict[str, Path]:
        """Files every frame is made from: references, the background, single-image masks."""
        files: dict[str, Path] = {}
        for c in self.characters:
            files[f"reference {c.name}"] = c.reference
            if c.reference_mask is not None:
                files[f"reference mask {c.name}"] = c.reference_mask
            if c.mask is not None and not c.mask.is_sequence:
                files[f"mask {c.name}"] = c.mask.path()
        if self.background:
            files["background"] = self.background
        if self.palette is not None:
            files["palette"] = self.palette.path
        return files


def find_manifest(shot_dir: Path, refs: Path | None) -> Path:
    """The manifest for `colorize shot DIR --refs FILE`: FILE as given, else DIR/FILE, else DIR/refs.yaml."""
    if not shot_dir.is_dir():
        raise MissingInputError(f"{shot_dir}: shot folder not found")
    if refs is None:
        path = shot_dir / "refs.yaml"
        if not path.is_file():
            raise MissingInputError(
                f"{path}: no manifest; pass --refs FILE or run `colorize init {shot_dir}`"
            )
        return path
    if refs.is_file() or refs.is_absolute():
        return refs
    inside = shot_dir / refs
    return inside if inside.is_file() else refs


def resolve_settings(
    manifest: Manifest, manifest_path: Path, preset: str | None, cli: dict[str, Any]
) -> tuple[Settings, dict[str, str]]:
    """preset < manifest < $COLORIZE_MODEL_DIR (model only) < command line, validated once."""
    preset_name = preset or manifest.preset
    try:
        preset_layer = load_preset(preset_name, manifest_path.parent).as_layer()
    except ManifestError as error:
        if preset:  # came from --preset
            raise UsageError(f"--preset {preset!r}: " + error.problems[0].split(": ", 1)[-1]) from None
        _, lines = load_yaml_with_lines(manifest_path)
        line = lines.get(("preset",))
        where = f"{manifest_path}:{line}" if line else str(manifest_path)
        raise ManifestError([f"{where}: {p}" for p in error.problems]) from None
    except MissingInputError as error:
        raise MissingInputError(f"preset {preset_name!r}: {error}") from None
    manifest_layer = manifest.as_layer()
    if manifest.model:
        model = Path(manifest.model)
        manifest_layer["model"] = str(model if model.is_absolute() else manifest_path.parent / model)
    if manifest.palette:
        manifest_layer["palette"] = str(manifest_path.parent / manifest.palette)
    if "palette" in preset_layer:  # relative to the preset file
        preset_layer["palette"] = str(
            preset_path(preset_name, manifest_path.parent).parent / preset_layer["palette"]
        )
    env_layer = {"model": os.environ[MODEL_ENV]} if os.environ.get(MODEL_ENV) else {}
    merged = merge_layers(preset_layer, manifest_layer, env_layer, cli)
    sources = {}
    for name, layer in (("preset " + preset_name, preset_layer), ("manifest", manifest_layer)):
        for key in layer:
            sources[key] = name
    for key in env_layer:
        sources[key] = MODEL_ENV
    for key, value in cli.items():
        if value is not None:
            sources[key] = "command line"
    try:
        return Settings.model_validate(merged), sources
    except ValidationError as error:  # only reachable from command-line values: the layers were validated
        err = error.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"setting {key}: {err['msg']} (got {err.get('input')!r})") from None


def plan_shot(
    manifest_path: Path,
    *,
    frames: str | None = None,
    out_dir: Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    problems: list[ColorizeError] | None = None,
) -> ShotPlan:
    """Build the plan of a run; raise CheckFailed (or the single error) listing every problem found.

    With a `problems` list, problems that still leave a usable plan are appended there instead of raised
    (`colorize check` goes on to look at the images and reports everything in one pass).
    """
    collect = problems is not None
    problems = [] if problems is None else problems
    manifest_problems: list[str] = []
    manifest = load_manifest(manifest_path, manifest_problems if collect else None)
    problems.extend(ManifestError([p]) for p in manifest_problems)
    base = manifest_path.parent
    settings, sources = resolve_settings(manifest, manifest_path, preset, overrides or {})

    lineart, line_paths = _lineart(manifest, base, manifest_path)
    timing, line_paths = shot_timing(manifest, settings, lineart, line_paths, manifest_path, problems)
    key_files = keyframe_files(manifest, manifest_path, problems)
    digests = Digests()
    masks = [m for m in _mask_patterns(manifest, base) if m.is_sequence]
    timing = fold_repeats(timing, line_paths, masks, key_files, digests)
    selected = selection(frames, timing)
    output = _output_pattern(manifest, lineart, base, out_dir, manifest_path)
    _check_output_pattern(manifest, manifest_path, output, lineart, problems)
    keyframe_paths, keyframe_frames = keyframes_by_drawing(key_files, timing, digests, problems)

    engine, engine_reason, depends_on = _engine(settings, problems)
    dependencies = dependencies_of(depends_on, selected, timing, keyframe_paths, settings)
    if settings.timing == "strict" and timing.kind == "strict":
        report_gaps(lineart, line_paths, selected, dependencies, frames is not None, problems)
    reads = sorted({d for deps in dependencies.values() for d in deps})
    characters = _characters(manifest, base, reads, problems)

    background = None
    if manifest.background and manifest.background.reference:
        background = base / manifest.background.reference
        _require_file(background, "background reference", problems)
    palette, layers = _colour_model_and_layers(
        manifest, settings, base, out_dir, manifest_path, output, selected, problems
    )

    plan = ShotPlan(
        manifest_path=manifest_path,
        lineart=lineart,
        output=output,
        frames=timing.drawings,
        selected=tuple(selected),
        lineart_paths=line_paths,
        keyframe_paths=keyframe_paths,
        characters=tuple(characters),
        background=background,
        settings=settings,
        engine=engine,
        engine_reason=engine_reason,
        dependencies=dependencies,
        sources=sources,
        timing=timing,
        keyframe_frames=keyframe_frames,
        palette=palette,
        layers=layers,
        digests=digests.known(),
    )
    if not problems:
        _check_outputs_not_inputs(plan, problems)
    if not collect:
        raise_problems(problems)
    return plan


def _engine(settings: Settings, problems: list[ColorizeError]) -> tuple[str, str, DependsOn]:
    """The engine the settings choose, why, and its `depends_on` rule; its own check's problem is
    collected."""
    engine, engine_reason = choose_engine(settings)
    spec = engine_spec(engine)
    if spec.check is not None:
        try:
            spec.check(settings)
        except ColorizeError as error:
            problems.append(error)
    return engine, engine_reason, spec.depends_on


def _check_outputs_not_inputs(plan: ShotPlan, problems: list[ColorizeError]) -> None:
    """A selected frame's output (or layer) that is one of the run's input files is a problem."""
    inputs = plan.input_paths()
    for kind in ["output", *plan.layers]:
        pattern = plan.layers.get(kind, plan.output)
        hit = [f for f in plan.selected if pattern.path(f).resolve() in inputs]
        if hit:
            what, key = ("output", "output") if kind == "output" else (f"layer {kind}", f"layers.{kind}")
            problems.append(
                OutputError(
                    f"{pattern.path(hit[0])}: {what} of frame {hit[0]} is an input file; "
                    f"change `{key}` or --out"
                )
            )


def _lineart(manifest: Manifest, base: Path, manifest_path: Path) -> tuple[Pattern, dict[int, Path]]:
    """The line-art pattern and its files on disk (frame or drawing number -> path)."""
    lineart = parse_pattern(manifest.lineart, base)
    if not lineart.is_sequence:
        raise ManifestError(
            [f"{manifest_path}: lineart: {manifest.lineart!r} has no frame number (use ####)"]
        )
    line_paths = list_frames(lineart, "lineart")
    if not line_paths:
        raise MissingInputError(f"{lineart.folder}: no frame matches lineart pattern {manifest.lineart!r}")
    return lineart, line_paths


def _check_output_pattern(
    manifest: Manifest, manifest_path: Path, output: Pattern, lineart: Pattern, problems: list[ColorizeError]
) -> None:
    suffix = os.path.splitext("frame" + output.tail)[1].lower()  # tail: ".png", "_v2.png", ""
    if suffix not in IMAGE_EXTS:
        key = "output" if manifest.output else "output (default: the lineart's file type)"
        problems.append(
            ManifestError(
                [
                    f"{manifest_path}: {key}: {output.text!r}: colorize writes {', '.join(IMAGE_EXTS)} files, "
                    f"not {suffix or 'files without an extension'}"
                ]
            )
        )
    if (output.folder.resolve(), output.head, output.tail) == (
        lineart.folder.resolve(),
        lineart.head,
        lineart.tail,
    ):
        problems.append(
            OutputError(
                f"{manifest_path}: output: {output.text!r} is the lineart pattern; outputs would overwrite inputs"
            )
        )


def _mask_patterns(manifest: Manifest, base: Path) -> list[Pattern]:
    return [parse_pattern(entry.mask, base) for entry in manifest.characters.values() if entry.mask]


def _characters(
    manifest: Manifest, base: Path, reads: list[int], problems: list[ColorizeError]
) -> list[CharacterPlan]:
    characters = []
    for name, entry in manifest.characters.items():
        ref = base / entry.reference
        _require_file(ref, f"reference of character {name!r}", problems)
        mask = parse_pattern(entry.mask, base) if entry.mask else None
        if mask is not None:
            if mask.is_sequence:
                try:
                    have = list_frames(mask, f"mask of {name!r}")
                except ColorizeError as error:
                    problems.append(error)
                    have = {}
                missing = [f for f in reads if f not in have]
                if missing and mask.folder.is_dir():
                    problems.append(
                        MissingInputError(
                            f"{mask.path(missing[0])}: mask of {name!r} missing for frames {frame_range_text(missing)}"
                        )
                    )
            else:
                _require_file(mask.path(), f"mask of character {name!r}", problems)
        reference_mask = base / entry.reference_mask if entry.reference_mask else None
        if reference_mask is not None:
            _require_file(reference_mask, f"reference_mask of character {name!r}", problems)
        characters.append(CharacterPlan(name, ref, mask, reference_mask))
    return characters


def _colour_model_and_layers(
    manifest: Manifest,
    settings: Settings,
    base: Path,
    out_dir: Path | None,
    manifest_path: Path,
    output: Pattern,
    selected: list[int],
    problems: list[ColorizeError],
) -> tuple[Palette | None, dict[str, Pattern]]:
    """The palette (`settings.palette`, loaded) and the layer patterns (`colorize.layers`); problems appended."""
    palette = None
    if settings.palette:
        try:
            palette = load_palette(Path(settings.palette))
        except ColorizeError as error:
            problems.append(error)
    entries = manifest.layers.model_dump() if manifest.layers else {}
    layers = plan_layers(entries, base, out_dir, manifest_path, settings.palette is not None, problems)
    if layers and selected:
        for clash in clashes({**layers, "output": output}, selected[0]):
            problems.append(OutputError(f"{manifest_path}: layers: {clash}"))
    return palette, layers


def _require_file(path: Path, what: str, problems: list[ColorizeError]) -> None:
    """A file the manifest names must be a file: one problem line if it is missing or a folder."""
    if path.is_dir():
        problems.append(MissingInputError(f"{path}: {what} is a folder, not an image file"))
    elif not path.is_file():
        problems.append(MissingInputError(f"{path}: {what} not found"))


def _output_pattern(
    manifest: Manifest, lineart: Pattern, base: Path, out_dir: Path | None, manifest_path: Path
) -> Pattern:
    if manifest.output:
        out = parse_pattern(manifest.output, base)
        if not out.is_sequence:
            raise ManifestError([f"{manifest_path}: output: {manifest.output!r} needs a frame number (####)"])
    else:
        out = Pattern(
            f"color/{lineart.head}{'#' * lineart.width}{lineart.tail}",
            base / "color",
            lineart.head,
            lineart.tail,
            lineart.width,
        )
    return out if out_dir is None else out.with_folder(out_dir)


def check_output_writable(plan: ShotPlan) -> None:
    """Raise OutputError unless the output folder (and each layer's) exists-and-is-writable or can be
    created."""
    for folder in dict.fromkeys([plan.output.folder, *(p.folder for p in plan.layers.values())]):
        _check_folder_writable(folder)


def _check_folder_writable(folder: Path) -> None:
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{folder}: cannot create the output folder ({probe} is not a folder)")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".colorize-probe-"):
            pass
    except OSError as error:
        raise OutputError(f"{folder}: output folder is not writable ({error.strerror})") from None


def raise_problems(problems: list[ColorizeError]) -> None:
    """Raise nothing, the one problem, or CheckFailed listing them all."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise CheckFailed(problems)
