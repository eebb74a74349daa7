"""Batching of diffusion shots (issue 12): chain-parallel warp, the runner's schedule hook, determinism
whatever the batch companions, a sync-free denoising loop, offload, the CUDA-graph fallback, several
devices (worker processes; `cpu` entries stand in for GPUs), and the GPU benchmark's CPU smoke run.

The tiny random model at resolution 128 (the sample's 384×256 frames), 2 steps, as in
test_diffusion_engine.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import fake_engines
import numpy as np
import pytest
import torch
from colorize_cli.app import app
from conftest import REPO, assert_one_summary, tree_bytes
from test_diffusion_engine import _manifest
from typer.testing import CliRunner

from colorize.engines import consecutive_batches, engine_spec, register_engine
from colorize.engines.diffusion.planning import chain_starts, warp_batches
from colorize.errors import UsageError
from colorize.events import Events
from colorize.reading import read_frame as _read_frame
from colorize.runner import run_on_devices, run_shot, shot_context
from colorize.shot import plan_shot
from colorize.temporal import chain_start
from colorize.validate import validate_plan
from colorize.workers import Device, parse_devices, split_frames


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from colorize.engines.diffusion.model_folder import random_model

    return random_model("tiny", seed=0).save(tmp_path_factory.mktemp("models") / "tiny")


def _plan(shot: Path, model: Path | None, frames: str, out: Path, **overrides):
    overrides = {"engine": "diffusion", "model": str(model), **overrides} if model else overrides
    plan = plan_shot(shot / "refs.yaml", frames=frames, out_dir=out, overrides=overrides)
    return plan, validate_plan(plan, deep=False)


def _run(shot: Path, model: Path | None, frames: str, out: Path, engine=None, before=None, **overrides):
    """(summary, JSON events, engine) of an in-process run; `before()` runs once the plan is checked."""
    from colorize.engines.diffusion.engine import DiffusionEngine

    plan, size = _plan(shot, model, frames, out, **overrides)
    if before is not None:
        before()
    engine = engine or DiffusionEngine(plan.settings)
    stream = io.StringIO()
    summary = run_shot(plan, engine, Events(json_stream=stream), size=size)
    return summary, [json.loads(line) for line in stream.getvalue().splitlines()], engine


def _frames(events: list[dict], kind: str = "frame_done") -> list[int]:
    return [e["frame"] for e in events if e["event"] == kind]


# ---- the schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [[], [1001], [1001, 1013], [1003, 1004]])
@pytest.mark.parametrize("every", [1, 3, 8])
def test_chain_starts_follow_the_temporal_rule(keys, every):
    frames = list(range(1001, 1031))
    starts = chain_starts(frames, keys, every)
    assert starts == {f: chain_start(f, frames, keys, every) for f in frames}


@pytest.mark.parametrize(
    "todo, keys, batch, every",
    [
        (range(1001, 1017), [1001], 4, 4),
        (range(1001, 1065), [1001], 8, 8),
        (range(1001, 1033), [1001, 1013], 4, 8),
        (list(range(1003, 1011)) + list(range(1020, 1026)), [1001], 3, 4),  # chunk starts, holes
        (range(1001, 1011), [1001], 1, 4),
        (range(1001, 1009), [1001], 4, 4),  # two chains: the noise anchor first, then side by side
    ],
)
def test_warp_batches_run_chains_side_by_side(todo, keys, batch, every):
    todo = list(todo)
    frames = list(range(1001, 1065))
    batches = warp_batches(todo, frames, keys, batch, every)
    assert sorted(f for b in batches for f in b) == todo  # each frame once
    starts = chain_starts(frames, keys, every)
    when = {f: i for i, b in enumerate(batches) for f in b}
    for b in batches:
        assert 1 <= len(b) <= batch
        assert len({starts[f] for f in b}) == len(b)  # never two frames of one chain
        noise = [f == starts[f] and f not in keys for f in b]
        assert len(set(noise)) == 1  # one timestep schedule per batch
    for f in todo:  # a chain's frames in order
        later = [g for g in todo if starts[g] == starts[f] and g > f]
        assert all(when[g] > when[f] for g in later)
    started = set()
    for i, b in enumerate(batches):  # results held in memory: at most 2 × batch chains started, unfinished
        started |= {starts[f] for f in b}
        unfinished = {a for a in started if any(when[g] > i for g in todo if starts[g] == a)}
        assert len(unfinished) <= 2 * batch
    # No padding while work is ready: as few UNet batches as the chains allow.
    if todo == list(range(1001, 1017)):
        assert batches == [
            (1005, 1009, 1013),
            (1006, 1010, 1014, 1001),
            (1007, 1011, 1015, 1002),
            (1008, 1012, 1016, 1003),
            (1004,),
        ]
    if todo == list(range(1001, 1009)):
        assert batches == [(1005,), (1006, 1001), (1007, 1002), (1008, 1003), (1004,)]
    if batch == 8:
        assert [len(b) for b in batches] == [7, 8, 8, 8, 8, 8, 8, 8, 1]
    if batch == 1:
        assert [b[0] for b in batches] == todo  # one chain at a time: frame order


def test_runner_takes_the_engines_schedule_and_rejects_a_broken_one(shot):
    spec = engine_spec("flat")
    reverse = dataclasses.replace(
        spec, create=fake_engines.Fake, schedule=lambda todo, f, k, s: [tuple(reversed(todo))]
    )
    broken = dataclasses.replace(
        spec, create=fake_engines.Fake, schedule=lambda todo, f, k, s: [tuple(todo[1:])]
    )
    try:
        register_engine(reverse)
        summary, events, _ = _run(shot, None, "1001-1005", shot / "a", engine=fake_engines.Fake())
        assert _frames(events) == [1005, 1004, 1003, 1002, 1001] and summary.exit_code == 0
        register_engine(broken)
        summary, events, _ = _run(shot, None, "1001-1005", shot / "b", engine=fake_engines.Fake())
        assert_one_summary(events)
        assert summary.exit_code == 70 and "schedule" in events[-1]["stopped"]
        assert events[-1]["not_run"] == 5 and not list((shot / "b").glob("*.png"))
    finally:
        register_engine(spec)
    assert consecutive_batches([1, 2, 3, 4, 5], 2) == [(1, 2), (3, 4), (5,)]


class _Preparing(fake_engines.Slow):
    """Records where and when its per-frame preparation runs, and whether batches arrive prepared."""

    delay = 0.2

    def __init__(self, settings=None):
        super().__init__(settings)
        self.log: list[tuple] = []

    def preprocess(self, fi):
        self.log.append(("prepare", fi.frame, threading.current_thread().name, time.monotonic()))
        return dataclasses.replace(fi, prepared=fi.frame)

    def colorize(self, batch):
        assert all(fi.prepared == fi.frame for fi in batch)
        self.log.append(("color start", [fi.frame for fi in batch], time.monotonic()))
        out = super().colorize(batch)
        self.log.append(("color end", [fi.frame for fi in batch], time.monotonic()))
        return out


def test_runner_prepares_frames_in_reader_threads_while_the_engine_works(shot):
    engine = _Preparing()
    summary, _, _ = _run(shot, None, "1001-1006", shot / "o", engine=engine, batch=2)
    assert summary.done == 6
    prepared = {e[1]: e for e in engine.log if e[0] == "prepare"}
    assert sorted(prepared) == list(range(1001, 1007))
    assert all(e[2].startswith("colorize-read") for e in prepared.values())
    first_end = next(e[2] for e in engine.log if e[0] == "color end")
    assert prepared[1003][3] < first_end and prepared[1004][3] < first_end  # the next batch, ahead


# ---- the engine --------------------------------------------------------------------------------------


def test_frame_bytes_do_not_depend_on_batch_companions_or_position(shot, model):
    """The UNet always sees `batch` frames: which frames share a call, and where a frame sits in it, does
    not change its bytes (the chain-parallel schedule relies on it)."""
    from colorize.engines.diffusion.engine import DiffusionEngine

    _manifest(shot)
    plan, size = _plan(shot, model, "1001-1006", shot / "o", batch=3, temporal="none")
    engine = DiffusionEngine(plan.settings)
    engine.prepare(shot_context(plan, size))
    frames = {f: engine.preprocess(_read_frame(plan, f)) for f in range(1001, 1007)}
    first = engine.colorize([frames[1001], frames[1002], frames[1003]])[0].image
    among_others = engine.colorize([frames[1004], frames[1005], frames[1001]])[2].image
    engine.close()  # its worker threads end; used again, it makes new ones
    assert engine._workers is None
    alone = engine.colorize([frames[1001]])[0].image  # padded with copies of itself
    unprepared = engine.colorize([_read_frame(plan, 1006), _read_frame(plan, 1001)])[1].image
    assert np.array_equal(first, among_others)
    assert np.array_equal(first, alone)
    assert np.array_equal(first, unprepared)
    assert engine.counts == {"unet_batches": 4, "frames": 9, "padding": 3}
    engine.close()


def test_warp_runs_chains_side_by_side_and_chunks_in_any_order_give_the_same_bytes(shot, model, tmp_path):
    _manifest(shot, anchor_every=2)
    summary, events, engine = _run(shot, model, "1001-1008", tmp_path / "whole", batch=4, temporal="warp")
    assert summary.exit_code == 0
    # Chains [1001 (keyframe), 1002] [1003, 1004] [1005, 1006] [1007, 1008]: the three noise anchors,
    # then every chain's second frame with the keyframe anchor (img2img), then 1002. Events come in
    # that order, each frame once. The old engine ran one frame per UNet call: 8 calls.
    assert _frames(events) == [1003, 1005, 1007, 1004, 1006, 1008, 1001, 1002]
    assert engine.counts == {"unet_batches": 3, "frames": 8, "padding": 4}
    done = {e["frame"]: e for e in events if e["event"] == "frame_done"}
    assert done[1004]["temporal"] == "warp from 1003 (anchor 1003)" and 0 <= done[1004]["occluded"] <= 1
    assert done[1001]["temporal"] == "warp anchor (keyframe)"
    for chunk in ("1006-1008", "1004", "1001-1003", "1005"):  # 1006 and 1004 start mid-chain
        _, chunk_events, chunk_engine = _run(
            shot, model, chunk, tmp_path / "chunks", batch=4, temporal="warp"
        )
        assert chunk_engine.counts["padding"] < chunk_engine.counts["unet_batches"] * 4
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "chunks")


def test_a_bad_frame_fails_its_chain_only(shot, model, tmp_path):
    _manifest(shot, anchor_every=3)

    def damage() -> None:  # after the checks: a file that goes bad during the run
        (shot / "lineart" / "sh001.1004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")

    summary, events, _ = _run(
        shot, model, "1001-1008", tmp_path / "o", before=damage, batch=4, temporal="warp"
    )
    assert_one_summary(events)
    failed = {e["frame"]: e["error"] for e in events if e["event"] == "frame_failed"}
    # Chains [1001-1003] [1004-1006] [1007-1008]: 1004 cannot be read, 1005's flow needs its line art,
    # 1006's chain needs it; the other chains' frames, in the same batches, are written.
    assert sorted(failed) == [1004, 1005, 1006]
    assert all("sh001.1004.png" in error for error in failed.values())
    assert "its warp chain from 1004 needs frame 1004" in failed[1006]
    assert sorted(_frames(events)) == [1001, 1002, 1003, 1007, 1008]
    assert summary.exit_code == 65 and events[-1]["stopped"] is None


def test_denoising_loop_makes_no_host_sync(model):
    """The engine's batch function (the pipeline's `__call__`: inputs, padding, guidance, scheduler, start,
    the loop, decode) runs on the meta device: a tensor read on the host (`.item()`, a tensor in an `if`,
    `.nonzero()`, `.cpu()`) would raise there. On a GPU such a read waits for the device every step."""
    from colorize.engines.diffusion.conditioning import Conditioning
    from colorize.engines.diffusion.model_folder import tiny_config
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    meta = ColorizeDiffusionPipeline.from_config(tiny_config(), meta=True)
    tokens = torch.empty(1, 8, 32, device="meta")
    z = torch.empty(1, 4, 8, 8, device="meta")
    size_emb = meta.size_embedding(1.0, 1.0)
    conditioning = Conditioning(
        meta.character_context([tokens, tokens], tokens),
        meta.background_features(z, tokens, size_emb),
        meta.style_vectors(z, tokens, size_emb),
        split=True,
        blank_hints=meta.encode_sketch(torch.empty(1, 3, 64, 64, device="meta")),
    )
    for sampler, strength in (("dpmpp", 1.0), ("dpmpp", 0.5), ("euler", 0.5), ("ddim", 0.5)):
        result = meta(
            conditioning,
            sketch=torch.empty(2, 64, 64, device="meta"),
            noise=torch.empty(2, 4, 8, 8, device="meta"),
            region_masks=torch.empty(2, 2, 8, 8, device="meta"),
            init_images=None
            if strength == 1.0
            else torch.empty(2, 64, 64, 3, dtype=torch.uint8, device="meta"),
            sampler=sampler,
            steps=2,
            strength=strength,
            ref_scale=3.0,
            sketch_scale=1.5,
            batch_size=3,  # padded too
        )
        assert result.latents.device.type == "meta" and result.latents.shape == (2, 4, 8, 8)
        assert result.images.shape == (2, 3, 64, 64)


def test_offload_gives_the_same_bytes(shot, model, tmp_path):
    _manifest(shot, anchor_every=2)
    common = {"batch": 2, "temporal": "warp"}
    _run(shot, model, "1001-1003", tmp_path / "resident", **common)
    summary, events, engine = _run(
        shot, model, "1001-1003", tmp_path / "offload", diffusion={"offload": True}, **common
    )
    assert summary.exit_code == 0
    # Same pixels and the same record: offload is not one of the settings that decide freshness. On the CPU
    # it does nothing, with one message (the hooks are tested below, on the pipeline).
    assert tree_bytes(tmp_path / "resident") == tree_bytes(tmp_path / "offload")
    assert [e["text"] for e in events if e["event"] == "message" and "offload" in e["text"]] == [
        "diffusion.offload has no effect on the CPU (the weights are in CPU memory)"
    ]
    assert not any(hasattr(part, "_hf_hook") for part in engine.model.components.values())


def _track_model_offload(pipe, monkeypatch) -> tuple[list[str], set[str], list[set[str]]]:
    """(the components diffusers' model-offload hooks moved onto the device, in order; those there now; those
    there at each UNet call).

    A CPU machine has no second device, so accelerate's hooks copy weights from the CPU to the CPU (and skip
    offloading a module already on the CPU); the test records what the hooks do on a GPU instead: a
    component's `pre_forward` takes the one before it in `model_cpu_offload_seq` (its `prev_module_hook`)
    off the device and puts the component on it."""
    from accelerate.hooks import CpuOffload

    names = {id(part): name for name, part in pipe.components.items() if isinstance(part, torch.nn.Module)}
    moved: list[str] = []
    on_device: set[str] = set()
    at_unet: list[set[str]] = []
    pre_forward = CpuOffload.pre_forward

    def recording_pre_forward(self, module, *args, **kwargs):
        if self.prev_module_hook is not None:
            on_device.discard(names[id(self.prev_module_hook.model)])
        moved.append(names[id(module)])
        on_device.add(names[id(module)])
        if names[id(module)] == "unet":
            at_unet.append(set(on_device))
        return pre_forward(self, module, *args, **kwargs)

    monkeypatch.setattr(CpuOffload, "pre_forward", recording_pre_forward)
    return moved, on_device, at_unet


def _shot_and_batch(pipe, *, steps: int = 2, batches: int = 1) -> Any:
    """The per-shot conditioning (one character, its reference bleached) and `batches` batches of 2 frames
    (the last one's result)."""
    from colorize.engines.diffusion.conditioning import encode_references

    g = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, 72, 56, generator=g) * 2 - 1
    mask = (torch.rand(1, 1, 72, 56, generator=g) > 0.5).float()
    conditioning = encode_references(
        pipe, pipe.reference_tokens, [reference], bleach_mask=mask, latent_size=(64, 64)
    )
    for _ in range(batches):
        result = pipe(
            conditioning,
            sketch=torch.rand(2, 64, 64, generator=g) * 2 - 1,
            noise=torch.randn(2, 4, 8, 8, generator=g),
            region_masks=torch.ones(2, 1, 8, 8),
            steps=steps,
            ref_scale=3.0,
            sketch_scale=1.5,
        )
    return result


