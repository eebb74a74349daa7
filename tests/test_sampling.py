"""Sampling: schedulers, the explicit loop, and reference/sketch guidance in one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.engines.diffusion.sampling import (
    branches,
    combine,
    guided_denoiser,
    make_scheduler,
    sample,
    set_steps,
    start_latents,
)

CONFIG = {
    "_class_name": "DDPMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


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
    # DDIM ends at alphas_cumprod[0] < 1 (set_alpha_to_one False, as trained): a little noise is left.
    left = 5 * (1 - float(scheduler.alphas_cumprod[0])) ** 0.5 if name == "ddim" else 0.0
    assert torch.allclose(out, x0, atol=2e-2 + left), float((out - x0).abs().max())


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("plms", CONFIG)


def test_branches_and_combination():
    assert branches(1.0, 1.0) == ["cond"]
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

    denoise = guided_denoiser(model_call, ref_scale=5.0, sketch_scale=3.0)
    v = denoise(torch.zeros(2, 4, 3, 3), torch.tensor(500))
    assert calls == [(6, torch.Size([6]))]
    expected = 0.5 * ((1 + 5 * (0 - 1)) + (2 + 3 * (0 - 2)))
    assert torch.allclose(v, torch.full((2, 4, 3, 3), expected))
