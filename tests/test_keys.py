"""Choosing key drawings from the line art alone (`colorize.keys`), on generated cel drawings."""

from __future__ import annotations

import numpy as np
import pytest
from synth import make_frame

from colorize.keys import ASKED, CHANGE, FIRST, GAP, choose_keys
from colorize.settings import Settings


@pytest.fixture(scope="module")
def drawings() -> list[np.ndarray]:
    """Frames 1-4: a drawing moving a little; 5-8: a new drawing (the same one upside down, so nothing of
    it lines up with the first); 9-10: the first two drawings again (exact repeats)."""
    a = [make_frame(180, 320, shift=(3 * i, 0)).lineart for i in range(4)]
    b = [np.ascontiguousarray(np.flipud(x)) for x in a]
    return [*a, *b, a[0], a[1]]


def _choose(drawings: list[np.ndarray], **keys: object):
    frames = list(range(1, len(drawings) + 1))
    return choose_keys(frames, lambda f: drawings[f - 1], Settings(keys=keys))


def test_first_frame_and_a_new_drawing_are_keys_repeats_are_not(drawings):
    choice = _choose(drawings)
    assert choice.frames == (1, 5)
    assert [k.reason for k in choice.keys] == [FIRST, CHANGE]
    assert choice.keys[1].carried is not None and choice.keys[1].carried < 0.7
    assert "key 1" in choice.keys[1].detail
    assert choice.drawings == 8
    # The small moves are carried; the repeat of key drawing 1 at frame 9 is not a key, nor what follows it.
    assert all(choice.carried[f] >= 0.7 for f in (2, 3, 4, 6, 7, 8, 9, 10))


def test_max_gap_takes_the_first_new_drawing_and_max_count_reports_the_rest(drawings):
    gap = _choose(drawings, max_gap=2)
    assert [(k.frame, k.reason) for k in gap.keys] == [(1, FIRST), (3, GAP), (5, CHANGE), (7, GAP)]
    # Frames 9 and 10 repeat earlier drawings: never keys, however long since the last key.
    few = _choose(drawings, max_count=1)
    assert few.frames == (1,) and [k.frame for k in few.over] == [5]


def test_named_frames_are_the_keys(drawings):
    choice = choose_keys(range(1, 11), lambda f: drawings[f - 1], Settings(), explicit=[7, 3, 3])
    assert choice.frames == (3, 7) and {k.reason for k in choice.keys} == {ASKED}


def test_the_choice_reads_only_line_art_and_is_deterministic(drawings):
    assert _choose(drawings).keys == _choose(drawings).keys


# -- the keys pass and the review loop, end to end (tiny random model, 128 px working size, 2 steps) -------


SHOT = range(1001, 1017)  # the sample's first 16 frames


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """The sample shot without its keyframe (no `keyframes` in its manifest), keys painted once."""
    import shutil

    from colorize_cli.app import app
    from conftest import SAMPLE
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("keys")
    model = root / "tiny"
    assert CliRunner().invoke(app, ["model", "init-random", str(model), "--size", "tiny"]).exit_code == 0
    shot = root / "shot"
    shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color", "keys"))
    for late in range(SHOT[-1] + 1, 1025):  # a shorter shot keeps the test cheap
        for path in shot.rglob(f"sh001.{late}.png"):
            path.unlink()
    text = (shot / "refs.yaml").read_text().replace("keyframes: keys/sh001.####.png\n", "")
    tiny = "batch: 1\ndiffusion:\n  steps: 1\n  resolution: 64\n"  # the keys' choice and use, not pictures
    (shot / "refs.yaml").write_text(text + tiny)
    return shot, model


def _cli(*args: str):
    from colorize_cli.app import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, list(args))


