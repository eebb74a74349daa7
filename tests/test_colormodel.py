"""The colour model: palette files, the off-model keyframe check, snapping, `palette extract`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from colorize_cli.app import app
from conftest import SAMPLE
from typer.testing import CliRunner

from colorize import images
from colorize.colormodel import (
    SLIP,
    TRANSPARENT_ID,
    UNASSIGNED_ID,
    interior,
    load_palette,
    off_model,
)
from colorize.errors import ManifestError, MissingInputError

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = """version: 1
colors:
  - {id: 1, name: skin, color: "#f2d0b5"}
  - {id: 7, name: skin shadow, color: "#d9a88c"}
  - {id: 3, name: glass, color: "#a0c8ff80"}
"""


def test_a_palette_loads_with_ids_names_and_straight_alpha(tmp_path):
    palette = load_palette(write(tmp_path / "p.yaml", GOOD))
    assert palette.ids.tolist() == [1, 7, 3]
    assert palette.names == ("skin", "skin shadow", "glass")
    assert palette.rgba.tolist() == [[242, 208, 181, 255], [217, 168, 140, 255], [160, 200, 255, 128]]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (GOOD.replace("id: 7", "id: 1"), 4, "colors.1.id", "also colors.0"),
        (GOOD.replace("glass", "skin"), 5, "colors.2.name", "also colors.0"),
        (GOOD.replace("#a0c8ff80", "#f2d0b5"), 5, "colors.2.color", "also colors.0"),
        (GOOD.replace("id: 7", "id: 0"), 4, "colors.1.id", "greater than or equal to 1"),
        (GOOD.replace("#d9a88c", "d9a88c"), 4, "colors.1.color", "should match"),
        (GOOD.replace("version: 1", "version: 2"), 1, "version", "expected 1"),
        (GOOD + "extra: 1\n", 6, "extra", "unknown key"),
    ],
)
def test_a_bad_palette_is_one_line_naming_file_line_and_key(tmp_path, text, line, key, words):
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_palette(path)
    problem = caught.value.problems[0]
    assert problem.startswith(f"{path}:{line}: {key}: "), problem
    assert words in problem and "\n" not in problem


def test_a_missing_palette_is_a_missing_input(tmp_path):
    with pytest.raises(MissingInputError, match="palette not found"):
        load_palette(tmp_path / "nope.yaml")


def test_index_snap_and_slips(tmp_path):
    palette = load_palette(write(tmp_path / "p.yaml", GOOD))
    image = np.zeros((2, 3, 4), np.uint8)
    image[0, 0] = [242, 208, 181, 255]  # skin
    image[0, 1] = [217, 168, 140, 255]  # skin shadow
    image[0, 2] = [240, 207, 183, 255]  # a slip of skin (within SLIP)
    image[1, 0] = [10, 200, 10, 255]  # not in the palette
    image[1, 1] = [99, 99, 99, 0]  # transparent
    image[1, 2] = [160, 200, 255, 128]  # glass
    index = palette.index(image)
    assert index.tolist() == [[1, 7, UNASSIGNED_ID], [UNASSIGNED_ID, TRANSPARENT_ID, 3]]
    assert palette.slips(image.reshape(-1, 4)).tolist() == [0, 1, 0, -1, -1, 2]
    snapped = palette.snap(image)
    assert palette.index(snapped)[0].tolist() == [1, 7, 1]
    assert snapped[1, 1].tolist() == [0, 0, 0, 0]
    assert max(abs(int(a) - int(b)) for a, b in zip(image[0, 2], image[0, 0], strict=True)) <= SLIP


def test_interior_leaves_out_edges_and_lines():
    image = np.zeros((8, 8, 4), np.uint8)
    image[..., 3] = 255
    image[:, 4:, 0] = 200  # two flat patches side by side
    counted = interior(image)
    assert counted[3, 2] and counted[3, 5] and not counted[3, 3] and not counted[3, 4] and not counted[0, 0]
    off = np.ones((8, 8), bool)
    off[:, 5] = False
    assert not interior(image, off)[3, 5]


def test_off_model_names_the_colour_place_and_nearest(tmp_path):
    palette = load_palette(write(tmp_path / "p.yaml", GOOD))
    image = np.zeros((10, 12, 4), np.uint8)
    image[...] = [242, 208, 181, 255]
    image[2:7, 3:9] = [200, 160, 140, 255]
    problems = off_model(palette, image, interior(image), "keys/k.0001.png")
    assert len(problems) == 1
    line = problems[0]
    assert line.startswith("keys/k.0001.png: colour #c8a08c is not in palette p.yaml")
    assert "x 4-7 y 3-5" in line and 'nearest: 7 "skin shadow" #d9a88c' in line


def sample_shot(tmp_path: Path) -> Path:
    shot = tmp_path / "shot"
    shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color"))
    return shot


def test_extract_then_check_passes_and_a_dropped_colour_fails_with_65(tmp_path, monkeypatch):
    shot = sample_shot(tmp_path)
    palette = shot / "show.palette.yaml"
    result = runner.invoke(
        app, ["palette", "extract", str(shot / "keys" / "sh001.1001.png"), "--out", str(palette)]
    )
    assert result.exit_code == 0, result.output
    text = palette.read_text()
    assert "{id: 1, name: color 1," in text
    again = runner.invoke(
        app, ["palette", "extract", str(shot / "keys" / "sh001.1001.png"), "--out", str(palette)]
    )
    assert again.exit_code == 73 and palette.read_text() == text  # a painter's names are never replaced
    with (shot / "refs.yaml").open("a") as f:
        f.write("palette: show.palette.yaml\n")
    from colorize import validate

    reads: list[str] = []
    read_rgba = validate.read_rgba
    monkeypatch.setattr(validate, "read_rgba", lambda p: reads.append(p.name) or read_rgba(p))
    ok = runner.invoke(app, ["check", str(shot), "--frames", "1001"])
    assert ok.exit_code == 0, ok.output
    # The key and its drawing are read once for both checks (on model, and its line work vs its drawing).
    assert sorted(reads) == ["sh001.1001.png", "sh001.1001.png"]
    monkeypatch.undo()
    lines = text.splitlines()
    dropped = next(line for line in lines if "{id: 1," in line)
    color = dropped.split('color: "')[1].rstrip('"}')
    palette.write_text("\n".join(line for line in lines if line != dropped) + "\n")
    bad = runner.invoke(app, ["check", str(shot), "--frames", "1001"])
    assert bad.exit_code == 65
    errors = [line for line in bad.output.splitlines() if "not in palette" in line]
    assert len(errors) == 1 and color in errors[0] and "sh001.1001.png" in errors[0], bad.output
    run = runner.invoke(app, ["shot", str(shot), "--frames", "1001", "--progress", "none"])
    assert run.exit_code == 65 and color in run.output


def test_real_keyframes_pass_with_their_own_palette(shared, tmp_path):
    from colorize.colormodel import Palette, extract, keyframe_problems, parse_color

    for key, line in [
        ("realdata/pbc0242/gt.png", "realdata/pbc0242/line.png"),
        ("realdata/laughing_girl/gt/0000.png", "realdata/laughing_girl/line/0000.png"),
    ]:
        colors = extract([images.read_rgba(shared / key)])
        palette = Palette(
            tmp_path / "p.yaml",
            np.arange(1, len(colors) + 1, dtype=np.uint16),
            tuple(str(i) for i in range(len(colors))),
            np.array([rgba for rgba, _ in colors], np.uint8),
        )
        keyframe, lineart = images.read_rgba(shared / key), images.read_rgba(shared / line)
        assert keyframe_problems(palette, keyframe, lineart, key) == []
        fewer = Palette(palette.path, palette.ids[1:], palette.names[1:], palette.rgba[1:])
        problems = keyframe_problems(fewer, keyframe, lineart, key)
        assert len(problems) == 1 and colors[0][0] == parse_color(problems[0].split("colour ")[1].split()[0])


def test_cel_finish_snaps_regions_to_the_palette_and_keeps_the_keyframes_transparency(tmp_path):
    from colorize.engines.diffusion.cel import CelRegions, cel_apply, keep_alpha
    from colorize.regions.lines import empty

    palette = load_palette(write(tmp_path / "p.yaml", GOOD))
    labels = np.zeros((4, 6), np.int64)
    labels[:, :3], labels[:, 4:] = 1, 2  # column 3: line
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, :3] = [236, 200, 180]  # near skin
    image[:, 4:] = [210, 170, 135]  # near skin shadow
    image[:, 3] = [5, 5, 5]
    cel = CelRegions(labels, labels, empty(labels.shape), labels == 0)  # no trace lines
    out = cel_apply(image, cel, palette)
    assert out[0, 0].tolist() == [242, 208, 181] and out[0, 5].tolist() == [217, 168, 140]
    assert out[0, 3].tolist() == [5, 5, 5]  # line pixels keep the result's colour
    lineart = np.zeros((4, 6, 4), np.uint8)
    lineart[:, 3, 3] = 255  # lines in alpha
    key = np.zeros((4, 6, 4), np.uint8)
    key[:, :3] = [242, 208, 181, 255]  # region 2 transparent in the keyframe
    rgba = keep_alpha(out, lineart, key, labels)
    assert rgba[..., 3].tolist()[0] == [255, 255, 255, 255, 0, 0]
    assert keep_alpha(out, np.full((4, 6, 4), 255, np.uint8), None, labels) is out  # opaque shot: RGB


def test_a_preset_names_the_palette_relative_to_itself(tmp_path):
    from colorize.shot import plan_shot

    shot = sample_shot(tmp_path)
    (tmp_path / "show").mkdir()
    write(tmp_path / "show" / "show.palette.yaml", GOOD)
    write(tmp_path / "show" / "show.yaml", "palette: show.palette.yaml\n")
    with (shot / "refs.yaml").open("a") as f:
        f.write("layers: {index: idx/i.####.png}\n")
    text = (shot / "refs.yaml").read_text().replace("preset: default", "preset: ../show/show.yaml")
    (shot / "refs.yaml").write_text(text)
    plan = plan_shot(shot / "refs.yaml")
    assert plan.palette is not None and plan.palette.names == ("skin", "skin shadow", "glass")
    assert plan.shot_inputs()["palette"].resolve() == (tmp_path / "show" / "show.palette.yaml").resolve()
    assert list(plan.outputs_of(1001)) == ["index", "output"]