def test_model_offload_takes_each_component_to_the_device_when_it_runs(monkeypatch):
    """Every component runs through its diffusers offload hook (a method that bypassed it would run a
    component left in CPU memory on GPU inputs); after the shot's references only the sketch encoder, the
    UNet and the VAE take turns on the device: CLIP and the reference encoders have left it."""
    from colorize.engines.diffusion.model_folder import random_model

    pipe = random_model("tiny", seed=0)
    pipe.enable_model_cpu_offload(device="cpu")
    moved, on_device, at_unet = _track_model_offload(pipe, monkeypatch)
    with torch.inference_mode():
        _shot_and_batch(pipe, batches=2)
    per_shot = ["clip", "vae", "clip", "vae", "background_encoder", "style_encoder", "sketch_encoder"]
    per_batch = ["sketch_encoder", "unet", "unet", "vae"]  # 2 steps, one UNet call each, then decoding
    assert moved == per_shot + per_batch * 2
    # The sketch encoder leaves when the UNet comes; the VAE stays after decoding (its predecessor in the
    # sequence, CLIP, is gone): from the second batch on, the UNet shares the device with the VAE only.
    assert at_unet == [{"unet"}] * 2 + [{"unet", "vae"}] * 2
    assert on_device == {"unet", "vae"}


