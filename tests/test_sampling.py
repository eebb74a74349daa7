"""Sampling: schedulers as the official config sets them, the explicit loop, guidance in one batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorize.engines.diffusion.config import OFFICIAL_SCHEDULER
from colorize.engines.diffusion.sampling import (
    branch_predictor,
    branches,
    combine,
    guided_denoiser,
    make_scheduler,
    sample,
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
    seen = []
    out = sample(_oracle(scheduler, x0), x, scheduler, timesteps, callback=lambda s: seen.append(s["i"]))
    assert seen == list(range(len(timesteps)))
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


def test_guided_denoiser_runs_every_branch_of_every_frame_in_one_call():
    calls = []

    def model_call(x, t):
        calls.append((x.shape[0], t.shape))
        # branch k of the batch gets value k: cond 0, uncond_ref 1, uncond_sketch 2
        return torch.arange(3.0).repeat_interleave(2).view(6, 1, 1, 1).expand_as(x)

    predict = branch_predictor(model_call, branches(5.0, 3.0))
    denoise = guided_denoiser(predict, ref_scale=5.0, sketch_scale=3.0)
    v = denoise(torch.zeros(2, 4, 3, 3), torch.tensor(500))
    assert calls == [(6, torch.Size([6]))]
    expected = 0.5 * ((1 + 5 * (0 - 1)) + (2 + 3 * (0 - 2)))
    assert torch.allclose(v, torch.full((2, 4, 3, 3), expected))
