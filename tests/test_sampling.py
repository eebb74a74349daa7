"""Sampling: schedulers as the official config sets them, the explicit loop, guidance in one batch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from colorize.engines.diffusion.conditioning import Conditioning
from colorize.engines.diffusion.config import OFFICIAL_SCHEDULER
from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline
from colorize.engines.diffusion.sampling import (
    branches,
    combine,
    make_scheduler,
    set_steps,
    start_latents,
)

CONFIG = OFFICIAL_SCHEDULER
E2E_CONFIG = Path(__file__).resolve().parents[1].parent / "shared" / "parity-e2e" / "config.json"


def _oracle(scheduler, x0: torch.Tensor):
    """The exact v-prediction for data that is always x0 (works on the scheduler-scaled input)."""
    alphas = scheduler.alphas_cumprod.double().numpy()

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ac = float(np.interp(float(t), np.arange(len(alphas)), alphas))
        a, s = ac**0.5, (1 - ac) ** 0.5
        eps = (x - a * x0) / s
        return a * eps - s * x0

    return denoise


@pytest.mark.parametrize("name", ["dpmpp", "ddim", "euler"])
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_each_sampler_denoises_to_the_data(name, strength):
    x0 = torch.linspace(-1, 1, 2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    scheduler = make_scheduler(name, CONFIG)
    timesteps = set_steps(scheduler, 10, strength)
    assert len(timesteps) == (10 if strength == 1.0 else 5)
    x = start_latents(scheduler, noise, timesteps, image_latents=None if strength == 1.0 else x0 * 0.5)
    denoise = _oracle(scheduler, x0)
    for t in timesteps:  # the steps of the pipeline's batch loop, with the oracle for the model
        x = scheduler.step(denoise(scheduler.scale_model_input(x, t), t), t, x, return_dict=False)[0]
    out = x
    # "leading" spacing ends at t = 1 (steps_offset), not 0: a little noise is left.
    left = 5 * (1 - float(scheduler.alphas_cumprod[1])) ** 0.5
    assert torch.allclose(out, x0, atol=2e-2 + left), float((out - x0).abs().max())


def test_timesteps_are_leading_with_offset_one():
    """DPM-Solver++ with 20 steps: t_i = (20 − i)·⌊1000/21⌋ + 1 = 941, 894, …, 48 (linspace spacing would
    start at 999); DDIM and Euler space "leading" their own way: t_i = (19 − i)·50 + 1 = 951, …, 1."""
    timesteps = set_steps(make_scheduler("dpmpp", CONFIG), 20)
    assert [int(t) for t in timesteps] == [(20 - i) * (1000 // 21) + 1 for i in range(20)]
    for name in ("ddim", "euler"):
        timesteps = set_steps(make_scheduler(name, CONFIG), 20)
        assert [round(float(t)) for t in timesteps] == [(19 - i) * 50 + 1 for i in range(20)], name
    ddim = make_scheduler("ddim", CONFIG)
    assert ddim.config.set_alpha_to_one and float(ddim.final_alpha_cumprod) == 1.0  # as the official DDIM


def test_the_model_folder_scheduler_is_the_official_one():
    """The scheduler config a model folder gets resolves to the one the official run used."""
    if not E2E_CONFIG.is_file():
        pytest.skip("needs ../shared/parity-e2e")
    resolved = json.loads(E2E_CONFIG.read_text())["scheduler"]["resolved"]
    ours = dict(make_scheduler("dpmpp", CONFIG).config)
    differ = {k: (ours.get(k), v) for k, v in resolved.items() if str(ours.get(k)) != str(v)}
    assert differ == {}


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("plms", CONFIG)


def test_branches_and_combination():
    assert branches(1.0, 1.0) == ["cond"]
    assert branches(0.5, 0.8) == ["cond"]  # a guidance is on only above 1, as in the official sampler
    assert branches(5.0, 1.0) == ["cond", "uncond_ref"]
    assert branches(1.0, 2.0) == ["cond", "uncond_sketch"]
    assert branches(5.0, 2.0) == ["cond", "uncond_ref", "uncond_sketch"]
    c, r, s = torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.5)
    assert combine({"cond": c}, 5, 1) == c
    assert combine({"cond": c, "uncond_ref": r}, 5, 1) == 5.0
    assert combine({"cond": c, "uncond_sketch": s}, 1, 3) == 0.5 + 3 * 0.5
    # Both: the two guided predictions averaged.
    assert combine({"cond": c, "uncond_ref": r, "uncond_sketch": s}, 5, 3) == 0.5 * (5.0 + 2.0)


class _BranchModel:
    """Stands in for the pipeline's model. Its UNet tells the branches apart by what they read and returns
    cond 0, uncond_ref 1 (zero reference context), uncond_sketch 2 (blank-sketch hints); it records the batch
    of every call."""

    _execution_device = torch.device("cpu")
    scheduler = SimpleNamespace(config=CONFIG)

    def __init__(self):
        self.calls: list[int] = []
        self.unet = SimpleNamespace(dtype=torch.float32)

    def encode_sketch(self, sketch):
        return [sketch[:, :1]]

    def predict_v(self, x, t, *, context, sketch_hints, **_):
        self.calls.append(x.shape[0])
        v = 2 * (1 - sketch_hints[0][:, :, :1, :1]) + (1 - context[:, :1, :, None])
        return v.expand_as(x)

    def decode_latent(self, latents):
        return latents[:, :3]


def test_the_batch_function_runs_every_branch_of_every_padded_frame_in_one_call_per_step():
    model = _BranchModel()
    conditioning = Conditioning(
        torch.ones(1, 1, 1), None, None, split=False, blank_hints=[torch.zeros(1, 1, 8, 8)]
    )
    seen = []
    result = ColorizeDiffusionPipeline.__call__(
        model,  # type: ignore[arg-type]
        conditioning,
        sketch=torch.ones(2, 8, 8),
        noise=torch.zeros(2, 4, 8, 8),
        steps=3,
        ref_scale=5.0,
        sketch_scale=3.0,
        batch_size=4,
        callback=seen.append,
    )
    assert model.calls == [3 * 4] * 3  # 3 branches × 4 frames (2 + 2 copies), one call per step
    assert result.latents.shape == (2, 4, 8, 8) and result.images.shape == (2, 3, 8, 8)  # copies dropped
    values = {name: float(v.mean()) for name, v in seen[0]["branches"].items()}
    assert values == {"cond": 0.0, "uncond_ref": 1.0, "uncond_sketch": 2.0}
    expected = 0.5 * ((1 + 5 * (0 - 1)) + (2 + 3 * (0 - 2)))  # both guidances, averaged
    assert torch.allclose(seen[0]["v"], torch.full((4, 4, 8, 8), expected))
