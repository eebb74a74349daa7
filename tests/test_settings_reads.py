"""Freshness by declaration: every settings field is read by an engine (and then in its outputs' settings
digest) or declared as changing no pixel; a read setting that changes makes the frames stale.

The walk goes through every field of the settings models, nested sections included, so a field added to
`colorize/settings.py` fails here until its author says which engines read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from colorize_cli.app import app
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from typer.testing import CliRunner

from colorize.engines import NOT_PIXELS, WRITER_READS, engine_specs, pixel_settings, setting_paths
from colorize.settings import Settings

HOW_TO = (
    "for each, decide whether it can change a pixel of some engine's output: if it can, add its dotted path "
    "to the reads of every engine it affects (FLAT_READS / DIFFUSION_READS in colorize/engines/__init__.py, "
    "or WRITER_READS when the writer applies it to every engine's output); if it cannot, add it to "
    "NOT_PIXELS there with a comment saying why (outputs made before and after a change then count as fresh)"
)


def test_every_settings_field_is_read_by_an_engine_or_declared_as_not_changing_pixels():
    paths = setting_paths()
    assert "flat.gap_close" in paths and "diffusion.steps" in paths and "seed" in paths  # the walk nests
    read = set(WRITER_READS).union(*(spec.reads for spec in engine_specs()))
    unlisted = [p for p in paths if p not in read and p not in NOT_PIXELS]
    assert not unlisted, f"settings fields in no list: {', '.join(unlisted)}; {HOW_TO}"
    both = sorted(read & NOT_PIXELS)
    assert not both, f"settings both read by an engine and listed as not changing pixels: {both}"
    unknown = sorted((read | NOT_PIXELS) - set(paths))
    assert not unknown, f"listed settings that are no settings field (renamed or removed?): {unknown}"


def _field(path: str) -> FieldInfo:
    model: type[BaseModel] = Settings
    *sections, name = path.split(".")
    for section in sections:
        model = model.model_fields[section].annotation  # type: ignore[assignment]
    return model.model_fields[name]


def _candidates(kind: Any, current: Any) -> list[Any]:
    """Values of a field's type other than `current`, to try."""
    origin = get_origin(kind)
    if origin is Literal:
        return [v for v in get_args(kind) if v != current]
    if origin in (Union, UnionType):
        return [c for arg in get_args(kind) if arg is not type(None) for c in _candidates(arg, current)]
    if get_origin(kind) is not None and hasattr(kind, "__metadata__"):  # Annotated
        return _candidates(get_args(kind)[0], current)
    if kind is bool:
        return [not current]
    if kind is int:
        base = current if isinstance(current, int) else 0
        return [base + 1, base - 1, 1, 16]
    if kind is float:
        base = current if isinstance(current, float | int) else 0.0
        return [base * 0.5, base + 0.25, 0.5]
    if kind is str:
        return ["#00ff00", "cpu", "other"]
    return []


def _changed(path: str) -> Settings:
    """Default settings with the field at `path` set to another valid value."""
    defaults = Settings().model_dump()
    *sections, name = path.split(".")
    for value in _candidates(_field(path).annotation, _get(defaults, path)):
        data = json.loads(json.dumps(defaults))
        target = data
        for section in sections:
            target = target[section]
        target[name] = value
        try:
            return Settings.model_validate(data)
        except ValidationError:
            continue
    raise AssertionError(f"{path}: teach _candidates() a valid non-default value of this field's type")


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


def test_a_field_changes_an_engines_digest_exactly_when_the_engine_reads_it():
    for spec in engine_specs():
        base = pixel_settings(spec, Settings())
        for path in setting_paths():
            changed = pixel_settings(spec, _changed(path)) != base
            assert changed == (path in spec.reads or path in WRITER_READS), (spec.name, path)


# -- the case of issue 21: a diffusion shot with cel finish, then flat.gap_close changed ------------------


def test_diffusion_cel_finish_frames_go_stale_when_a_flat_field_it_reads_changes(shot: Path, tmp_path: Path):
    runner = CliRunner()
    model = tmp_path / "tiny"
    assert runner.invoke(app, ["model", "init-random", str(model), "--size", "tiny"]).exit_code == 0
    manifest = shot / "refs.yaml"
    data = yaml.safe_load(manifest.read_text())
    data.update(engine="diffusion", model=str(model), temporal="none", batch=1)
    data["diffusion"] = {"resolution": 64, "steps": 1, "cel_finish": True}
    manifest.write_text(yaml.safe_dump(data))
    done = runner.invoke(app, ["shot", str(shot), "--frames", "1001-1002", "--json"])
    assert done.exit_code == 0, done.output

    def status(flat: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
        manifest.write_text(yaml.safe_dump({**data, **top, **({"flat": flat} if flat else {})}))
        result = runner.invoke(app, ["status", str(shot), "--frames", "1001-1002", "--json"])
        assert result.exit_code == 0, result.output
        return {k: v["count"] for k, v in json.loads(result.stdout).items() if k in ("done", "stale")}

    assert status() == {"done": 2, "stale": 0}
    assert status(flat={"gap_close": 5}) == {"done": 0, "stale": 2}  # cel finish's regions change
    assert status(flat={"min_region": 40}) == {"done": 0, "stale": 2}
    assert status(flat={"match_threshold": 0.9}) == {"done": 2, "stale": 0}  # a flat-only field
    assert status(output_compression=9) == {"done": 2, "stale": 0}
