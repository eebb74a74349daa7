"""The shot plan's refusals (colorize/shot.py): what a run would get wrong is refused before it starts."""

from __future__ import annotations

import pytest
from colorize_cli.app import app
from typer.testing import CliRunner

from colorize.errors import ExitCode, ManifestError, MissingInputError, UsageError
from colorize.shot import plan_shot

runner = CliRunner()


def edit(shot, old: str, new: str) -> None:
    manifest = shot / "refs.yaml"
    text = manifest.read_text()
    assert old in text, old
    manifest.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("frames", ["", "  "])
def test_an_empty_frame_range_selects_nothing_not_the_whole_shot(shot, frames):
    # A farm template whose range variable came out empty (`--frames "$RANGE"`) must not color every frame.
    with pytest.raises(UsageError, match="the range selects no frame"):
        plan_shot(shot / "refs.yaml", frames=frames)


def test_a_huge_frame_range_says_too_many_frames(shot):
    with pytest.raises(UsageError, match="too many frames"):
        plan_shot(shot / "refs.yaml", frames="1-999999999999")


@pytest.mark.parametrize(
    ("old", "new", "path", "what"),
    [
        ("reference: refs/hero.png", "reference: refs", "refs", "reference of character 'hero'"),
        ("reference: refs/bg.png", "reference: masks", "masks", "background reference"),
        ("mask: masks/cat/sh001.####.png", "mask: masks/cat", "masks/cat", "mask of character 'cat'"),
    ],
)
def test_a_folder_where_an_image_is_named_is_one_line(shot, old, new, path, what):
    edit(shot, old, new)
    result = runner.invoke(app, ["check", str(shot)])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == ExitCode.NO_INPUT, result.output
    assert lines == [f"colorize: error: {shot / path}: {what} is a folder, not an image file"]


def test_a_folder_named_like_a_frame_is_named(shot):
    frame = shot / "lineart" / "sh001.1005.png"
    frame.unlink()
    frame.mkdir()
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == ExitCode.NO_INPUT, result.output
    assert result.output.strip() == f"colorize: error: {frame}: a folder, not an image file"


@pytest.mark.parametrize(
    ("output", "wrong"), [("color/sh001.####.exr", "not .exr"), ("color/sh001.####", "without an extension")]
)
def test_an_output_type_colorize_cannot_write_is_refused_before_the_run(shot, output, wrong):
    edit(shot, "output: color/sh001.####.png", f"output: {output}")
    with pytest.raises(ManifestError, match=f"output: '{output}': colorize writes .png.*{wrong}"):
        plan_shot(shot / "refs.yaml")
    result = runner.invoke(app, ["shot", str(shot), "--frames", "1001-1002"])
    assert result.exit_code == ExitCode.DATA, result.output
    assert not (shot / "color").exists()


def test_output_type_is_case_insensitive(shot):
    edit(shot, "output: color/sh001.####.png", "output: color/sh001.####.TIF")
    assert plan_shot(shot / "refs.yaml").output.path(1001).name == "sh001.1001.TIF"


def test_refs_pointing_at_a_folder_says_so(shot):
    with pytest.raises(MissingInputError, match="a folder, not a manifest file"):
        plan_shot(shot / "refs")


def test_a_hole_in_the_sequence_is_one_line_however_long(shot):
    for f in (1005, 1010, 1011, 1012):
        (shot / "lineart" / f"sh001.{f}.png").unlink()
    result = runner.invoke(app, ["check", str(shot)])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == ExitCode.NO_INPUT
    seq = "1001-1004,1006-1009,1013-1024"
    hint = " (`timing: hold` treats gaps as holds)"
    assert lines == [
        f"colorize: error: {shot}/lineart/sh001.1005.png: frame 1005 is missing from lineart sequence {seq}{hint}",
        f"colorize: error: {shot}/lineart/sh001.1010.png: frames 1010-1012 are missing from lineart sequence "
        f"{seq}{hint}",
    ]
