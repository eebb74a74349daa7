"""The size embedding that conditions the background and style encoders."""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_timestep_embedding


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """`[cos(v·f), sin(v·f)]`, f_i = exp(-ln(10000)·i/half): the official timestep embedding, for floats."""
    return get_timestep_embedding(
        values.float().reshape(-1), dim, flip_sin_to_cos=True, downscale_freq_shift=0
    )


def size_embedding(ratio_h: float | torch.Tensor, ratio_w: float | torch.Tensor, dim: int) -> torch.Tensor:
    """(B, 2·dim): embeddings of the reference-to-output height and width ratios, concatenated."""
    rh = torch.as_tensor(ratio_h, dtype=torch.float32).reshape(-1)
    rw = torch.as_tensor(ratio_w, dtype=torch.float32).reshape(-1)
    return torch.cat([sinusoidal_embedding(rh, dim), sinusoidal_embedding(rw, dim)], dim=1)


def reference_size_ratios(ref_height: int, ref_width: int, height: int, width: int) -> tuple[float, float]:
    """Official ratios of a reference of ref_height×ref_width to an output of height×width.

    A reference smaller than the output on either side is first treated as enlarged by max(height, width)
    (keeping its aspect), which the official code does to avoid quality loss from small references.
    """
    if ref_height < height or ref_width < width:
        grow = max(height, width)
        ih = ref_height + grow
        iw = ref_width / ref_height * ih
    else:
        ih, iw = ref_height, ref_width
    return ih / height, iw / width
