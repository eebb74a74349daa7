"""The shot manifest (`refs.yaml`): pydantic models, loading with file:line errors, JSON Schema.

Paths in a manifest are relative to the manifest file. Unknown keys are errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from colorize.errors import InputDataError, ManifestError, read_text_file
from colorize.settings import (
    OUTPUT_ALPHA_HELP,
    OUTPUT_DEPTH_HELP,
    PALETTE_HELP,
    TIMING_HELP,
    DiffusionSettings,
    FlatSettings,
    KeysSettings,
    OutputAlpha,
    StrictModel,
    Timing,
    TraceLineSettings,
)

# A settings layer: every field optional, "not set" = None. Presets and manifests are layers; the CLI is
# the last one. Resolution lives in colorize.shot.


class SettingsLayer(StrictModel):
    engine: Literal["auto", "flat", "diffusion", "hybrid"] | None = Field(
        None,
        description="auto picks diffusion only when a model is configured, else flat; hybrid: key drawings "
        "painted by diffusion, the rest carried by the flat engine, in one run.",
    )
    seed: int | None = Field(None, description="Seed of every random choice; same seed, same bytes.")
    batch: int | None = Field(None, ge=1, le=256, description="Frames per engine call.")
    temporal: Literal["none", "locked", "warp"] | None = Field(
        None, description="Temporal seeding of the diffusion engine."
    )
    model: str | None = Field(None, description="Diffusion model folder (relative to this file).")
    output_compression: int | None = Field(
        None, ge=0, le=9, description="PNG compression level 0-9 of the outputs (default 1: fast)."
    )
    max_unresolved: int | None = Field(
        None, ge=0, description="Quality gate: frames with more unresolved regions fail (exit code 3)."
    )
    output_alpha: OutputAlpha | None = Field(None, description=OUTPUT_ALPHA_HELP)
    output_depth: Literal[8, 16] | None = Field(None, description=OUTPUT_DEPTH_HELP)
    timing: Timing | None = Field(None, description=TIMING_HELP)
    flat: FlatSettings | None = None
    diffusion: DiffusionSettings | None = None
    trace_lines: TraceLineSettings | None = None
    keys: KeysSettings | None = None
    palette: str | None = Field(None, description=PALETTE_HELP)

    def as_layer(self) -> dict[str, Any]:
        """The keys this layer sets, as plain data (nested sections keep only their set keys)."""
        return self.model_dump(include=set(SettingsLayer.model_fields), exclude_unset=True, exclude_none=True)


class Preset(SettingsLayer):
    """A file in presets/: named settings."""

    description: str | None = None


class CharacterEntry(StrictModel):
    reference: str = Field(description="Reference image of the character.")
    mask: str | None = Field(
        None, description="Mask sequence pattern (#, @, %04d) or one image used for every frame."
    )
    reference_mask: str | None = Field(
        None,
        description="Mask of the character in its reference image (same size; white or opaque = character). "
        "The diffusion engine whitens it to make the background reference when none is given.",
    )


class BackgroundEntry(StrictModel):
    reference: str | None = Field(None, description="Reference image of the background.")


class LayersEntry(StrictModel):
    """Files a frame writes besides its main output: frame patterns like `output` (each optional)."""

    index: str | None = Field(
        None,
        description="16-bit single-channel PNG (or TIFF): the palette id of each pixel of the paint layer, 0 "
        "where it is transparent, 65535 where a colour is not in the palette (unresolved). Needs `palette`.",
    )
    paint: str | None = Field(
        None, description="RGBA fills alone (lines painted over like flat.lines: fill; trace lines filled)."
    )
    line: str | None = Field(None, description="RGBA main lines alone in their ink, straight alpha.")


class Manifest(SettingsLayer):
    """refs.yaml, version 1."""

    version: Literal[1] = Field(description="Manifest format version. Always 1.")
    lineart: str = Field(description="Line-art frame sequence pattern, e.g. lineart/sh042.####.png.")
    output: str | None = Field(None, description="Output pattern; default color/<line-art file name>.")
    keyframes: str | None = Field(None, description="Colored keyframes: a sequence pattern.")
    characters: dict[str, CharacterEntry] = Field(default_factory=dict)
    background: BackgroundEntry | None = None
    preset: str = Field("default", description="Name of a preset in presets/ (or a path to a .yaml).")
    timing_end: int | None = Field(
        None, ge=0, description="timing: hold: the shot's last frame, when it ends on a hold."
    )
    timesheet: str | None = Field(
        None,
        description="Exposure sheet: an .xdts file or a CSV of `frame,drawing` lines. It decides the frames; "
        "`lineart` then names drawings by their sheet numbers.",
    )
    timesheet_layer: str | None = Field(
        None, description="The cel layer of the timesheet to follow, when it has several."
    )
    layers: LayersEntry | None = Field(
        None, description="Layer files written with each output frame (index, paint, line patterns)."
    )

    @field_validator("characters")
    @classmethod
    def _names(cls, value: dict[str, CharacterEntry]) -> dict[str, CharacterEntry]:
        for name in value:
            if not name or not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"character name {name!r} must be letters, digits, '-' or '_'")
        return value


def manifest_schema() -> dict[str, Any]:
    """JSON Schema of refs.yaml (for editors)."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "colorize shot manifest (refs.yaml)"
    return schema


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML; also return {key path: line number} for every mapping key and sequence item."""
    try:
        text = read_text_file(path, "manifest")
    except InputDataError as error:  # not text: reported like the manifest's other problems
        raise ManifestError([str(error)]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ManifestError([f"{where}: YAML syntax error: {error.problem or error.context}"]) from None
    except yaml.YAMLError as error:
        raise ManifestError([f"{path}: YAML error: {error}"]) from None
    lines: dict[tuple, int] = {}
    duplicates: list[str] = []

    def walk(n: yaml.Node | None, key: tuple) -> None:
        if n is None:
            return
        lines.setdefault(key, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in n.value:
                sub = (*key, k.value)
                line = k.start_mark.line + 1
                if k.value in seen:  # YAML says keys are unique; PyYAML would keep the last one silently
                    duplicates.append(
                        f"{path}:{line}: {'.'.join(str(p) for p in sub)}: key given twice (first on line "
                        f"{seen[k.value]}); keep one"
                    )
                    continue
                seen[k.value] = line
                lines[sub] = line
                walk(v, sub)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*key, i))

    walk(node, ())
    if duplicates:
        raise ManifestError(duplicates)
    return data, lines


def validation_problems(error: ValidationError, path: Path, lines: dict[tuple, int]) -> list[str]:
    """One `file:line: key.path: message` line per pydantic error."""
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        where = f"{path}:{line}" if line else str(path)
        key = ".".join(str(p) for p in loc) or "(top level)"
        problems.append(f"{where}: {key}: {_message(err)}")
    return problems


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        expected = re.sub(r"\b(True|False)\b", lambda m: m.group(1).lower(), expected)  # as YAML spells them
        return f"got {err.get('input')!r}, expected {expected}"
    msg = re.sub(r" or instance of \w+", "", err["msg"])  # pydantic class names mean nothing to a user
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def load_manifest(path: Path, problems: list[str] | None = None) -> Manifest:
    """Load and validate refs.yaml; raise ManifestError listing every problem.

    With a `problems` list, keys that are merely wrong (unknown, or a bad value of an optional key) are
    reported there and dropped, so the caller can go on checking the rest of the shot in the same pass.
    """
    data, lines = load_yaml_with_lines(path)
    if data is None:
        raise ManifestError([f"{path}: the manifest is empty"])
    if not isinstance(data, dict):
        raise ManifestError([f"{path}:1: the manifest must be a mapping of keys (got {type(data).__name__})"])
    found: list[str] = []
    for _ in range(8):
        try:
            manifest = Manifest.model_validate(data)
        except ValidationError as error:
            found += validation_problems(error, path, lines)
            if problems is None or not _drop_optional(data, error):
                raise ManifestError(_unique(found)) from None
            continue
        if problems is not None:
            problems.extend(_unique(found))
        elif found:
            raise ManifestError(_unique(found))
        return manifest
    raise ManifestError(_unique(found))


_REQUIRED = {("version",), ("lineart",)}


def _drop_optional(data: dict, error: ValidationError) -> bool:
    """Remove the keys an error points at, unless one is required; True if all could be removed."""
    targets = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "missing" or loc[:1] in _REQUIRED or not loc:
            return False
        if len(loc) >= 3 and loc[0] == "characters" and loc[2] == "reference":
            return False
        targets.append(loc)
    for loc in targets:
        node = data
        for key in loc[:-1]:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            if isinstance(node, dict):
                node.pop(loc[-1], None)
    return True


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def load_preset(name_or_path: str, base: Path | None = None) -> Preset:
    """Load a preset by name (presets/<name>.yaml) or by path (relative to `base`)."""
    path = _preset_path(name_or_path, base)
    data, lines = load_yaml_with_lines(path)
    try:
        return Preset.model_validate(data or {})
    except ValidationError as error:
        raise ManifestError(validation_problems(error, path, lines)) from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def _presets_dir() -> Path:
    import colorize_presets

    return Path(colorize_presets.__file__).parent


def preset_path(name_or_path: str, base: Path | None = None) -> Path:
    """The file of a preset given by name (presets/<name>.yaml) or path (relative to `base`)."""
    return _preset_path(name_or_path, base)


def _preset_path(name_or_path: str, base: Path | None) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        p = Path(name_or_path)
        return p if p.is_absolute() or base is None else base / p
    path = _presets_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ManifestError(
            [f"preset: unknown preset {name_or_path!r} (known: {', '.join(preset_names()) or 'none'})"]
        )
    return path


def schema_json() -> str:
    return json.dumps(manifest_schema(), indent=2)
