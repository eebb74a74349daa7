"""Sampling: diffusers schedulers driven by an explicit denoising loop (k-diffusion style functions).

    scheduler = make_scheduler("dpmpp", model.scheduler_config)
    timesteps = set_steps(scheduler, steps=20, strength=1.0)
    x = start_latents(scheduler, noise, timesteps)            # or start_latents(..., image_latents=z0)
    x = sample(denoise, x, scheduler, timesteps, callback=..., disable=True)

Every scheduler is built with diffusers' `from_config` from the model folder's
`scheduler/scheduler_config.json`, which holds the fields the official `configs/scheduler_cfgs/dpm.yaml`
sets (scaled-linear betas, `timestep_spacing: leading`, `steps_offset: 1`) and v-prediction. The official
DDIM config leaves `set_alpha_to_one` at diffusers' default (true); so does ours.

`denoise(x, t)` returns the guided v-prediction. `branch_predictor` runs the guidance branches of every
frame as one UNet batch, in the official order

    branches = ["cond"] + ["uncond_ref"] (ref_scale > 1) + ["uncond_sketch"] (sketch_scale > 1)

(a guidance is on when its scale is greater than 1), the unconditional reference branch reading a zero
reference context and the unconditional sketch branch a blank sketch; `combine` guides: with both on, the
two guided predictions are averaged, as in the official sampler: v = ½(v_r + r·(v_c − v_r)) + ½(v_s + s·(v_c − v_s)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SAMPLERS = ("dpmpp", "ddim", "euler")

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A diffusers scheduler: the SchedulerMixin classes share set_timesteps / step / add_noise / scale_model_input
# and init_noise_sigma by convention, not through a typed interface.
Scheduler = Any
BranchPredictor = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def make_scheduler(name: str, config: dict[str, Any]) -> Scheduler:
    """A fresh diffusers scheduler (they keep per-run state) from the model folder's scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if name == "dpmpp":  # DPM-Solver++ 2M, the official default sampler
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "ddim":
        return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=True)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise ValueError(f"unknown sampler {name!r} (one of {', '.join(SAMPLERS)})")


def set_steps(scheduler: Scheduler, steps: int, strength: float = 1.0) -> torch.Tensor:
    """Timesteps to run: all `steps`, or the last `strength` fraction of them (img2img)."""
    scheduler.set_timesteps(steps)
    start = min(steps - 1, int(round(steps * (1.0 - strength)))) if strength < 1.0 else 0
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def start_latents(
    scheduler: Scheduler,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    image_latents: torch.Tensor | None = None,
) -> torch.Tensor:
    """Initial latents: pure noise (scaled by the scheduler), or `image_latents` noised to the first step."""
    if image_latents is None:
        return noise * scheduler.init_noise_sigma
    t = timesteps[:1].repeat(noise.shape[0])
    return scheduler.add_noise(image_latents, noise, t)


@torch.no_grad()
def sample(
    denoise: Denoiser,
    latents: torch.Tensor,
    scheduler: Scheduler,
    timesteps: torch.Tensor,
    *,
    callback: Callable[[dict[str, Any]], None] | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """The denoising loop. `callback` gets {i, t, x, v} after every step; `disable` hides the progress bar.

    `timesteps` stay on the CPU (where diffusers' schedulers keep their sigmas); the loop makes no
    synchronising call (`.item()`, `.cpu()`, a tensor in an `if`) on the latents' device.
    """
    from tqdm.auto import tqdm

    x = latents
    # The scheduler's arithmetic reads t on the CPU; the model gets the same steps on its device, copied
    # once here: nothing in the loop waits for the device.
    model_steps = timesteps.to(latents.device)
    for i, t in enumerate(tqdm(timesteps, disable=disable, desc="denoise")):
        model_input = scheduler.scale_model_input(x, t)
        v = denoise(model_input, model_steps[i])
        x = scheduler.step(v, t, x, return_dict=False)[0]
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "v": v})
    return x


def branches(ref_scale: float, sketch_scale: float) -> list[str]:
    """Guidance branches that run: a guidance is on when its scale is greater than 1."""
    out = ["cond"]
    if ref_scale > 1.0:
        out.append("uncond_ref")
    if sketch_scale > 1.0:
        out.append("uncond_sketch")
    return out


def combine(v: dict[str, torch.Tensor], ref_scale: float, sketch_scale: float) -> torch.Tensor:
    """Guided v from the branches' predictions (see the module docstring)."""
    c = v["cond"]
    guided = []
    if "uncond_ref" in v:
        guided.append(v["uncond_ref"] + ref_scale * (c - v["uncond_ref"]))
    if "uncond_sketch" in v:
        guided.append(v["uncond_sketch"] + sketch_scale * (c - v["uncond_sketch"]))
    if not guided:
        return c
    return guided[0] if len(guided) == 1 else 0.5 * (guided[0] + guided[1])


def branch_predictor(
    model_call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], names: list[str]
) -> BranchPredictor:
    """`predict(x, t)` -> {branch: v}: one `model_call(x_all, t_all)` whose batch is `names` × frames."""

    def predict(x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        x_all = x.repeat(len(names), 1, 1, 1)
        t_all = t.reshape(1).to(x.device).expand(x_all.shape[0])
        return dict(zip(names, model_call(x_all, t_all).chunk(len(names)), strict=True))

    return predict


def guided_denoiser(predict: BranchPredictor, ref_scale: float, sketch_scale: float) -> Denoiser:
    """The guided v of `predict`'s branches."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return combine(predict(x, t), ref_scale, sketch_scale)

    return denoise
