"""The CLI end to end: through Typer's CliRunner and through a real subprocess."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from colorize_cli.app import app
from conftest import run_cli
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()
FRAMES = list(range(1001, 1025))


def outputs(shot):
    return sorted(p.name for p in (shot / "color").glob("*.png"))


def test_shot_colors_every_frame_and_keeps_numbers(shot):
    result = runner.invoke(app, ["shot", str(shot), "--refs", str(shot / "refs.yaml")])
    assert result.exit_code == 0, result.output
    assert outputs(shot) == [f"sh001.{f}.png" for f in FRAMES]
    img = np.asarray(Image.open(shot / "color" / "sh001.1001.png"))
    assert img.shape == (256, 384, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 8  # colored, not blank
    assert "24 done, 0 skipped, 0 failed" in result.output


def test_rerun_skips_existing_and_overwrite_redoes(shot):
    assert runner.invoke(app, ["shot", str(shot)]).exit_code == 0
    first = (shot / "color" / "sh001.1010.png").stat().st_mtime_ns
    again = runner.invoke(app, ["shot", str(shot)])
    assert again.exit_code == 0 and "0 done, 24 skipped" in again.output
    assert (shot / "color" / "sh001.1010.png").stat().st_mtime_ns == first
    redo = runner.invoke(app, ["shot", str(shot), "--overwrite", "--frames", "1010"])
    assert redo.exit_code == 0 and "1 done, 0 skipped" in redo.output


def test_frames_and_out_folder(shot, tmp_path):
    out = tmp_path / "elsewhere"
    result = runner.invoke(app, ["shot", str(shot), "--frames", "1001-1009x4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["sh001.1001.png", "sh001.1005.png", "sh001.1009.png"]
    assert not (shot / "color").exists()


def test_frames_outside_sequence_is_usage_error(shot):
    result = runner.invoke(app, ["shot", str(shot), "--frames", "1-5"])
    assert result.exit_code == 2
    assert "frames 1-5 are not in lineart sequence 1001-1024" in result.output


def test_check_ok(shot):
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output and "24 frames 1001-1024, 384×256" in result.output


def test_check_warns_about_a_keyframe_whose_line_gaps_leak(shot):
    from colorize import images

    assert "leak" not in runner.invoke(app, ["check", str(shot)]).output  # the sample's lines are closed
    line_path = shot / "lineart" / "sh001.1001.png"
    line, key = images.read_rgba(line_path), images.read_rgba(shot / "keys" / "sh001.1001.png")
    # Open the lines wide (12 px) wherever the keyframe has different colors on their two sides.
    colors = key[..., :3].astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    edge = np.zeros(colors.shape, bool)
    edge[:, 4:-4] |= colors[:, :-8] != colors[:, 8:]
    ys, xs = np.nonzero(edge & (line[..., :3].min(axis=-1) < 128))
    for y, x in list(zip(ys, xs, strict=True))[:: max(1, len(ys) // 40)]:
        line[max(0, y - 6) : y + 6, max(0, x - 6) : x + 6] = 255
    images.write_image(line_path, line)
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == 0  # a warning, not a problem
    assert "warning: keyframe 1001" in result.output and "line gaps leak" in result.output


def test_check_gaps_names_the_frame_whose_lines_open(shot):
    from colorize import images

    plain = runner.invoke(app, ["check", str(shot), "--frames", "1001-1015", "--gaps"])
    assert plain.exit_code == 0 and "through a gap" not in plain.output
    # Open the hero's outline in frame 1012, halfway down the left side of her mask.
    mask = images.read_rgba(shot / "masks" / "hero" / "sh001.1012.png")[..., 0] > 127
    ys, xs = np.nonzero(mask)
    y = (ys.min() + ys.max()) // 2
    x = xs[ys == y].min()
    path = shot / "lineart" / "sh001.1012.png"
    line = images.read_rgba(path)
    line[y - 5 : y + 5, x - 5 : x + 5] = 255
    images.write_image(path, line)
    assert "through a gap" not in runner.invoke(app, ["check", str(shot), "--frames", "1001-1015"]).output
    result = runner.invoke(app, ["check", str(shot), "--frames", "1001-1015", "--gaps"])
    assert result.exit_code == 0, result.output  # a warning, not a problem
    warnings = [w for w in result.output.splitlines() if "warning:" in w]
    assert len(warnings) == 1 and "frame 1012 (sh001.1012.png)" in warnings[0], result.output
    gx, gy = (int(v.split("=")[1]) for v in warnings[0].split(" near ")[1].split(":")[0].split())
    assert abs(gx - x) <= 8 and abs(gy - y) <= 8  # where the outline is missing


def test_check_reports_one_line_per_problem(shot):
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text().replace("seed: 1234", "sed: 1234"))
    (shot / "refs" / "cat.png").unlink()
    (shot / "lineart" / "sh001.1012.png").unlink()
    small = Image.open(shot / "masks" / "hero" / "sh001.1003.png").resize((100, 50))
    small.save(shot / "masks" / "hero" / "sh001.1003.png")
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == 66  # missing inputs are the most serious class here
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert all(ln.startswith("colorize: error: ") for ln in lines), result.output
    assert len(lines) == 4, result.output
    text = result.output
    assert "refs.yaml:17: sed: unknown key" in text
    assert "refs/cat.png: reference of character 'cat' not found" in text
    assert "sh001.1012.png: frame 1012 is missing from lineart sequence" in text
    assert "sh001.1003.png: mask of 'hero' for frame 1003 is 100×50 but the shot is 384×256" in text
    assert "Traceback" not in text


def test_output_over_input_is_refused(shot):
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text().replace("output: color/", "output: lineart/"))
    before = (shot / "lineart" / "sh001.1001.png").read_bytes()
    result = runner.invoke(app, ["shot", str(shot)])
    assert result.exit_code == 73
    assert "outputs would overwrite inputs" in result.output
    assert (shot / "lineart" / "sh001.1001.png").read_bytes() == before


def _commands(group, prefix=()):
    """Every command path of the Typer app, groups included."""
    for info in group.registered_commands:
        yield (*prefix, info.name or info.callback.__name__)
    for sub in group.registered_groups:
        yield (*prefix, sub.name)
        yield from _commands(sub.typer_instance, (*prefix, sub.name))


@pytest.mark.parametrize("command", sorted(_commands(app)), ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_init_writes_a_manifest_that_checks(shot):
    (shot / "refs.yaml").unlink()
    result = runner.invoke(app, ["init", str(shot)])
    assert result.exit_code == 0, result.output
    text = (shot / "refs.yaml").read_text()
    assert "lineart: lineart/sh001.####.png" in text and "mask: masks/hero/sh001.####.png" in text
    assert runner.invoke(app, ["check", str(shot)]).exit_code == 0
    assert runner.invoke(app, ["init", str(shot)]).exit_code == 73  # never replaces without --force


def test_schema_is_json():
    result = runner.invoke(app, ["schema"])
    assert json.loads(result.output)["properties"]["lineart"]["type"] == "string"


def test_subprocess_json_events(shot):
    proc = run_cli("shot", str(shot), "--json", "--frames", "1001-1006")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "summary"
    assert kinds.count("frame_done") == 6
    done = [e for e in events if e["event"] == "frame_done"]
    assert [e["frame"] for e in done] == list(range(1001, 1007))
    assert all(e["output"].endswith(f"sh001.{e['frame']}.png") for e in done)
    assert events[-1]["done"] == 6 and events[-1]["exit_code"] == 0
    assert events[0]["settings"]["seed"] == 1234 and events[0]["engine"] == "flat"
    assert "6 done" in proc.stderr  # people read stderr; stdout stays machine-readable


def test_subprocess_bad_input_exit_code_no_traceback(shot):
    shutil.rmtree(shot / "refs")
    proc = run_cli("shot", str(shot), "--json")
    assert proc.returncode == 66
    assert "Traceback" not in proc.stderr
    err = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {e["event"] for e in err} == {"error"} and all(e["exit_code"] == 66 for e in err)
    assert not (shot / "color").exists()


def test_subprocess_usage_error_exit_2(shot):
    proc = run_cli("shot", str(shot), "--engine", "magic")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "magic" in proc.stderr


def test_check_and_shot_agree_on_frames_read_outside_the_range(shot):
    # The flat engine colors 1010 by propagation from the keyframe 1001: it reads 1001-1024.
    data = (shot / "lineart" / "sh001.1005.png").read_bytes()
    (shot / "lineart" / "sh001.1005.png").write_bytes(data[: len(data) // 2])
    check = runner.invoke(app, ["check", str(shot), "--frames", "1010-1012"])
    assert check.exit_code == 65 and "sh001.1005.png: damaged or truncated" in check.output
    run = runner.invoke(app, ["shot", str(shot), "--frames", "1010-1012"])
    assert run.exit_code == 65 and "sh001.1005.png: damaged or truncated" in run.output
    assert not (shot / "color").exists()


def test_check_says_which_other_frames_a_range_reads(shot):
    result = runner.invoke(app, ["check", str(shot), "--frames", "1010-1012"])
    assert result.exit_code == 0, result.output
    assert "3 frames 1010-1012" in result.output and "also reads 9 frames 1001-1009" in result.output


def test_status_counts_done_stale_missing(shot):
    assert runner.invoke(app, ["shot", str(shot), "--frames", "1001-1006"]).exit_code == 0
    result = runner.invoke(app, ["status", str(shot), "--frames", "1001-1010"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["done", "6", "1001-1006"] and lines[2].split() == [
        "missing",
        "4",
        "1007-1010",
    ]
    stale = runner.invoke(app, ["status", str(shot), "--frames", "1001-1010", "--preset", "flat"])
    assert "stale        6  1001-1006  (settings changed)" in stale.output
    assert not (shot / "color" / "sh001.1007.png").exists()  # status computes nothing


def test_json_error_events_one_per_problem(shot):
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text() + "colour: red\nsize: 3\n")
    proc = run_cli("shot", str(shot), "--json")
    assert proc.returncode == 65
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["error", "error"] and all("time" in e for e in events)
    assert "colour: unknown key" in events[0]["error"] and "size: unknown key" in events[1]["error"]
    assert proc.stderr.count("colorize: error: ") == 2


def test_shot_qa_folder_and_preview(shot, tmp_path):
    qa = tmp_path / "qa"
    result = runner.invoke(app, ["shot", str(shot), "--frames", "1001-1004", "--qa", str(qa)])
    assert result.exit_code == 0, result.output
    index = json.loads((qa / "qa.json").read_text())["frames"]
    assert sorted(index) == ["1001", "1002", "1003", "1004"]
    overlay = np.asarray(Image.open(qa / index["1002"]["overlay"]))
    assert overlay.shape[1] == 384 and overlay.shape[0] > 256  # the frame and its legend
    preview = runner.invoke(app, ["preview", str(shot / "color"), "--qa", str(qa), "--fps", "4"])
    assert preview.exit_code == 0, preview.output
    assert (shot / "color" / "preview.mp4").stat().st_size > 0


def test_a_command_line_the_parser_refuses_is_an_error_event_with_json(shot, monkeypatch, capsys):
    # The parser (Typer) refuses --batch 0 before the command runs; a wrapper reading --json still gets
    # its one `error` event, as for every other refusal.
    from colorize_cli.app import main

    monkeypatch.setattr("sys.argv", ["colorize", "shot", str(shot), "--batch", "0", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert exit_info.value.code == 2
    assert [(e["event"], e["exit_code"]) for e in events] == [("error", 2)]
    assert "--batch" in events[0]["error"] and err.count("colorize: error: ") == 1


def test_interrupted_before_the_run_started_is_an_error_event(shot, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C / SIGTERM while a long shot is being validated

    monkeypatch.setattr("colorize_cli.shot.validate_plan", interrupted)
    result = runner.invoke(app, ["shot", str(shot), "--json"])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 130
    assert [(e["event"], e["exit_code"]) for e in events] == [("error", 130)]
    assert "interrupted" in events[0]["error"]


@pytest.mark.parametrize("closed", [1, 2])
def test_a_run_with_stdout_or_stderr_closed_still_colors_the_frames(shot, closed):
    # `colorize shot … 2>&-` (a daemon without a terminal): Python would start with sys.stderr None and
    # the next file opened (an output frame) would take its descriptor.
    import os

    proc = run_cli("shot", str(shot), "--json", "--frames", "1001-1003", preexec_fn=lambda: os.close(closed))
    assert proc.returncode == 0, proc.stderr
    for f in (1001, 1002, 1003):
        Image.open(shot / "color" / f"sh001.{f}.png").verify()  # whole PNGs, nothing else written into them


def test_preview_refuses_a_frame_rate_of_zero(tmp_path):
    result = runner.invoke(app, ["preview", str(tmp_path), "--fps", "0"])
    assert result.exit_code == 2 and "--fps" in result.output
