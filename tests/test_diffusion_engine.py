"""The diffusion engine end to end through the CLI, with a tiny random model (CPU, a few seconds a run).

Covers: init-random, the working resolution (frames resized for the model and back), --engine diffusion --model / COLORIZE_MODEL_DIR, presets < manifest < CLI, every
sampler, both guidances, temporal none / locked / warp, cel finish, mask sources, byte-identical reruns,
chunked runs equal to whole runs, encoder calls once per reference, one-line model-folder errors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from colorize_cli.app import app
from conftest import tree_bytes
from typer.testing import CliRunner

FAST = """
diffusion:
  steps: 2
  ref_scale: 3.0
  sketch_scale: 1.5
  sampler: {sampler}
  cel_finish: {cel}
  warp_anchor_every: 4
  resolution: {resolution}
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny"
    result = CliRunner().invoke(app, ["model", "init-random", str(folder), "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return folder


def _manifest(
    shot: Path,
    sampler: str = "dpmpp",
    cel: bool = False,
    drop_mask: str | None = None,
    resolution: int = 0,
) -> None:
    """The sample manifest on the `draft` preset (locked, batch 8) with a fast diffusion section.

    resolution 0 (native, 384×256) unless a test asks for a working size.
    """
    text = (shot / "refs.yaml").read_text().replace("preset: default", "preset: draft")
    if drop_mask:
        text = text.replace(f"    mask: masks/{drop_mask}/sh001.####.png\n", "")
    fast = FAST.format(sampler=sampler, cel=str(cel).lower(), resolution=resolution)
    (shot / "refs.yaml").write_text(text + fast)


def _run(shot: Path, model: Path | None, out: Path, *args: str) -> list[dict]:
    cli = ["shot", str(shot), "--engine", "diffusion", "--out", str(out), "--json", *args]
    if model is not None:
        cli += ["--model", str(model)]
    result = CliRunner().invoke(app, cli)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _done(events: list[dict]) -> dict[int, dict]:
    return {e["frame"]: e for e in events if e["event"] == "frame_done"}


def test_init_random_and_force(tmp_path):
    folder = tmp_path / "m"
    assert CliRunner().invoke(app, ["model", "init-random", str(folder)]).exit_code == 0
    again = CliRunner().invoke(app, ["model", "init-random", str(folder)])
    assert again.exit_code == 73 and "--force" in again.stderr
    assert (
        CliRunner().invoke(app, ["model", "init-random", str(folder), "--force", "--seed", "1"]).exit_code
        == 0
    )
    from colorize.engines.diffusion.engine import missing_parts

    assert missing_parts(folder) == []


def test_two_runs_give_identical_bytes(shot, tiny_model, tmp_path):
    _manifest(shot, sampler="ddim")
    args = ["--frames", "1001-1002", "--temporal", "none", "--batch", "2"]
    events = _run(shot, tiny_model, tmp_path / "a", *args)
    _run(shot, tiny_model, tmp_path / "b", *args)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert len(a) == 2 and a == b
    start = next(e for e in events if e["event"] == "run_start")
    assert start["settings"]["diffusion"]["steps"] == 2  # manifest over preset
    assert start["settings"]["temporal"] == "none" and start["settings"]["batch"] == 2  # CLI over manifest
    info = _done(events)[1001]
    assert info["mask_source"] == {"hero": "manifest", "cat": "manifest"}
    assert info["temporal"] == "none" and info["background"] == "background reference"


def test_warp_in_four_chunks_equals_one_run(shot, tiny_model, tmp_path):
    # At a working size below the native one: flow, warp and cel finish at the frame's size, the warped
    # image resized into the working size, the result resized back.
    _manifest(shot, sampler="euler", cel=True, resolution=320)
    whole = _done(_run(shot, tiny_model, tmp_path / "whole", "--frames", "1001-1006", "--temporal", "warp"))
    for chunk in ("1001-1002", "1003", "1004-1005", "1006"):
        _run(shot, tiny_model, tmp_path / "chunks", "--frames", chunk, "--temporal", "warp")
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "chunks")
    assert whole[1001]["temporal"] == "warp anchor (keyframe)"  # 1001 has a colored keyframe
    assert whole[1004]["temporal"] == "warp from 1003 (anchor 1001)"
    assert whole[1005]["temporal"] == "warp anchor (noise)"  # every 4th frame of the shot
    assert whole[1001]["working_size"] == [320, 213]


@pytest.mark.parametrize("resolution", [448, 0])
def test_working_resolution_output_at_frame_size_and_reproducible(shot, tiny_model, tmp_path, resolution):
    # 384×256 frames enlarged to 448×299 (padded 448×320) for the model, or at their own size (0).
    import cv2

    _manifest(shot, sampler="dpmpp", cel=False, resolution=resolution)
    args = ["--frames", "1001-1002", "--temporal", "warp"]
    events = _run(shot, tiny_model, tmp_path / "a", *args)
    _run(shot, tiny_model, tmp_path / "b", *args)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert len(a) == 2 and a == b
    start = next(e for e in events if e["event"] == "run_start")
    assert start["settings"]["diffusion"]["resolution"] == resolution and start["size"] == [384, 256]
    done = _done(events)
    assert done[1001]["working_size"] == ([448, 299] if resolution else [384, 256])
    for frame in (1001, 1002):
        image = cv2.imread(done[frame]["output"], cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (256, 384)


def test_resolution_is_native_or_at_least_64():
    from pydantic import ValidationError

    from colorize.settings import DiffusionSettings

    assert DiffusionSettings().resolution == 768
    assert DiffusionSettings(resolution=0).resolution == 0
    with pytest.raises(ValidationError, match="at least 64"):
        DiffusionSettings(resolution=32)


def test_locked_chunks_equal_one_run_with_batch_padding(shot, tiny_model, tmp_path, monkeypatch):
    # Model from $COLORIZE_MODEL_DIR; batch 2 with a chunk boundary inside a batch (fixed UNet batch shape).
    monkeypatch.setenv("COLORIZE_MODEL_DIR", str(tiny_model))
    _manifest(shot, sampler="dpmpp")
    _run(shot, None, tmp_path / "whole", "--frames", "1001-1005", "--batch", "2")
    _run(shot, None, tmp_path / "chunks", "--frames", "1001-1003", "--batch", "2")
    events = _run(shot, None, tmp_path / "chunks", "--frames", "1004-1005", "--batch", "2")
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "chunks")
    assert _done(events)[1004]["temporal"] == "locked"  # from the draft preset


def test_encoders_run_once_per_reference_whatever_the_frame_count(shot, tiny_model, tmp_path, monkeypatch):
    from colorize.engines.diffusion.modeling import ColorizeDiffusionModel

    counts: dict[str, int] = {}
    for name in ("reference_tokens", "background_features", "style_vectors", "predict_v"):
        original = getattr(ColorizeDiffusionModel, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ColorizeDiffusionModel, name, counted)
    _manifest(shot)
    seen = []
    for frames in ("1001", "1001-1003"):
        counts.clear()
        _run(shot, tiny_model, tmp_path / frames, "--frames", frames, "--temporal", "none", "--batch", "1")
        seen.append(dict(counts))
    for c in seen:  # 3 references: hero, cat, background
        assert (c["reference_tokens"], c["background_features"], c["style_vectors"]) == (3, 1, 2)
    assert seen[1]["predict_v"] == 3 * seen[0]["predict_v"]  # one UNet call per step per batch


def test_mask_sources_lineart_and_anime_seg(shot, tiny_model, tmp_path):
    import torch

    _manifest(shot, drop_mask="cat")
    events = _run(shot, tiny_model, tmp_path / "a", "--frames", "1002", "--temporal", "none")
    assert _done(events)[1002]["mask_source"] == {"hero": "manifest", "cat": "lineart"}

    # A model folder with an anime-segmentation network (TorchScript, local weights only).
    model = tmp_path / "with-seg"
    shutil.copytree(tiny_model, model)
    (model / "anime_seg").mkdir()
    net = torch.jit.script(torch.nn.Conv2d(3, 1, 3, padding=1).eval())
    net.save(str(model / "anime_seg" / "model.pt"))
    (model / "anime_seg" / "config.json").write_text('{"image_size": 64}')
    events = _run(shot, model, tmp_path / "b", "--frames", "1002", "--temporal", "none")
    assert _done(events)[1002]["mask_source"] == {"hero": "manifest", "cat": "anime_seg"}


def test_missing_or_incomplete_model_folder_is_one_line(shot, tiny_model, tmp_path):
    _manifest(shot)
    base = ["shot", str(shot), "--engine", "diffusion", "--frames", "1001", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*base, "--model", str(tmp_path / "nope")])
    assert result.exit_code == 66
    assert result.stderr.count("\n") == 1 and "colorize model convert" in result.stderr
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "clip")
    result = CliRunner().invoke(app, [*base, "--model", str(broken)])
    assert result.exit_code == 66 and result.stderr.count("\n") == 1
    assert "unet/diffusion_pytorch_model.safetensors, clip/config.json" in result.stderr
    assert "colorize model convert" in result.stderr


def test_device_and_dtype_choice():
    import torch

    from colorize.engines.diffusion.engine import choose_device
    from colorize.errors import UsageError

    assert choose_device("cpu", "auto") == (torch.device("cpu"), torch.float32)
    assert choose_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    if not torch.cuda.is_available():
        assert choose_device("auto", "auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(UsageError, match="CUDA is not available"):
            choose_device("cuda", "auto")