def test_cuda_graph_falls_back_on_cpu_with_one_message(shot, model, tmp_path):
    from colorize.images import read_rgba
    from colorize.provenance import settings_digest

    _manifest(shot)
    args = {"batch": 2, "temporal": "none"}
    _run(shot, model, "1001-1002", tmp_path / "eager", **args)
    summary, events, _ = _run(
        shot, model, "1001-1002", tmp_path / "graph", diffusion={"cuda_graph": True}, **args
    )
    messages = [e["text"] for e in events if e["event"] == "message" and "cuda_graph" in e["text"]]
    assert summary.exit_code == 0 and len(messages) == 1 and "needs a CUDA device" in messages[0]
    for name in ("sh001.1001.png", "sh001.1002.png"):
        assert np.array_equal(read_rgba(tmp_path / "eager" / name), read_rgba(tmp_path / "graph" / name))
    # Until a GPU run shows identical bytes, cuda_graph stays one of the settings that decide freshness.
    digest = {
        key: settings_digest(_plan(shot, model, "1001", tmp_path, diffusion={key: True})[0])
        for key in ("cuda_graph", "offload")
    }
    plain = settings_digest(_plan(shot, model, "1001", tmp_path)[0])
    assert digest["offload"] == plain != digest["cuda_graph"]


