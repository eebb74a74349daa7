"""Timing as animators write it: holds (missing frame numbers), timesheets (XDTS, CSV), each drawing
colored once and written to every frame that shows it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from colorize_cli.app import app
from conftest import assert_one_summary
from PIL import Image
from typer.testing import CliRunner

from colorize.errors import InputDataError, MissingInputError
from colorize.farm import plan_chunks
from colorize.shot import plan_shot
from colorize.timing import XDTS_IDENTIFIER, Timing, parse_csv, parse_xdts, read_timesheet

runner = CliRunner()


def keep_frames(shot: Path, frames: set[int]) -> None:
    """Delete the sample shot's line art, masks and keyframes of every other frame."""
    for folder in ("lineart", "masks/hero", "masks/cat", "keys"):
        for p in (shot / folder).glob("*.png"):
            if int(p.stem.split(".")[-1]) not in frames:
                p.unlink()


def set_manifest(shot: Path, **keys) -> None:
    doc = yaml.safe_load((shot / "refs.yaml").read_text())
    doc.update(keys)
    doc = {k: v for k, v in doc.items() if v is not None}
    (shot / "refs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def events_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def pixels(path: Path) -> bytes:
    return np.asarray(Image.open(path)).tobytes()


# -- the timing module ---------------------------------------------------------------------------------


def test_holds_show_the_last_drawing_before_the_gap():
    t = Timing.holds([1001, 1002, 1005], end=1007)
    assert t.frames == tuple(range(1001, 1008))
    assert [t.drawing(f) for f in t.frames] == [1001, 1002, 1002, 1002, 1005, 1005, 1005]
    assert t.drawings == (1001, 1002, 1005)
    assert [t.held_from(f) for f in t.frames] == [None, None, 1002, 1002, None, 1005, 1005]
    assert Timing.strict([1, 2, 3]).is_identity and not t.is_identity


def xdts_text(layers: dict[str, list[tuple[int, str]]], duration: int) -> str:
    """An XDTS sheet as CLIP STUDIO PAINT / OpenToonz write it: the identifier line, then JSON whose cel
    field (fieldId 0) lists, per track, only the sheet frames (from 0) where the cel changes."""
    tracks = [
        {
            "frames": [{"data": [{"id": 0, "values": [value]}], "frame": frame} for frame, value in changes],
            "trackNo": n,
        }
        for n, changes in enumerate(layers.values())
    ]
    doc = {
        "header": {"cut": "1", "scene": "1"},
        "timeTables": [
            {
                "duration": duration,
                "fields": [{"fieldId": 0, "tracks": tracks}],
                "name": "sheet",
                "timeTableHeaders": [{"fieldId": 0, "names": list(layers)}],
            }
        ],
        "version": 5,
    }
    return XDTS_IDENTIFIER + "\n" + json.dumps(doc, indent=4)


def twos_and_threes(duration: int = 48) -> tuple[list[tuple[int, str]], list[int]]:
    """A cel track on twos and threes (2, 3, 2, 3, …) with a tick mark on one held frame and a blank
    stretch at the end, and the drawing each output frame (1-based) shows."""
    changes: list[tuple[int, str]] = []
    shown: list[int] = []
    frame, drawing, step = 0, 1, 2
    while frame < duration - 4:
        changes.append((frame, str(drawing)))
        n = min(step, duration - 4 - frame)
        shown += [drawing] * n
        frame, drawing, step = frame + n, drawing + 1, 5 - step
    changes.insert(2, (changes[1][0] + 1, "SYMBOL_TICK_1"))  # a mark on a held cel: the cel goes on
    changes.append((duration - 4, "SYMBOL_NULL_CELL"))
    shown += [0] * 4  # blank
    return changes, shown


def test_xdts_follows_changes_holds_ticks_and_blanks():
    changes, shown = twos_and_threes()
    exposures, layer = parse_xdts(xdts_text({"A": changes}, 48), None, "s.xdts")
    assert layer == "A" and sorted(exposures) == list(range(1, 49))
    assert [exposures[f] or 0 for f in range(1, 49)] == shown
    # A last cel that is not empty holds to the end of the sheet.
    held, _ = parse_xdts(xdts_text({"A": [(0, "1"), (3, "2")]}, 6), None, "s.xdts")
    assert held == {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2}


def test_bad_sheets_are_one_line_each(tmp_path):
    two = xdts_text({"A": [(0, "1")], "BG": [(0, "1")]}, 4)
    with pytest.raises(InputDataError, match="2 cel layers \\(A, BG\\); pick one with `timesheet_layer`"):
        parse_xdts(two, None, "s.xdts")
    with pytest.raises(InputDataError, match="timesheet_layer 'C' is not a cel layer .*layers: A, BG"):
        parse_xdts(two, "C", "s.xdts")
    with pytest.raises(InputDataError, match="malformed XDTS JSON"):
        parse_xdts(XDTS_IDENTIFIER + '\n{"timeTables": [', None, "s.xdts")
    with pytest.raises(InputDataError, match="not an XDTS timesheet"):
        parse_xdts('{"timeTables": []}', None, "s.xdts")
    with pytest.raises(InputDataError, match="s.csv:3: frame 2 is given twice"):
        parse_csv("frame,drawing\n2,1\n2,3\n", "s.csv")
    with pytest.raises(MissingInputError, match="timesheet not found"):
        read_timesheet(tmp_path / "nope.xdts", None)
    assert parse_csv("frame,drawing\n1,1\n2,1\n3,-\n# note\n4,2\n", "s.csv") == {1: 1, 2: 1, 3: None, 4: 2}


# -- holds, end to end ----------------------------------------------------------------------------------


def test_hold_shot_writes_every_frame_from_one_result_per_drawing(shot, monkeypatch):
    keep_frames(shot, {1001, 1002, 1005})
    refused = runner.invoke(app, ["shot", str(shot)])
    assert refused.exit_code == 66
    assert "frames 1003-1004 are missing" in refused.output and "`timing: hold`" in refused.output

    set_manifest(shot, timing="hold")
    from colorize import images

    encoded = []
    encode = images.encode_frames
    monkeypatch.setattr(images, "encode_frames", lambda *a, **k: encoded.append(a) or encode(*a, **k))
    result = runner.invoke(app, ["shot", str(shot), "--json"])
    monkeypatch.undo()
    assert len(encoded) == 3  # each drawing encoded once, its bytes written to every frame that shows it
    assert result.exit_code == 0, result.output
    events = events_of(result.stdout)
    assert_one_summary(events)
    frames = [e for e in events if e["event"] == "frame_done"]
    assert sorted(e["frame"] for e in frames) == [1001, 1002, 1003, 1004, 1005]
    by_frame = {e["frame"]: e for e in frames}
    assert by_frame[1003]["held_from"] == 1002 and by_frame[1004]["held_from"] == 1002
    assert by_frame[1003]["drawing"] == 1002 and "held_from" not in by_frame[1005]
    summary = events[-1]
    assert summary["done"] == 5 and summary["drawings_colored"] == 3
    out = shot / "color"
    assert (out / "sh001.1003.png").read_bytes() == (out / "sh001.1002.png").read_bytes()
    assert (out / "sh001.1004.png").read_bytes() == (out / "sh001.1002.png").read_bytes()
    assert pixels(out / "sh001.1005.png") != pixels(out / "sh001.1002.png")

    # A rerun skips them all (the held frames' records name drawing 1002's inputs); a chunk that starts
    # inside the hold colors the held drawing once and makes the same bytes.
    again = runner.invoke(app, ["shot", str(shot), "--json"])
    assert events_of(again.stdout)[-1]["skipped"] == 5
    whole = {p.name: p.read_bytes() for p in out.glob("*.png")}
    for p in out.glob("*.png"):
        p.unlink()
    for chunk in ("1001-1002", "1003-1005"):
        part = runner.invoke(app, ["shot", str(shot), "--frames", chunk, "--json"])
        assert part.exit_code == 0, part.output
    assert events_of(part.stdout)[-1]["drawings_colored"] == 2  # 1002 (held at 1003-1004) and 1005
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == whole


def test_hold_range_timing_end_and_frames_option(shot):
    keep_frames(shot, {1001, 1002, 1005})
    set_manifest(shot, timing="hold", timing_end=1008)
    plan = plan_shot(shot / "refs.yaml", frames="1006-1008")
    assert plan.selected == (1006, 1007, 1008)
    assert plan.reads == (1001, 1002, 1005)  # the flat chain from keyframe 1001 to drawing 1005
    assert plan_shot(shot / "refs.yaml").selected == tuple(range(1001, 1009))
    set_manifest(shot, timing_end=1003)
    bad = runner.invoke(app, ["check", str(shot)])
    assert bad.exit_code == 65 and "timing_end: 1003 is before the last line-art frame 1005" in bad.output
    # --timing on the command line does the same as the manifest key.
    set_manifest(shot, timing=None, timing_end=None)
    assert runner.invoke(app, ["check", str(shot)]).exit_code == 66
    assert runner.invoke(app, ["check", str(shot), "--timing", "hold"]).exit_code == 0


def test_strict_chunk_that_never_reads_the_gap_runs(shot):
    keep_frames(shot, {1001, 1002, 1003, 1006, 1007})
    (shot / "keys" / "sh001.1001.png").unlink()  # no keyframe: each frame reads only itself
    set_manifest(shot, keyframes=None)
    assert runner.invoke(app, ["check", str(shot), "--frames", "1001-1003"]).exit_code == 0
    assert runner.invoke(app, ["check", str(shot), "--frames", "1006-1007"]).exit_code == 0
    assert runner.invoke(app, ["check", str(shot)]).exit_code == 66


def test_keyframe_on_a_held_frame_keys_its_drawing(shot):
    keep_frames(shot, {1001, 1002, 1005})
    set_manifest(shot, timing="hold")
    key = shot / "keys" / "sh001.1001.png"
    key.rename(shot / "keys" / "sh001.1004.png")  # not the drawing of 1004 (1002): check flags it later
    plan = plan_shot(shot / "refs.yaml")
    assert plan.keyframe_paths == {1002: shot / "keys" / "sh001.1004.png"}
    assert plan.keyframe_frames == {1002: 1004}
    (shot / "keys" / "sh001.1004.png").rename(shot / "keys" / "sh001.1003.png")
    shutil.copy(shot / "keys" / "sh001.1003.png", shot / "keys" / "sh001.1002.png")
    with pytest.raises(InputDataError, match="keyframes 1002 and 1003 both show drawing 1002; keep one"):
        plan_shot(shot / "refs.yaml")


def test_farm_chunks_cut_on_drawing_boundaries(shot):
    keep_frames(shot, {1001, 1004, 1007, 1009, 1012})
    set_manifest(shot, timing="hold", timing_end=1014)
    plan = plan_shot(shot / "refs.yaml")
    assert plan_chunks(plan, 4) == ["1001-1003", "1004-1006", "1007-1011", "1012-1014"]


# -- timesheets, end to end -----------------------------------------------------------------------------


def half(source: Path, dest: Path) -> None:
    image = Image.open(source)
    image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS).save(dest)


