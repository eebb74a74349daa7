"""The KL autoencoder, as a diffusers `AutoencoderKL` built from `VAEConfig`."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from .config import VAEConfig


def build_vae(config: VAEConfig) -> AutoencoderKL:
    """An AutoencoderKL with the official LDM autoencoder's sizes."""
    return AutoencoderKL(**config.diffusers_config())


def posterior_mean(vae: AutoencoderKL, image: torch.Tensor) -> torch.Tensor:
    """Unscaled posterior mean of `image` (B, 3, H, W) in [-1, 1]."""
    return vae.encode(image.to(vae.dtype)).latent_dist.mean


def decode(vae: AutoencoderKL, latent: torch.Tensor) -> torch.Tensor:
    """Image in [-1, 1] from an unscaled latent."""
    return vae.decode(latent.to(vae.dtype)).sample