def test_warp_split_into_line_art_and_apply_parts():
    import cv2

    from colorize.regions.segment import ink_u8
    from colorize.temporal import apply_warp, line_art_warp, warp_previous

    art = [np.full((64, 96, 4), 255, np.uint8) for _ in range(2)]
    for i, a in enumerate(art):
        cv2.circle(a, (40 + 3 * i, 32), 15, (0, 0, 0, 255), 2)
    previous = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    ink_cur, ink_prev = ink_u8(art[1]), ink_u8(art[0])
    warped, occluded = warp_previous(previous, ink_cur, ink_prev)
    warp = line_art_warp(ink_cur, ink_prev)
    assert np.array_equal(apply_warp(previous, warp), warped) and np.array_equal(warp.occluded, occluded)


# ---- several devices -----------------------------------------------------------------------------------


def test_parse_devices_and_split_frames():
    assert parse_devices("cpu,cpu") == [Device("cpu", ""), Device("cpu", "")]
    for text, why in [
        ("", "give GPU indices"),
        ("0,,1", "give GPU indices"),
        ("gpu0", "not a GPU index"),
    ]:
        with pytest.raises(UsageError, match=why):
            parse_devices(text)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no GPU 0"):
            parse_devices("0")
        with pytest.raises(UsageError, match="no CUDA device"):
            parse_devices("all")
    with pytest.raises(UsageError, match="diffusion.device is 'cuda'"):
        parse_devices("cpu", diffusion_device="cuda")
    assert parse_devices("cpu", diffusion_device="cpu") == [Device("cpu", "")]
    frames = list(range(1001, 1025))
    chains = chain_starts(frames, [1001], 8)  # chains of 8: cuts at 1009 and 1017
    deps = {f: tuple(range(chains[f], f + 1)) for f in frames}
    assert [c[0] for c in split_frames(frames, deps, 3)] == [1001, 1009, 1017]
    assert [c[0] for c in split_frames(frames, deps, 2)] == [1001, 1009]  # the free cut nearest the middle
    alone = {f: (f,) for f in frames}
    assert [len(c) for c in split_frames(frames, alone, 5)] == [5, 5, 4, 5, 5]
    assert split_frames([1001, 1002], alone, 4) == [[1001], [1002]]


