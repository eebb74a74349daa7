"""The diffusion engine end to end through the CLI, with a tiny random model at a small working size.

The sample's 384×256 frames run at `resolution: 128` (the model sees 128×85, padded to 128×128, a 16×16
latent) with 2 steps and batch 1 unless a test needs more: every contract below is about what the engine
does with frames, not about image quality.

Covers: init-random, the working resolution (frames resized for the model and back), --engine diffusion
--model / COLORIZE_MODEL_DIR, presets < manifest < CLI, every sampler, both guidances, temporal none /
locked / warp, cel finish, mask sources, bleaching sources, plain mode, byte-identical reruns, chunked runs
equal to whole runs, encoder calls once per reference, one-line model-folder errors, the check warning.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from colorize_cli.app import app
from conftest import tree_bytes
from typer.testing import CliRunner

FAST = {
    "batch": 1,
    "diffusion": {"steps": 2, "ref_scale": 3.0, "sketch_scale": 1.5},
}


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
    resolution: int = 128,
    mode: str = "v2",
    background: bool = True,
    anchor_every: int = 3,
    **top: object,
) -> None:
    """The sample manifest on the `draft` preset (locked) with batch 1 and a fast diffusion section.

    Built from the sample's own manifest each time, so a test may call it again with other values."""
    original = shot / ".refs.sample.yaml"
    if not original.exists():
        shutil.copyfile(shot / "refs.yaml", original)
    data = yaml.safe_load(original.read_text())
    data["preset"] = "draft"
    if drop_mask:
        del data["characters"][drop_mask]["mask"]
    if not background:
        del data["background"]
    data.update(copy.deepcopy(FAST))
    data["diffusion"].update(
        sampler=sampler, cel_finish=cel, warp_anchor_every=anchor_every, resolution=resolution, mode=mode
    )
    data.update(top)
    (shot / "refs.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


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
    from colorize.engines.diffusion.model_folder import missing_parts

    folder = tmp_path / "m"
    assert CliRunner().invoke(app, ["model", "init-random", str(folder), "--no-clip"]).exit_code == 0
    again = CliRunner().invoke(app, ["model", "init-random", str(folder)])
    assert again.exit_code == 73 and "--force" in again.stderr
    forced = CliRunner().invoke(app, ["model", "init-random", str(folder), "--force", "--seed", "1"])
    assert forced.exit_code == 0
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
    assert info["mode"] == "v2" and "bleach_mask" not in info  # a background reference: nothing bleached


def test_warp_in_chunks_equals_one_run_and_output_is_frame_sized(shot, tiny_model, tmp_path):
    # At a working size below the native one: flow, warp and cel finish at the frame's size, the warped
    # image resized into the working size, the result resized back.
    import cv2

    _manifest(shot, sampler="euler", cel=True, anchor_every=2)
    whole = _done(_run(shot, tiny_model, tmp_path / "whole", "--frames", "1001-1003", "--temporal", "warp"))
    for chunk in ("1001", "1002-1003"):  # 1002 starts between anchors: 1001 is recomputed in memory
        _run(shot, tiny_model, tmp_path / "chunks", "--frames", chunk, "--temporal", "warp")
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "chunks")
    assert whole[1001]["temporal"] == "warp anchor (keyframe)"  # 1001 has a colored keyframe
    assert whole[1002]["temporal"] == "warp from 1001 (anchor 1001)"
    assert whole[1003]["temporal"] == "warp anchor (noise)"  # every 2nd frame of the shot
    assert whole[1001]["working_size"] == [128, 85]
    image = cv2.imread(whole[1002]["output"], cv2.IMREAD_UNCHANGED)
    assert image.shape[:2] == (256, 384)


def test_resolution_is_native_or_at_least_64():
    from pydantic import ValidationError

    from colorize.settings import DiffusionSettings

    assert DiffusionSettings().resolution == 768
    assert DiffusionSettings(resolution=0).resolution == 0
    with pytest.raises(ValidationError, match="at least 64"):
        DiffusionSettings(resolution=32)
    assert DiffusionSettings().ref_scale == 4.0 and DiffusionSettings().mode == "v2"  # as the official app


