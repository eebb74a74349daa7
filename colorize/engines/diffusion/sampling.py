"""Sampling: diffusers schedulers as plain functions, and the guidance rule. The denoising loop that
drives them is the pipeline's batch function (`ColorizeDiffusionPipeline.__call__`):

    scheduler = make_scheduler("dpmpp", pipe.scheduler.config)
    timesteps = set_steps(scheduler, steps=20, strength=1.0)
    x = start_latents(scheduler, noise, timesteps)            # or start_latents(..., image_latents=z0)
    for t in timesteps: x = scheduler.step(combine(v_per_branch(x, t), ...), t, x)

Every scheduler is built with diffusers' `from_config` from the model folder's
`scheduler/scheduler_config.json`, which holds the fields the official `configs/scheduler_cfgs/dpm.yaml`
sets (scaled-linear betas, `timestep_spacing: leading`, `steps_offset: 1`) and v-prediction. The official
DDIM config leaves `set_alpha_to_one` at diffusers' default (true); so does ours.

The guidance branches of every frame run as one UNet batch, in the official order

    branches = ["cond"] + ["uncond_ref"] (ref_scale > 1) + ["uncond_sketch"] (sketch_scale > 1)

(a guidance is on when its scale is greater than 1: `branches`, the one rule for the sampler and the GPU
memory estimate), the unconditional reference branch reading a zero
reference context and the unconditional sketch branch a blank sketch; `combine` guides: with both on, the
two guided predictions are averaged, as in the official sampler: v = ½(v_r + r·(v_c − v_r)) + ½(v_s + s·(v_c − v_s)).
"""

from __future__ import annotations

from typing import Any

import torch

SAMPLERS = ("dpmpp", "ddim", "euler")

# A diffusers scheduler: the SchedulerMixin classes share set_timesteps / step / add_noise / scale_model_input
# and init_noise_sigma by convention, not through a typed interface.
Scheduler = Any


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