def test_devices_give_the_same_bytes_as_one_run(shot, model, tmp_path):
    _manifest(shot, anchor_every=2, resolution=64, batch=2, temporal="warp")
    base = ["shot", str(shot), "--engine", "diffusion", "--model", str(model), "--frames", "1001-1004"]
    one = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "two"), "--devices", "cpu,cpu", "--json"])
    assert two.exit_code == 0, two.output
    events = [json.loads(line) for line in two.stdout.splitlines()]
    assert_one_summary(events)
    assert sorted(_frames(events)) == [1001, 1002, 1003, 1004] and events[-1]["done"] == 4
    assert any(
        e["event"] == "message" and e["text"] == "cpu: frames 1001-1002; cpu: frames 1003-1004"
        for e in events
    )
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")


def test_a_dead_worker_fails_its_frames_and_the_others_finish(shot):
    from colorize.farm import shot_command

    plan, size = _plan(shot, None, "1001-1012", shot / "color", batch=2)
    stream = io.StringIO()
    summary = run_on_devices(
        plan,
        [Device("cpu", ""), Device("cpu", "")],
        Events(json_stream=stream),
        size=size,
        worker_args=shot_command(plan, shot, ["--batch", "2", "--json", "--progress", "none", "--quiet"]),
        command=fake_engines.worker_command("diesonframe"),  # killed when its batch holds 1011
    )
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert_one_summary(events)
    assert sorted(_frames(events)) == list(range(1001, 1011))
    failed = {e["frame"]: e for e in events if e["event"] == "frame_failed"}
    assert sorted(failed) == [1011, 1012]
    assert "worker on cpu was killed by signal 9" in failed[1011]["error"] and failed[1011]["exit_code"] == 70
    assert (summary.done, summary.failed, summary.exit_code) == (10, 2, 70)
    assert sorted(p.name for p in (shot / "color").glob("*.png")) == [
        f"sh001.{f}.png" for f in range(1001, 1011)
    ]


