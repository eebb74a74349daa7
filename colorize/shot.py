"""Resolve a manifest into a `ShotPlan`: frames, masks, keyframes, outputs, range, settings, engine.

The plan also names every line-art frame the engine will read for the selected range (its `depends_on`
rule: a flat-engine chain from a keyframe, a diffusion warp chain from its anchor), so validation covers
them and `check` and `shot` agree on what a run touches; and it lists, per output, the input files that
output is made from (see `colorize.provenance`).

`plan_shot` checks what can be checked without reading pixels; `validate_plan` reads headers (and with
`deep=True` every byte) of the images a run will need. Both collect every problem before failing, so a
user fixes a manifest in one pass.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from pydantic import ValidationError

from colorize.colormodel import Palette, keyframe_problems, load_palette
from colorize.engines import choose_engine, engine_spec
from colorize.errors import (
    CheckFailed,
    ColorizeError,
    InputDataError,
    ManifestError,
    MissingInputError,
    OutputError,
    UsageError,
)
from colorize.images import IMAGE_EXTS, image_size, verify_image
from colorize.layers import clashes, plan_layers
from colorize.manifest import Manifest, load_manifest, load_preset, load_yaml_with_lines, preset_path
from colorize.sequences import Pattern, frame_range_text, gaps, list_frames, parse_frame_range, parse_pattern
from colorize.settings import Settings, merge_layers

MODEL_ENV = "COLORIZE_MODEL_DIR"


@dataclass(frozen=True)
class CharacterPlan:
    name: str
    reference: Path
    mask: Pattern | None  # a sequence, or a single image for every frame (width 0)
    reference_mask: Path | None = None  # the character in its reference image


@dataclass(frozen=True)
class FramePlan:
    frame: int
    lineart: Path
    output: Path
    keyframe: Path | None
    masks: dict[str, Path]


@dataclass(frozen=True)
class ShotPlan:
    manifest_path: Path
    lineart: Pattern
    output: Pattern
    frames: tuple[int, ...]  # the whole line-art sequence
    selected: tuple[int, ...]  # the frames this run produces
    lineart_paths: dict[int, Path]
    keyframe_paths: dict[int, Path]
    characters: tuple[CharacterPlan, ...]
    background: Path | None
    settings: Settings
    engine: str = "flat"
    engine_reason: str = ""
    # selected frame -> the line-art frames its output is made from (the engine's rule; includes the frame)
    dependencies: dict[int, tuple[int, ...]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # where settings came from, for the run log
    palette: Palette | None = None  # the colour model (`settings.palette`, loaded)
    layers: dict[str, Pattern] = field(default_factory=dict)  # layer name -> pattern (`colorize.layers`)

    def outputs_of(self, f: int) -> dict[str, Path]:
        """Every file frame `f` writes: its layers, then the main output (`output`), in writing order."""
        return {**{name: p.path(f) for name, p in self.layers.items()}, "output": self.output.path(f)}

    @property
    def reads(self) -> tuple[int, ...]:
        """Every line-art frame the engine reads for the selected frames, sorted."""
        return tuple(sorted({d for deps in self.dependencies.values() for d in deps} | set(self.selected)))

    def frame(self, f: int) -> FramePlan:
        return FramePlan(
            frame=f,
            lineart=self.lineart_paths[f],
            output=self.output.path(f),
            keyframe=self.keyframe_paths.get(f),
            masks={c.name: c.mask.path(f) for c in self.characters if c.mask is not None},
        )

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
        """A line-art frame's own files by role (`lineart 1001`, `keyframe 1001`, `mask hero 1001`).

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

    lineart = parse_pattern(manifest.lineart, base)
    if not lineart.is_sequence:
        raise ManifestError(
            [f"{manifest_path}: lineart: {manifest.lineart!r} has no frame number (use ####)"]
        )
    line_paths = list_frames(lineart, "lineart")
    if not line_paths:
        raise MissingInputError(f"{lineart.folder}: no frame matches lineart pattern {manifest.lineart!r}")
    all_frames = sorted(line_paths)
    # One line per gap, however long (a 500-frame hole is one problem, not 500).
    for _, run in itertools.groupby(enumerate(gaps(all_frames)), key=lambda item: item[1] - item[0]):
        hole = [frame for _, frame in run]
        which = f"frame {hole[0]} is" if len(hole) == 1 else f"frames {frame_range_text(hole)} are"
        problems.append(
            MissingInputError(
                f"{lineart.path(hole[0])}: {which} missing from lineart sequence {frame_range_text(all_frames)}"
            )
        )

    if frames is not None:  # an empty --frames "" (an unset farm variable) selects nothing, not the shot
        wanted = parse_frame_range(frames)
        outside = [f for f in wanted if f not in line_paths]
        if outside:
            raise UsageError(
                f"--frames {frames}: frames {frame_range_text(outside)} are not in lineart sequence "
                f"{frame_range_text(all_frames)}"
            )
        selected = wanted
    else:
        selected = all_frames

    output = _output_pattern(manifest, lineart, base, out_dir, manifest_path)
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

    keyframe_paths: dict[int, Path] = {}
    if manifest.keyframes:
        keys = parse_pattern(manifest.keyframes, base)
        if keys.is_sequence:
            try:
                keyframe_paths = list_frames(keys, "keyframes")
            except ColorizeError as error:
                problems.append(error)
            stray = [f for f in keyframe_paths if f not in line_paths]
            for f in stray:
                problems.append(InputDataError(f"{keyframe_paths[f]}: keyframe {f} has no lineart frame {f}"))
        else:
            problems.append(
                ManifestError(
                    [f"{manifest_path}: keyframes: {manifest.keyframes!r} needs a frame number (####)"]
                )
            )

    engine, engine_reason = choose_engine(settings)
    spec = engine_spec(engine)
    if spec.check is not None:
        try:
            spec.check(settings)
        except ColorizeError as error:
            problems.append(error)
    rule = spec.depends_on
    key_frames = sorted(f for f in keyframe_paths if f in line_paths)
    # Frames between the same keyframes (or anchors) share one tuple: long shots stay small in memory.
    shared: dict[tuple[int, ...], tuple[int, ...]] = {}
    dependencies: dict[int, tuple[int, ...]] = {}
    for f in selected:
        deps = rule(f, all_frames, key_frames, settings)
        dependencies[f] = shared.setdefault(deps, deps)
    reads = sorted({d for deps in dependencies.values() for d in deps})

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

    background = None
    if manifest.background and manifest.background.reference:
        background = base / manifest.background.reference
        _require_file(background, "background reference", problems)

    palette = None
    if settings.palette:
        try:
            palette = load_palette(Path(settings.palette))
        except ColorizeError as error:
            problems.append(error)
    layers = plan_layers(
        manifest.layers.model_dump() if manifest.layers else {},
        base,
        out_dir,
        manifest_path,
        settings.palette is not None,
        problems,
    )
    if layers and selected:
        for clash in clashes({**layers, "output": output}, selected[0]):
            problems.append(OutputError(f"{manifest_path}: layers: {clash}"))

    plan = ShotPlan(
        manifest_path=manifest_path,
        lineart=lineart,
        output=output,
        frames=tuple(all_frames),
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
        palette=palette,
        layers=layers,
    )
    if not problems:
        inputs = plan.input_paths()
        for kind in ["output", *plan.layers]:
            pattern = plan.layers.get(kind, plan.output)
            hit = [f for f in selected if pattern.path(f).resolve() in inputs]
            if hit:
                what, key = ("output", "output") if kind == "output" else (f"layer {kind}", f"layers.{kind}")
                problems.append(
                    OutputError(
                        f"{pattern.path(hit[0])}: {what} of frame {hit[0]} is an input file; "
                        f"change `{key}` or --out"
                    )
                )
    if not collect:
        raise_problems(problems)
    return plan


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
    if plan.palette is not None and not problems:
        for f in frames:
            fp = plan.frame(f)
            if fp.keyframe is not None:
                problems.extend(
                    InputDataError(line) for line in keyframe_problems(plan.palette, fp.keyframe, fp.lineart)
                )
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
    if not collect:
        raise_problems(problems)
        assert size is not None  # every line-art frame read (plan_shot refuses a shot without frames)
    return size


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