def _events(result) -> list[dict]:
    import json

    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _clean_colors(image: np.ndarray, lineart: np.ndarray) -> set[tuple[int, ...]]:
    """The colors of an image off the lines (pixels of a line-art region no ink touches)."""
    from colorize import images
    from colorize.regions.segment import line_layers, segment_ink

    ink, _, _ = line_layers(lineart)
    seg = segment_ink(ink, 2, 12, 0.4)
    off = (seg.labels > 0) & (ink == 0)
    return set(map(tuple, np.unique(images.over_white(image)[off].reshape(-1, 3), axis=0)))


def test_keys_then_flat_colors_the_shot_from_the_keys_alone(keyed):
    from conftest import tree_bytes

    from colorize import images

    shot, model = keyed
    manifest_before = (shot / "refs.yaml").read_text()
    dry = _cli("keys", str(shot), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    import json

    listed = json.loads(dry.stdout)
    assert listed["keys"][0]["frame"] == 1001 and listed["in_manifest"] is False
    assert not (shot / "keys").exists()  # a dry run paints nothing

    first = _cli("keys", str(shot), "--model", str(model), "--json", "--write-manifest")
    assert first.exit_code == 0, first.output
    done = [e["frame"] for e in _events(first) if e["event"] == "frame_done"]
    assert done[0] == 1001 and done == [k["frame"] for k in listed["keys"]]
    # The manifest gained exactly one line, the rest as it was.
    after = (shot / "refs.yaml").read_text()
    assert after.replace("keyframes: keys/sh001.####.png\n", "") == manifest_before
    keys_bytes = tree_bytes(shot / "keys")

    again = _cli("keys", str(shot), "--model", str(model), "--json")
    assert again.exit_code == 0
    assert {e["event"] for e in _events(again) if e["event"].startswith("frame_")} == {"frame_skipped"}
    assert tree_bytes(shot / "keys") == keys_bytes  # a rerun writes nothing

    flat = _cli("shot", str(shot), "--engine", "flat", "--json")
    assert flat.exit_code == 0, flat.output
    assert sum(e["event"] == "frame_done" for e in _events(flat)) == len(SHOT)
    keys = sorted(done)
    key_colors = {
        k: _clean_colors(
            images.read_rgba(shot / f"keys/sh001.{k}.png"), images.read_rgba(shot / f"lineart/sh001.{k}.png")
        )
        for k in keys
    }
    for f in SHOT:
        span = [k for k in keys if k <= f][-1:] + [k for k in keys if k >= f][:1]
        allowed = set().union(*(key_colors[k] for k in span))
        out = _clean_colors(
            images.read_rgba(shot / f"color/sh001.{f}.png"), images.read_rgba(shot / f"lineart/sh001.{f}.png")
        )
        assert out <= allowed, f"frame {f}: colors no key of its span has: {sorted(out - allowed)[:3]}"


def test_hybrid_equals_keys_then_flat(keyed, tmp_path):
    """`engine: hybrid` (keys painted in memory) gives the pixels of `colorize keys` + `colorize shot
    --engine flat` with untouched keys (the outputs of the test before; made here when run alone)."""
    import shutil

    from colorize import images

    shot, model = keyed
    if not (shot / "color").exists():
        keys = _cli("keys", str(shot), "--model", str(model), "--json", "--write-manifest")
        assert keys.exit_code == 0, keys.output
        flat = _cli("shot", str(shot), "--engine", "flat", "--json")
        assert flat.exit_code == 0, flat.output
    copy = tmp_path / "shot"
    shutil.copytree(shot, copy, ignore=shutil.ignore_patterns("color", "keys"))
    text = (copy / "refs.yaml").read_text().replace("keyframes: keys/sh001.####.png\n", "")
    (copy / "refs.yaml").write_text(text)  # no keyframes: hybrid chooses and paints its keys in memory
    one = tmp_path / "one"
    hybrid = _cli(
        "shot",
        str(copy),
        "--engine",
        "hybrid",
        "--model",
        str(model),
        "--out",
        str(one),
        "--frames",
        "1001-1012",
    )
    assert hybrid.exit_code == 0, hybrid.output
    for f in range(1001, 1013):
        a, b = images.read_image(shot / f"color/sh001.{f}.png"), images.read_image(one / f"sh001.{f}.png")
        assert np.array_equal(a, b), f"frame {f}"


def test_a_repainted_key_makes_exactly_its_span_stale_and_is_never_overwritten(keyed):
    from PIL import Image

    shot, model = keyed
    if not (shot / "color").exists():
        pytest.skip("needs the keys and the flat pass of the test before")
    keys = sorted(int(p.name.split(".")[1]) for p in (shot / "keys").glob("*.png"))
    k = keys[-1]
    # A painter fixes the last key in a paint program (which drops the text chunk).
    path = shot / f"keys/sh001.{k}.png"
    pixels = np.array(Image.open(path).convert("RGB"))
    pixels[pixels.sum(axis=-1) > 600] = (250, 250, 200)
    Image.fromarray(pixels).save(path)
    painted = path.read_bytes()
    status = _cli("status", str(shot), "--engine", "flat", "--json")
    import json

    doc = json.loads(status.stdout)
    span_after = [f for f in SHOT if f >= keys[-2]] if len(keys) > 1 else list(SHOT)
    from colorize.sequences import frame_range_text

    assert doc["stale"]["frames"] == frame_range_text(span_after[1:] if len(keys) > 1 else span_after)
    rerun = _cli("keys", str(shot), "--model", str(model), "--json")
    assert rerun.exit_code == 0
    assert k not in [e.get("frame") for e in _events(rerun) if e["event"] == "frame_done"]
    assert path.read_bytes() == painted  # the painter's key is kept
    sheet = _cli("preview", str(shot), "--keys")
    assert sheet.exit_code == 0 and (shot / "keys_sheet.png").is_file()


def test_plan_keys_puts_a_gpu_keys_step_before_the_flat_frame_tasks(shot, tmp_path):
    """`colorize plan --keys`: the keys task first (GPU), then frame tasks with --engine flat (no GPU)."""
    import json
    import shutil

    import yaml
    from openjd.model import DocumentType, decode_job_template, document_string_to_object

    shutil.rmtree(shot / "keys")  # the manifest names keys/…, which `colorize keys` will make
    tasks = json.loads(_cli("plan", str(shot), "--keys", "--chunk", "12", "--seed", "7").stdout)
    assert tasks["keys"]["command"][1] == "keys" and "--seed" in tasks["keys"]["command"]
    assert tasks["engine"] == "flat" and len(tasks["tasks"]) == 2
    assert all(t["command"][t["command"].index("--engine") + 1] == "flat" for t in tasks["tasks"])
    template = tmp_path / "job.yaml"
    assert _cli("plan", str(shot), "--keys", "--format", "openjd", "--save", str(template)).exit_code == 0
    text = template.read_text()
    decode_job_template(template=document_string_to_object(document=text, document_type=DocumentType.YAML))
    keys_step, frames_step = yaml.safe_load(text)["steps"]
    assert keys_step["name"] == "Keys" and keys_step["script"]["actions"]["onRun"]["args"][0] == "keys"
    assert {a["name"] for a in keys_step["hostRequirements"]["amounts"]} >= {"amount.worker.gpu"}
    assert frames_step["dependencies"] == [{"dependsOn": "Keys"}] and "hostRequirements" not in frames_step
    # Without a `keyframes` pattern the flat tasks could not find the keys: refused, naming the manifest.
    manifest = shot / "refs.yaml"
    manifest.write_text(manifest.read_text().replace("keyframes: keys/sh001.####.png\n", ""))
    refused = _cli("plan", str(shot), "--keys")
    assert refused.exit_code == 2 and "keyframes" in refused.stderr


def test_keys_without_a_model_or_with_frames_outside_the_shot_is_one_line(shot):
    no_model = _cli("keys", str(shot))
    assert no_model.exit_code == 66 and "model" in no_model.stderr
    assert len(no_model.stderr.strip().splitlines()) == 1
    outside = _cli("keys", str(shot), "--frames", "999", "--dry-run")
    assert outside.exit_code == 2 and "999" in outside.stderr