def test_locked_chunks_equal_one_run_with_batch_padding(shot, tiny_model, tmp_path, monkeypatch):
    # Model from $COLORIZE_MODEL_DIR; batch 2 with a chunk boundary inside a batch (fixed UNet batch shape).
    monkeypatch.setenv("COLORIZE_MODEL_DIR", str(tiny_model))
    _manifest(shot, sampler="dpmpp")
    _run(shot, None, tmp_path / "whole", "--frames", "1001-1003", "--batch", "2")
    _run(shot, None, tmp_path / "chunks", "--frames", "1001", "--batch", "2")
    events = _run(shot, None, tmp_path / "chunks", "--frames", "1002-1003", "--batch", "2")
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "chunks")
    assert _done(events)[1002]["temporal"] == "locked"  # from the draft preset


def test_encoders_run_once_per_reference_whatever_the_frame_count(shot, tiny_model, tmp_path, monkeypatch):
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    counts: dict[str, int] = {}
    for name in ("reference_tokens", "background_features", "style_vectors", "predict_v"):
        original = getattr(ColorizeDiffusionPipeline, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ColorizeDiffusionPipeline, name, counted)
    _manifest(shot)
    seen = []
    for frames in ("1001", "1001-1003"):
        counts.clear()
        _run(shot, tiny_model, tmp_path / frames, "--frames", frames, "--temporal", "none", "--batch", "1")
        seen.append(dict(counts))
    for c in seen:  # 3 references: hero, cat, background
        assert (c["reference_tokens"], c["background_features"], c["style_vectors"]) == (3, 1, 2)
    assert seen[1]["predict_v"] == 3 * seen[0]["predict_v"]  # one UNet call per step per batch