def test_interrupting_a_devices_run_stops_every_worker_with_one_summary(shot):
    import os
    import signal

    from colorize.farm import shot_command

    plan, size = _plan(shot, None, "1001-1024", shot / "color", batch=1)
    stream = io.StringIO()
    finished, interrupted_at = threading.Event(), []

    def ctrl_c_once_a_frame_is_done() -> None:  # Ctrl-C while the workers are coloring, whatever the load
        deadline = time.monotonic() + 120
        while not finished.is_set() and time.monotonic() < deadline:
            if "frame_done" in stream.getvalue():
                interrupted_at.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: it also wakes a blocked wait
                return
            time.sleep(0.02)

    # Python's own Ctrl-C handling, whatever this process inherited (a shell's background job starts with
    # SIGINT ignored, and then no Ctrl-C reaches the run at all)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=ctrl_c_once_a_frame_is_done, daemon=True)
    watcher.start()
    try:
        summary = run_on_devices(
            plan,
            [Device("cpu", ""), Device("cpu", "")],
            Events(json_stream=stream),
            size=size,
            worker_args=shot_command(plan, shot, ["--batch", "1", "--json", "--progress", "none", "--quiet"]),
            command=fake_engines.worker_command("slow"),  # 0.25 s a frame: 3 s a chunk
        )
    finally:
        finished.set()
        watcher.join()
        signal.signal(signal.SIGINT, previous)
    assert interrupted_at, "no frame was done: the run never got to the interrupt"
    assert time.monotonic() - interrupted_at[0] < 20  # stopped promptly after Ctrl-C
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert_one_summary(events)
    assert summary.exit_code == 130 and events[-1]["stopped"] == "interrupted"
    done = _frames(events)
    assert 0 < len(done) < 24 and not _frames(events, "frame_failed")  # the rest is not run, not failed
    written = sorted(int(p.name.split(".")[1]) for p in (shot / "color").glob("*.png"))
    assert written == sorted(done)  # every frame written was reported, none half-written
    assert not [p for p in (shot / "color").iterdir() if p.name.startswith(".")]


# ---- the GPU benchmark, smoke-tested on CPU -----------------------------------------------------------


def test_bench_gpu_runs_on_cpu_at_the_tiniest_sizes(model, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records = bench.main(
        ["--model", str(model), "--device", "cpu", "--work", str(tmp_path), "--frames", "3", "--width", "96",
         "--height", "64", "--resolution", "64", "--steps", "1", "--batches", "2", "--unet-calls", "1",
         "--offload", "--log", str(tmp_path / "log.jsonl")]
    )  # fmt: skip
    runs = [r for r in records if r["what"] == "run"]
    assert [(r["temporal"], r.get("offload", False)) for r in runs] == [
        ("none", False),
        ("warp", False),
        ("warp", True),
    ]
    assert all(r["done"] == 3 and r["fps"] > 0 and r["floor_fps"] >= r["fps"] for r in runs)
    unet = next(r for r in records if r["what"] == "unet")
    assert unet["call_batch"] == 4 and unet["tflop_per_call"] > 0  # batch 2 × 2 guidance branches
    assert next(r for r in records if r["what"] == "same_pixels")["equal"] is True
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == len(records) + 1  # + the model load
