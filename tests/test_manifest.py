from __future__ import annotations

import json
from pathlib import Path

import pytest

from colorize.errors import ManifestError, MissingInputError, UsageError
from colorize.manifest import load_manifest, manifest_schema
from colorize.shot import plan_shot

GOOD = """\
version: 1
lineart: lineart/sh001.####.png
characters:
  hero:
    reference: refs/hero.png
seed: 7
flat:
  gap_close: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "refs.yaml"
    path.write_text(text)
    return path


def test_valid_manifest_loads(tmp_path):
    m = load_manifest(write(tmp_path, GOOD))
    assert m.version == 1
    assert m.characters["hero"].reference == "refs/hero.png"
    assert m.as_layer() == {"seed": 7, "flat": {"gap_close": 3}}


def test_unknown_key_names_file_line_and_key_path(tmp_path):
    path = write(tmp_path, GOOD.replace("    reference:", "    refrence:"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    lines = info.value.problems
    assert f"{path}:5: characters.hero.refrence: unknown key" in lines
    assert any("characters.hero.reference: required key is missing" in p for p in lines)


def test_unknown_nested_setting_is_rejected(tmp_path):
    path = write(tmp_path, GOOD.replace("gap_close: 3", "gap_clos: 3"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == [f"{path}:8: flat.gap_clos: unknown key"]


def test_wrong_type_and_bad_choice(tmp_path):
    path = write(tmp_path, GOOD + "batch: many\nengine: magic\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    text = "\n".join(info.value.problems)
    assert f"{path}:9: batch:" in text and "'many'" in text
    assert f"{path}:10: engine: got 'magic', expected 'auto', 'flat', 'diffusion' or 'hybrid'" in text


def test_a_bad_boolean_or_auto_choice_names_the_yaml_spellings(tmp_path):
    path = write(tmp_path, GOOD.replace("gap_close: 3", "gap_close: 3\n  close_breaks: maybe"))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == [
        f"{path}:9: flat.close_breaks: got 'maybe', expected true, false or 'auto'"
    ]


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "version: 1\nlineart: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems[0].startswith(f"{path}:3:")
    assert "YAML syntax error" in info.value.problems[0]


def test_missing_manifest_is_missing_input(tmp_path):
    with pytest.raises(MissingInputError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_not_a_mapping_and_empty(tmp_path):
    with pytest.raises(ManifestError, match="must be a mapping"):
        load_manifest(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ManifestError, match="empty"):
        load_manifest(write(tmp_path, "# nothing\n"))


def test_lenient_load_collects_and_drops_wrong_optional_keys(tmp_path):
    path = write(tmp_path, GOOD + "colour: red\n")
    problems: list[str] = []
    m = load_manifest(path, problems)
    assert problems == [f"{path}:9: colour: unknown key"]
    assert m.seed == 7


def test_schema_lists_keys_and_forbids_extras():
    schema = manifest_schema()
    assert {"version", "lineart", "output", "keyframes", "characters", "background", "preset"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
    json.dumps(schema)


def test_settings_layering_preset_manifest_cli(shot):
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text() + "batch: 3\nflat:\n  gap_close: 5\n")
    plan = plan_shot(manifest, preset="draft", overrides={"seed": 99})
    s = plan.settings
    assert s.diffusion.steps == 8  # from the draft preset
    assert s.batch == 3 and s.flat.gap_close == 5  # manifest over preset
    assert s.seed == 99  # command line over manifest
    assert plan.sources["seed"] == "command line" and plan.sources["batch"] == "manifest"


def test_unknown_preset_names_the_manifest_key(shot):
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text().replace("preset: default", "preset: fnal"))
    with pytest.raises(ManifestError) as info:
        plan_shot(manifest)
    line = manifest.read_text().splitlines().index("preset: fnal") + 1
    assert f"refs.yaml:{line}: preset: unknown preset 'fnal' (known: default, draft, final, flat)" in str(
        info.value
    )
    with pytest.raises(UsageError, match="--preset 'nope'"):
        plan_shot(shot / "refs.yaml", preset="nope")


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    path = write(tmp_path, GOOD + "seed: 8\nflat:\n  gap_close: 4\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == [
        f"{path}:9: seed: key given twice (first on line 6); keep one",
        f"{path}:10: flat: key given twice (first on line 7); keep one",
    ]
    nested = write(tmp_path, GOOD.replace("  gap_close: 3\n", "  gap_close: 3\n  gap_close: 5\n"))
    with pytest.raises(
        ManifestError, match=r"refs.yaml:9: flat.gap_close: key given twice \(first on line 8\)"
    ):
        load_manifest(nested, problems=[])  # also when `check` collects problems


def test_run_settings_in_the_manifest(tmp_path):
    m = load_manifest(write(tmp_path, GOOD + "max_unresolved: 5\noutput_compression: 6\n"))
    assert m.as_layer()["max_unresolved"] == 5 and m.as_layer()["output_compression"] == 6
    with pytest.raises(ManifestError, match="output_compression"):
        load_manifest(write(tmp_path, GOOD + "output_compression: 12\n"))


def test_output_format_and_fill_settings(tmp_path):
    # A bare YAML `on` is a boolean to YAML 1.1: it still means "on".
    text = (
        GOOD.replace("  gap_close: 3\n", "  gap_close: 3\n  fill: texture\n")
        + "output_alpha: on\noutput_depth: 16\n"
    )
    m = load_manifest(write(tmp_path, text))
    assert m.as_layer() == {
        "seed": 7,
        "output_alpha": "on",
        "output_depth": 16,
        "flat": {"gap_close": 3, "fill": "texture"},
    }
    path = write(tmp_path, GOOD + "output_depth: 12\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert any(p.startswith(f"{path}:9: output_depth:") for p in info.value.problems)
    props = manifest_schema()["properties"]
    assert {"output_alpha", "output_depth"} <= set(props)