def _with_segmenter(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of the model folder with an anime-segmentation network (TorchScript, local weights only)."""
    import torch

    model = tmp_path / "with-seg"
    shutil.copytree(tiny_model, model)
    (model / "anime_seg").mkdir()
    net = torch.jit.script(torch.nn.Conv2d(3, 1, 3, padding=1).eval())
    net.save(str(model / "anime_seg" / "model.pt"))
    (model / "anime_seg" / "config.json").write_text('{"image_size": 64}')
    return model


def test_mask_and_bleaching_sources(shot, tiny_model, tmp_path, monkeypatch):
    """Frame masks: manifest, line art, segmentation network (on the main thread, never in the runner's
    reader threads). Bleaching (no background reference): the manifest's reference_mask, else the
    segmentation network, else the heuristic."""
    import threading

    from colorize.engines.diffusion.preprocess import AnimeSegmenter

    threads: list[str] = []
    probability = AnimeSegmenter.probability

    def recorded(self, rgb):
        threads.append(threading.current_thread().name)
        return probability(self, rgb)

    monkeypatch.setattr(AnimeSegmenter, "probability", recorded)
    _manifest(shot, drop_mask="cat", background=False)
    frame = ["--frames", "1002", "--temporal", "none"]
    info = _done(_run(shot, tiny_model, tmp_path / "a", *frame))[1002]
    assert info["mask_source"] == {"hero": "manifest", "cat": "lineart"}
    assert (info["background"], info["bleach_mask"]) == ("hero bleached", "heuristic")

    model = _with_segmenter(tiny_model, tmp_path)
    info = _done(_run(shot, model, tmp_path / "b", *frame))[1002]
    assert info["mask_source"] == {"hero": "manifest", "cat": "anime_seg"}
    assert info["bleach_mask"] == "anime_seg"
    assert threads == ["MainThread"] * 2  # the reference (prepare), then frame 1002 (colorize)

    mask = np.zeros((192, 192), np.uint8)
    mask[40:150, 50:140] = 255
    import cv2

    cv2.imwrite(str(shot / "refs" / "hero-mask.png"), mask)
    text = (shot / "refs.yaml").read_text()
    (shot / "refs.yaml").write_text(
        text.replace(
            "    reference: refs/hero.png\n",
            "    reference: refs/hero.png\n    reference_mask: refs/hero-mask.png\n",
        )
    )
    info = _done(_run(shot, model, tmp_path / "c", *frame))[1002]
    assert info["bleach_mask"] == "manifest"
    assert tree_bytes(tmp_path / "b") != tree_bytes(tmp_path / "c")  # the mask changed the background


def test_plain_mode_uses_no_masks_and_differs(shot, tiny_model, tmp_path):
    _manifest(shot, mode="plain")
    info = _done(_run(shot, tiny_model, tmp_path / "plain", "--frames", "1002", "--temporal", "none"))[1002]
    assert info["mode"] == "plain" and info["mask_source"] == {} and "bleach_mask" not in info
    _manifest(shot, mode="v2")
    _run(shot, tiny_model, tmp_path / "v2", "--frames", "1002", "--temporal", "none")
    assert tree_bytes(tmp_path / "plain") != tree_bytes(tmp_path / "v2")


def test_check_warns_when_the_heuristic_cannot_find_the_character(shot, tiny_model, tmp_path):
    import cv2

    _manifest(shot, background=False)
    base = ["check", str(shot)]
    ok = CliRunner().invoke(app, [*base])  # no model: the flat engine, nothing is bleached
    assert ok.exit_code == 0 and "warning" not in ok.stderr
    _manifest(shot, background=False, engine="diffusion", model=str(tiny_model))
    assert "warning" not in CliRunner().invoke(app, base).stderr  # the sample's flat backdrop: 14 %
    rng = np.random.default_rng(0)
    cv2.imwrite(str(shot / "refs" / "hero.png"), rng.integers(0, 256, (192, 192, 3), dtype=np.uint8))
    painted = CliRunner().invoke(app, base)
    assert painted.exit_code == 0, painted.output
    lines = painted.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorize: warning: ") and "refs/hero.png" in lines[0]
    assert "reference_mask" in lines[0]


def test_reference_mask_is_checked_like_other_inputs(shot):
    import cv2

    text = (shot / "refs.yaml").read_text()
    line = "    reference: refs/hero.png\n"
    (shot / "refs.yaml").write_text(text.replace(line, line + "    reference_mask: refs/hero-mask.png\n"))
    missing = CliRunner().invoke(app, ["check", str(shot)])
    assert missing.exit_code == 66 and missing.stderr.count("\n") == 1
    assert "refs/hero-mask.png: reference_mask of character 'hero' not found" in missing.stderr
    cv2.imwrite(str(shot / "refs" / "hero-mask.png"), np.zeros((10, 20), np.uint8))
    wrong = CliRunner().invoke(app, ["check", str(shot)])
    assert wrong.exit_code == 65 and "is 20×10 but its reference is 192×192" in wrong.stderr


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
    assert (
        "unet/diffusion_pytorch_model.safetensors, clip/config.json, clip/model.safetensors" in result.stderr
    )
    assert "colorize model convert" in result.stderr


def test_a_damaged_weight_file_is_refused_before_the_run(shot, tiny_model, tmp_path):
    # An interrupted copy of the model: `check` names the file and `shot` refuses it before run_start
    # (a truncated clip/ weight file used to surface as an internal error from the loader).
    _manifest(shot)
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    weights = damaged / "clip" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    runner = CliRunner()
    check = runner.invoke(app, ["check", str(shot), "--engine", "diffusion", "--model", str(damaged)])
    assert check.exit_code == 65 and check.stderr.count("\n") == 1
    assert f"{weights}: truncated (" in check.stderr
    args = [
        "shot",
        str(shot),
        "--engine",
        "diffusion",
        "--model",
        str(damaged),
        "--json",
        "--out",
        str(tmp_path),
    ]
    events = [json.loads(line) for line in runner.invoke(app, args).stdout.splitlines()]
    assert [(e["event"], e["exit_code"]) for e in events] == [("error", 65)]
    as_file = runner.invoke(app, ["check", str(shot), "--engine", "diffusion", "--model", str(weights)])
    assert as_file.exit_code == 66 and "a file, not a model folder" in as_file.stderr


def test_device_and_dtype_choice():
    import torch

    from colorize.engines.diffusion.engine import choose_device
    from colorize.errors import UsageError

    cpu = torch.device("cpu")
    assert choose_device("cpu", "auto") == (cpu, torch.float32, torch.float32)
    assert choose_device("cpu", "bfloat16") == (cpu, torch.bfloat16, torch.bfloat16)  # an override: all
    if not torch.cuda.is_available():
        assert choose_device("auto", "auto") == (cpu, torch.float32, torch.float32)
        with pytest.raises(UsageError, match="CUDA is not available"):
            choose_device("cuda", "auto")


def test_cel_finish_on_model_keeps_transparency_writes_layers_and_qa_details(shot, tiny_model, tmp_path):
    from colorize import images
    from colorize.colormodel import extract, load_palette, palette_yaml
    from colorize.engines.diffusion.cel import cel_regions

    key_path = shot / "keys" / "sh001.1001.png"
    key = images.read_rgba(key_path)
    key[(key == key[0, 0]).all(axis=-1), 3] = 0  # the keyframe's backdrop is transparent
    images.write_image(key_path, key)
    (shot / "pal.yaml").write_text(palette_yaml(extract([key]), ["key"]))
    _manifest(shot, cel=True, palette="pal.yaml", layers={"index": "idx/i.####.png", "paint": "p/p.####.png"})
    result = CliRunner().invoke(
        app,
        ["shot", str(shot), "--engine", "diffusion", "--model", str(tiny_model), "--out", str(tmp_path / "o")]
        + ["--frames", "1001", "--temporal", "none", "--qa", str(tmp_path / "qa"), "--progress", "none"],
    )
    assert result.exit_code == 0, result.output
    assert "--qa: the diffusion engine makes no overlays" in result.output
    qa = json.loads((tmp_path / "qa" / "qa.json").read_text())["frames"]["1001"]
    assert qa["temporal"] == "none" and qa["regions"] > 0
    out = images.read_rgba(tmp_path / "o" / "sh001.1001.png")
    assert out[0, 0, 3] == 0 and (out[..., 3] == 255).any()  # transparent where the keyframe is
    labels = cel_regions(images.read_rgba(shot / "lineart" / "sh001.1001.png")).labels
    palette = load_palette(shot / "pal.yaml")
    painted = (labels > 0) & (out[..., 3] > 0)
    assert (palette.index(out)[painted] != 65535).all()  # every region on model
    index = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "o" / "index" / "i.1001.png"))
    assert ((index == 0) == (out[..., 3] == 0)).all()


def test_close_after_a_failed_batch_does_not_wait_for_a_stuck_worker(tiny_model):
    import threading

    from colorize.engines.diffusion.engine import WORKERS, DiffusionEngine
    from colorize.settings import Settings

    engine = DiffusionEngine(Settings(model=str(tiny_model)))
    release = threading.Event()
    try:
        stuck = [engine._pool.submit(release.wait) for _ in range(WORKERS)]  # every worker busy, forever
        queued = engine._pool.submit(lambda: "never run")
        with pytest.raises(RuntimeError, match="prepare"):
            engine.colorize([])  # a batch that fails (no prepare)
        closer = threading.Thread(target=engine.close)
        closer.start()
        closer.join(timeout=60)  # (a hang detector, not a timing: a waiting close never returns)
        assert not closer.is_alive(), "close() waited for a stuck worker"
        assert queued.cancelled() and not any(f.done() for f in stuck)
    finally:
        release.set()
    # A clean run's close still waits for its workers (nothing is left running behind it).
    engine = DiffusionEngine(Settings(model=str(tiny_model)))
    finished = threading.Event()
    engine._pool.submit(lambda: (threading.Event().wait(0.2), finished.set()))
    engine.close()
    assert finished.is_set()