def sheet_shot(shot: Path, changes: list[tuple[int, str]], duration: int, **manifest) -> int:
    """The sample shot's first drawings as `line/A/0001.png …` (named by drawing number), an XDTS sheet
    over them and a manifest that follows it; returns the number of drawings."""
    drawings = sorted({int(v) for _, v in changes if v.isdigit()})
    (shot / "line" / "A").mkdir(parents=True)
    for d in drawings:  # at half size: cheap to color
        half(shot / "lineart" / f"sh001.{1000 + d}.png", shot / "line" / "A" / f"{d:04d}.png")
    (shot / "key").mkdir()
    half(shot / "keys" / "sh001.1001.png", shot / "key" / "0001.png")  # frame 1 shows drawing 1
    (shot / "sheet.xdts").write_text(xdts_text({"A": changes}, duration))
    doc = {
        "version": 1,
        "lineart": "line/A/####.png",
        "output": "out/c.####.png",
        "keyframes": "key/####.png",
        "timesheet": "sheet.xdts",
        "characters": {"hero": {"reference": "refs/hero.png"}, "cat": {"reference": "refs/cat.png"}},
        "background": {"reference": "refs/bg.png"},
        "seed": 7,
        **manifest,
    }
    (shot / "refs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return len(drawings)


def run_json(shot: Path, *args: str) -> list[dict]:
    result = runner.invoke(app, ["shot", str(shot), "--json", *args])
    assert result.exit_code == 0, result.output
    events = events_of(result.stdout)
    assert_one_summary(events)
    return events


def test_xdts_shot_on_twos_and_threes_colors_each_drawing_once_chunks_equal_whole(shot):
    changes, shown = twos_and_threes()
    n = sheet_shot(shot, changes, 48)
    events = run_json(shot)
    summary = events[-1]
    assert summary["done"] == 48 and summary["drawings_colored"] == n == 18
    done = {e["frame"]: e for e in events if e["event"] == "frame_done"}
    assert [done[f]["drawing"] for f in range(1, 45)] == shown[:44]
    assert all(done[f].get("blank") and done[f]["drawing"] is None for f in range(45, 49))
    out = shot / "out"
    blank = np.asarray(Image.open(out / "c.0045.png"))
    assert blank.shape[2] == 4 and not blank[..., 3].any()  # a blank cel: a transparent frame
    for f in range(2, 45):  # every frame shows its drawing's pixels: byte-identical to its first frame
        first = shown.index(shown[f - 1]) + 1
        assert pixels(out / f"c.{f:04d}.png") == pixels(out / f"c.{first:04d}.png")
    whole = {p.name: p.read_bytes() for p in out.iterdir()}
    chunks = plan_chunks(plan_shot(shot / "refs.yaml"), 24)
    starts = [int(c.split("-")[0]) for c in chunks[1:]]
    assert len(chunks) == 2 and all(shown[s - 1] != shown[s - 2] for s in starts)  # cut on a drawing change
    for p in out.iterdir():
        p.unlink()
    colored = sum(run_json(shot, "--frames", c)[-1]["drawings_colored"] for c in chunks)
    assert colored == n  # every cut on a drawing boundary: no drawing colored twice
    assert {p.name: p.read_bytes() for p in out.iterdir()} == whole


def test_bad_timesheet_shots_are_one_line(shot):
    changes, _ = twos_and_threes(12)
    sheet_shot(shot, changes, 12)
    (shot / "line" / "A" / "0003.png").unlink()
    missing = runner.invoke(app, ["check", str(shot)])
    assert missing.exit_code == 66
    assert "drawings 3 (frame 6) of timesheet sheet.xdts layer A are missing" in missing.output
    (shot / "sheet.xdts").write_text(XDTS_IDENTIFIER + "\n{ not json")
    bad = runner.invoke(app, ["check", str(shot)])
    assert bad.exit_code == 65 and "malformed XDTS JSON" in bad.output
    assert len([ln for ln in bad.output.splitlines() if ln.strip()]) == 1
    set_manifest(shot, timesheet_layer="B")
    (shot / "sheet.xdts").write_text(xdts_text({"A": changes}, 12))
    layer = runner.invoke(app, ["check", str(shot)])
    assert layer.exit_code == 65 and "timesheet_layer 'B' is not a cel layer" in layer.output
    # A CSV sheet, for pipelines with their own sheets.
    shutil.copy(shot / "line" / "A" / "0002.png", shot / "line" / "A" / "0003.png")
    (shot / "sheet.csv").write_text("frame,drawing\n1,1\n2,1\n3,2\n4,-\n5,3\n")
    set_manifest(shot, timesheet="sheet.csv", timesheet_layer=None)
    events = run_json(shot)
    # Drawing 3 is a byte copy of drawing 2 (an exact repeat, `colorize.repeats`): colored once, with 1.
    assert events[-1]["done"] == 5 and events[-1]["drawings_colored"] == 2
    done = {e["frame"]: e for e in events if e["event"] == "frame_done"}
    assert done[5]["drawing"] == 2 and done[5]["held_from"] == 3 and done[4]["blank"] is True


# -- the diffusion engine: one sample per drawing ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny"
    result = runner.invoke(app, ["model", "init-random", str(folder), "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def unet_calls():
    """The number of UNet forward calls (a global forward hook, whatever calls the UNet)."""
    import torch

    from colorize.engines.diffusion.unet import ColorizeUNet

    calls = [0]

    def hook(module, args, output):
        if isinstance(module, ColorizeUNet):
            calls[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield calls
    handle.remove()


DIFFUSION = {
    "preset": "draft",
    "batch": 1,
    "diffusion": {"steps": 1, "resolution": 64, "warp_anchor_every": 3},  # counts, not pictures: tiny
}


def test_diffusion_samples_each_drawing_once(shot, tiny_model, unet_calls, tmp_path):
    keep_frames(shot, {1001, 1004, 1007})
    set_manifest(shot, timing="hold", timing_end=1008, keyframes=None, **DIFFUSION)
    cli = ["--engine", "diffusion", "--model", str(tiny_model), "--temporal", "none"]
    events = run_json(shot, *cli, "--out", str(tmp_path / "all"))
    eight = unet_calls[0]
    assert events[-1]["done"] == 8 and events[-1]["drawings_colored"] == 3
    unet_calls[0] = 0
    run_json(shot, *cli, "--out", str(tmp_path / "one"), "--frames", "1001")
    one = unet_calls[0]
    assert one > 0 and eight == 3 * one  # 8 frames, 3 drawings: 3 samples' worth of UNet calls
    out = tmp_path / "all"
    assert pixels(out / "sh001.1002.png") == pixels(out / "sh001.1001.png")
    assert pixels(out / "sh001.1008.png") == pixels(out / "sh001.1007.png")


def test_xdts_shot_with_diffusion_samples_each_drawing_once_chunks_equal_whole(shot, tiny_model, unet_calls):
    changes, _ = twos_and_threes()
    n = sheet_shot(shot, changes, 48, **DIFFUSION)
    cli = ["--engine", "diffusion", "--model", str(tiny_model), "--temporal", "none"]
    events = run_json(shot, *cli)
    assert events[-1]["done"] == 48 and events[-1]["drawings_colored"] == n == 18
    whole_calls, unet_calls[0] = unet_calls[0], 0
    out = shot / "out"
    whole = {p.name: p.read_bytes() for p in out.iterdir()}
    for p in out.iterdir():
        p.unlink()
    chunks = plan_chunks(plan_shot(shot / "refs.yaml"), 24)
    assert len(chunks) == 2
    colored = sum(run_json(shot, *cli, "--frames", c)[-1]["drawings_colored"] for c in chunks)
    # Cut on a drawing change: each drawing sampled once in the chunks too, the same UNet work as the whole.
    assert colored == n and unet_calls[0] == whole_calls > 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == whole


def test_diffusion_warp_chain_follows_drawings_and_chunks_equal_whole(shot, tiny_model, tmp_path):
    keep_frames(shot, {1001, 1004, 1007})
    set_manifest(shot, timing="hold", timing_end=1008, **DIFFUSION)
    cli = ["--engine", "diffusion", "--model", str(tiny_model), "--temporal", "warp"]
    events = run_json(shot, *cli, "--out", str(tmp_path / "whole"))
    done = {e["frame"]: e for e in events if e["event"] == "frame_done"}
    assert done[1001]["temporal"] == "warp anchor (keyframe)"
    # The chain goes drawing to drawing: 1004 is the 2nd drawing (not the 4th frame, an anchor by frame
    # count at warp_anchor_every 3), so it warps from drawing 1001.
    assert done[1004]["temporal"] == "warp from 1001 (anchor 1001)"
    assert done[1007]["temporal"] == "warp from 1004 (anchor 1001)"
    assert done[1005]["held_from"] == 1004 and done[1005]["seconds"] == 0
    # A chunk that starts inside drawing 1004's hold: the chain is recomputed in memory, 1004 colored once.
    part = run_json(shot, *cli, "--out", str(tmp_path / "chunk"), "--frames", "1006-1008")
    assert part[-1]["drawings_colored"] == 2 and part[-1]["done"] == 3
    for p in (tmp_path / "chunk").iterdir():
        assert p.read_bytes() == (tmp_path / "whole" / p.name).read_bytes()


def copy_frame(shot: Path, source: int, dest: int) -> None:
    """Make frame `dest` an exact repeat of `source`: its line art and masks byte-identical copies."""
    for folder in ("lineart", "masks/hero", "masks/cat"):
        shutil.copy(shot / folder / f"sh001.{source}.png", shot / folder / f"sh001.{dest}.png")


def test_diffusion_strict_exact_repeats_sample_each_drawing_once(shot, tiny_model, unet_calls, tmp_path):
    # Six frames exported one file a frame; 1004 repeats 1002 and 1006 repeats 1001 byte for byte.
    keep_frames(shot, {1001, 1002, 1003, 1005})
    copy_frame(shot, 1002, 1004)
    copy_frame(shot, 1001, 1006)
    set_manifest(
        shot, keyframes=None, **{**DIFFUSION, "diffusion": {**DIFFUSION["diffusion"], "resolution": 64}}
    )
    cli = ["--engine", "diffusion", "--model", str(tiny_model), "--temporal", "none"]
    events = run_json(shot, *cli, "--out", str(tmp_path / "all"))
    six = unet_calls[0]
    assert events[-1]["done"] == 6 and events[-1]["drawings_colored"] == 4
    done = {e["frame"]: e for e in events if e["event"] == "frame_done"}
    assert done[1004]["held_from"] == 1002 and done[1004]["drawing"] == 1002 and done[1004]["seconds"] == 0
    assert done[1006]["held_from"] == 1001 and "held_from" not in done[1005]
    out = tmp_path / "all"
    # Whole files, not just pixels: a repeat's record names the drawing's inputs, as its first frame's.
    assert (out / "sh001.1004.png").read_bytes() == (out / "sh001.1002.png").read_bytes()
    assert (out / "sh001.1006.png").read_bytes() == (out / "sh001.1001.png").read_bytes()
    assert pixels(out / "sh001.1003.png") != pixels(out / "sh001.1001.png")

    # A chunk that starts on a repeat colors the drawing it repeats (once) and makes the whole run's bytes.
    unet_calls[0] = 0
    part = run_json(shot, *cli, "--out", str(tmp_path / "chunk"), "--frames", "1004-1006")
    three = unet_calls[0]
    assert part[-1]["drawings_colored"] == 3 and part[-1]["done"] == 3
    for p in (tmp_path / "chunk").iterdir():
        assert p.read_bytes() == (out / p.name).read_bytes(), p.name
    # One sample per drawing: 6 frames showing 4 drawings cost what 3 frames showing 3 do, times 4/3
    # (a sample per frame would be 6 : 3).
    assert three > 0 and 3 * six == 4 * three


def test_exact_repeats_fold_into_one_drawing_keys_included(shot):
    keep_frames(shot, set(range(1001, 1007)))
    copy_frame(shot, 1001, 1003)  # a repeat, unkeyed
    copy_frame(shot, 1002, 1005)  # a repeat of 1002 ...
    shutil.copy(shot / "keys" / "sh001.1001.png", shot / "keys" / "sh001.1005.png")  # ... keyed on the copy
    plan = plan_shot(shot / "refs.yaml")
    assert plan.frames == (1001, 1002, 1004, 1006)
    assert [plan.drawing(f) for f in plan.selected] == [1001, 1002, 1001, 1004, 1002, 1006]
    # A key on one copy is the drawing's key (as a key on a held frame); 1001's own key stays its own.
    assert plan.keyframe_paths[1002].name == "sh001.1005.png" and plan.keyframe_frames[1002] == 1005
    assert plan.keyframe_paths[1001].name == "sh001.1001.png"
    # The same key on two copies is one key; different keys keep the copies apart.
    shutil.copy(shot / "keys" / "sh001.1001.png", shot / "keys" / "sh001.1003.png")
    assert plan_shot(shot / "refs.yaml").drawing(1003) == 1001
    Image.new("RGBA", Image.open(shot / "keys" / "sh001.1001.png").size, (9, 9, 9, 255)).save(
        shot / "keys" / "sh001.1003.png"
    )
    apart = plan_shot(shot / "refs.yaml", problems=[])
    assert apart.drawing(1003) == 1003 and apart.frames == (1001, 1002, 1003, 1004, 1006)
    # A mask that differs makes another drawing, whatever the line art.
    (shot / "keys" / "sh001.1003.png").unlink()
    Image.new("L", Image.open(shot / "masks" / "hero" / "sh001.1001.png").size, 0).save(
        shot / "masks" / "hero" / "sh001.1003.png"
    )
    assert plan_shot(shot / "refs.yaml").drawing(1003) == 1003


# -- drawings and their keys ---------------------------------------------------------------------------


def test_a_keyframe_under_the_wrong_number_is_refused_naming_its_frame(shot):
    assert runner.invoke(app, ["check", str(shot)]).exit_code == 0  # the sample's key shows its drawing
    (shot / "keys" / "sh001.1001.png").rename(shot / "keys" / "sh001.1005.png")
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == 65
    assert "keyframe 1005 does not show the drawing of frame 1005" in result.output
    assert "it matches frame 1001" in result.output
    assert runner.invoke(app, ["shot", str(shot)]).exit_code == 65  # refused before the run too


def test_real_keyframes_match_their_drawings(shared):
    from colorize import images
    from colorize.keymatch import MATCHES, matching_drawing

    girl = shared / "realdata" / "laughing_girl"
    lines = {f: images.read_rgba(girl / "line" / f"{f:04d}.png") for f in range(4)}
    own, other, _ = matching_drawing(images.read_rgba(girl / "gt" / "0000.png"), 0, (0, 1, 2, 3), lines.get)
    assert own >= MATCHES and other is None
    pbc = shared / "realdata" / "pbc0242"
    own, other, _ = matching_drawing(
        images.read_rgba(pbc / "gt.png"), 0, (0,), lambda _: images.read_rgba(pbc / "line.png")
    )
    assert own >= MATCHES and other is None


# -- init for real folders -------------------------------------------------------------------------------


def small_lineart(shot: Path, frame: int) -> Image.Image:
    image = Image.open(shot / "lineart" / f"sh001.{frame}.png")
    return image.resize((image.width // 4, image.height // 4), Image.Resampling.LANCZOS)


@pytest.mark.parametrize(
    "layout",
    ["one frame, spaces", "tga with holds", "tiff in LO", "drawing names", "xdts with two layers"],
)
def test_init_writes_what_check_passes(shot, tmp_path, layout):
    folder = tmp_path / "real"
    (folder / "refs").mkdir(parents=True)
    Image.open(shot / "refs" / "hero.png").save(folder / "refs" / "Hero Girl.png")
    Image.open(shot / "refs" / "bg.png").save(folder / "refs" / "BG.png")

    def put(rel: str, frame: int) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        small_lineart(shot, frame).save(folder / rel)

    if layout == "one frame, spaces":
        put("line art/cut 01_0001.png", 1001)
    elif layout == "tga with holds":
        for n in (1, 2, 5):
            put(f"douga/c001_{n:04d}.tga", 1000 + n)
    elif layout == "tiff in LO":
        for n in (101, 102, 103):
            put(f"LO/lo.{n}.tif", 900 + n)
    elif layout == "drawing names":
        for n in (1, 2, 4):
            put(f"sen/a{n:03d}.png", 1000 + n)
    else:
        for n in (1, 2, 3):
            put(f"line/A/{n:04d}.png", 1000 + n)
        (folder / "c001.xdts").write_text(
            xdts_text({"A": [(0, "1"), (2, "2"), (4, "3")], "B": [(0, "1")]}, 8)
        )
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    manifest = yaml.safe_load((folder / "refs.yaml").read_text())
    assert manifest["characters"] == {"Hero_Girl": {"reference": "refs/Hero Girl.png"}}
    assert manifest["background"] == {"reference": "refs/BG.png"}
    checked = runner.invoke(app, ["check", str(folder)])
    assert checked.exit_code == 0, (manifest, checked.output)
    if layout == "tga with holds":
        # TGA line art: TGA output (colorize writes 32-bit straight-alpha TGA)
        assert manifest["timing"] == "hold" and manifest["output"] == "color/c001_####.tga"
    if layout == "xdts with two layers":
        assert (manifest["timesheet"], manifest["timesheet_layer"]) == ("c001.xdts", "A")
        assert "8 frames" in checked.output


def test_keymatch_looks_at_the_nearest_drawings_first_within_its_search():
    from colorize.keymatch import SEARCH, _nearest

    assert list(_nearest((1, 2, 3, 4, 5), 3)) == [2, 4, 1, 5]
    assert list(_nearest((10, 20, 30), 10)) == [20, 30]
    many = tuple(range(0, 4 * SEARCH * 10, 10))
    near = list(_nearest(many, many[SEARCH]))  # every drawing before, SEARCH after, nearest first
    assert (
        len(near) == 2 * SEARCH
        and near[:2] == [many[SEARCH - 1], many[SEARCH + 1]]
        and near[-1] == many[2 * SEARCH]
    )


def test_repeat_folding_reads_only_files_that_may_be_copies(tmp_path):
    from colorize.repeats import BLOCK, Digests, fold_repeats

    rng = np.random.default_rng(0)
    body = rng.integers(0, 256, 64 * BLOCK, np.uint8).tobytes()
    other = bytearray(body)
    other[3 * BLOCK + 7] ^= 1  # same size, one byte apart: the sampled blocks miss it, the digest does not
    files = {1: body, 2: bytes(other), 3: body, 4: body[:-1], 5: bytes(reversed(body))}
    paths = {}
    for d, data in files.items():
        paths[d] = tmp_path / f"{d}.tga"
        paths[d].write_bytes(data)
    digests = Digests()
    timing = fold_repeats(Timing.strict(files), paths, [], {}, digests)
    assert [timing.drawing(f) for f in timing.frames] == [1, 2, 1, 4, 5]
    # 4 (another size) and 5 (other blocks) were never read whole.
    assert set(digests.known()) == {paths[1], paths[2], paths[3]}


def test_shown_before_names_the_drawing_a_new_one_follows_in_time():
    # A B A C with A folded: C comes after A on screen (the flat engine carries colours from there), not
    # after B; a blank frame in between is skipped; a drawing's later exposures add nothing.
    timing = Timing("strict", {1: 1, 2: 2, 3: 1, 4: None, 5: 5, 6: 2})
    assert timing.shown_before == {2: 1, 5: 1}
