"""Freshness: each output records what it was made from; a rerun recomputes exactly the stale frames.

The flat engine runs for real (the sample shot, 384×256); the diffusion engine's dependency rule and model
fingerprint are checked with a fake diffusion engine (the real one needs no weights to say what it reads).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import fake_engines
import numpy as np
import pytest
from colorize_cli.app import app
from conftest import SAMPLE, assert_one_summary
from PIL import Image
from typer.testing import CliRunner

from colorize import images
from colorize.engines import engine_spec, register_engine
from colorize.engines.diffusion.planning import depends_on as diffusion_depends_on
from colorize.engines.flat import depends_on as flat_depends_on
from colorize.sequences import parse_frame_range
from colorize.settings import Settings

runner = CliRunner()
ALL = list(range(1001, 1025))


def shot_run(shot: Path, *args: str) -> list[dict]:
    """`colorize shot … --json` in-process; its events."""
    result = runner.invoke(app, ["shot", str(shot), "--json", "--progress", "none", *args])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert_one_summary(events)
    assert result.exit_code == 0, result.output
    return events


def frames_of(events: list[dict], kind: str) -> list[int]:
    return [e["frame"] for e in events if e["event"] == kind]


def status(shot: Path, *args: str) -> dict[str, list[int]]:
    result = runner.invoke(app, ["status", str(shot), "--json", *args])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    return {
        k: parse_frame_range(doc[k]["frames"]) if doc[k]["count"] else []
        for k in ("done", "stale", "missing")
    }


def repaint(path: Path) -> None:
    rgb = np.asarray(Image.open(path).convert("RGB")).copy()
    rgb[100:140, 150:200] = (12, 200, 40)
    Image.fromarray(rgb).save(path)


@pytest.fixture(scope="module")
def keyed_once(tmp_path_factory) -> Path:
    shot = tmp_path_factory.mktemp("keyed") / "shot001"
    shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color"))
    shot_run(shot, "--frames", "1008,1016")
    for f in (1008, 1016):
        shutil.copy(shot / "color" / f"sh001.{f}.png", shot / "keys" / f"sh001.{f}.png")
    events = shot_run(shot)
    assert frames_of(events, "frame_done") == ALL  # the two new keyframes make every frame stale
    return shot


@pytest.fixture
def keyed(keyed_once: Path, tmp_path: Path) -> Path:
    """The sample shot with keyframes 1001, 1008 and 1016 (colored by the flat engine), colored whole."""
    return Path(shutil.copytree(keyed_once, tmp_path / "shot001"))


def test_flat_dependency_rule():
    frames, keys = ALL, [1001, 1008, 1016]
    assert flat_depends_on(1005, frames, keys, Settings()) == tuple(range(1001, 1009))
    assert flat_depends_on(1008, frames, keys, Settings()) == (1008,)  # a keyframe: itself only
    # No keyframe after 1020: only the forward chain 1016 -> 1020; none before 1003: 1003 <- 1010.
    assert flat_depends_on(1020, frames, keys, Settings()) == tuple(range(1016, 1021))
    assert flat_depends_on(1003, frames, [1010], Settings()) == tuple(range(1003, 1011))
    assert flat_depends_on(1003, frames, [], Settings()) == (1003,)  # no keyframe: the frame alone


def test_a_repainted_keyframe_makes_exactly_its_chains_stale(keyed):
    repaint(keyed / "keys" / "sh001.1016.png")
    state = status(keyed)
    assert state["stale"] == list(range(1009, 1025)) and state["done"] == list(range(1001, 1009))
    events = shot_run(keyed)
    assert frames_of(events, "frame_done") == list(range(1009, 1025))
    assert frames_of(events, "frame_skipped") == list(range(1001, 1009))
    assert all(e["reason"] == "stale: inputs changed" for e in events if e["event"] == "frame_done")
    assert all(e["reason"] == "fresh" for e in events if e["event"] == "frame_skipped")
    assert status(keyed)["done"] == ALL


def test_a_changed_lineart_frame_makes_the_frames_that_read_it_stale(keyed):
    repaint(keyed / "lineart" / "sh001.1003.png")
    assert status(keyed)["stale"] == list(range(1002, 1008))  # not the keyframes 1001 and 1008


def test_a_changed_reference_makes_every_frame_stale(keyed):
    repaint(keyed / "refs" / "cat.png")
    assert status(keyed)["stale"] == ALL
    assert frames_of(shot_run(keyed, "--frames", "1001-1004"), "frame_done") == [1001, 1002, 1003, 1004]


def test_settings_make_frames_stale_only_if_they_change_pixels(keyed):
    assert status(keyed, "--seed", "99")["done"] == ALL  # the flat engine draws nothing at random
    assert status(keyed, "--batch", "7", "--output-compression", "9", "--max-unresolved", "3")["done"] == ALL
    manifest = keyed / "refs.yaml"
    manifest.write_text(manifest.read_text() + "flat:\n  gap_close: 3\n")
    assert status(keyed)["stale"] == ALL


def test_touching_or_moving_a_shot_keeps_it_fresh(keyed, tmp_path):
    for path in (keyed / "keys").iterdir():
        path.touch()
    moved = tmp_path / "elsewhere" / "shot"
    shutil.copytree(keyed, moved)
    assert status(moved)["done"] == ALL


def test_outputs_without_a_record_or_truncated_are_stale(keyed):
    plain = keyed / "color" / "sh001.1002.png"
    Image.open(plain).save(plain)  # same pixels, written by another tool: no provenance record
    cut = keyed / "color" / "sh001.1003.png"
    cut.write_bytes(cut.read_bytes()[:-30])
    (keyed / "color" / "sh001.1004.png").unlink()
    result = runner.invoke(app, ["status", str(keyed)])
    assert "no provenance record" in result.stdout
    state = status(keyed)
    assert state["stale"] == [1002, 1003] and state["missing"] == [1004]
    assert frames_of(shot_run(keyed), "frame_done") == [1002, 1003, 1004]


def test_overwrite_recomputes_everything(keyed):
    events = shot_run(keyed, "--frames", "1005-1007", "--overwrite")
    assert [e["reason"] for e in events if e["event"] == "frame_done"] == ["overwrite"] * 3


def test_the_record_travels_in_the_png(keyed):
    path = keyed / "color" / "sh001.1010.png"
    record = json.loads(Image.open(path).text["colorize"])  # any PNG reader sees it
    assert record["engine"] == "flat" and record["schema"] == 1 and record["unresolved"] >= 0
    assert images.read_metadata(path) == Image.open(path).text["colorize"]


# -- the diffusion engine's rule, with a fake engine in its place ----------------------------------------


@pytest.fixture
def fake_diffusion(tmp_path):
    model = fake_engines.fake_model_folder(tmp_path / "model")
    spec = engine_spec("diffusion")
    register_engine(dataclasses.replace(spec, create=fake_engines.Fake))
    manifest_extra = (
        f"engine: diffusion\nmodel: {model}\ntemporal: warp\ndiffusion:\n  warp_anchor_every: 4\n"
    )
    yield model, manifest_extra
    register_engine(spec)


def test_diffusion_warp_chains_and_seed_and_model(shot, fake_diffusion):
    model, extra = fake_diffusion
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text().replace("engine: auto\n", "") + extra)
    # Warp chains are colored side by side, so the events come in that order, not frame order.
    assert sorted(frames_of(shot_run(shot), "frame_done")) == ALL
    assert status(shot)["done"] == ALL
    assert status(shot, "--seed", "7")["stale"] == ALL
    # Anchors every 4 frames from 1001 (and at the keyframe 1001): 1006 is read by 1006, 1007, 1008.
    repaint(shot / "lineart" / "sh001.1006.png")
    assert status(shot)["stale"] == [1006, 1007, 1008]
    assert status(shot, "--temporal", "none")["stale"] == ALL  # a setting that changes every frame
    settings = Settings(temporal="none")
    assert diffusion_depends_on(1007, ALL, [1001], settings) == (1007,)
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "retrained": True}))
    assert status(shot)["stale"] == ALL
