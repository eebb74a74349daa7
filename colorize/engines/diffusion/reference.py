"""CLIP reference tokens: what the UNet's cross-attention and the reference encoders read.

The official encoder is OpenCLIP ViT-H/14 with output "full": the final LayerNorm and the projection
applied to every token; v2 keeps tokens 1..256 (the local tokens). In transformers terms:
`visual_projection(post_layernorm(last_hidden_state))[:, 1:]`. The model is read from a local
transformers folder only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from colorize.errors import MissingInputError, ModelError

from .config import ClipConfig


class ClipReferenceEncoder(nn.Module):
    """Wraps a `CLIPVisionModelWithProjection`; `forward(images)` gives the local tokens (B, 256, proj)."""

    def __init__(self, vision_model: nn.Module, config: ClipConfig | None = None):
        super().__init__()
        self.model = vision_model
        self.config = config or ClipConfig(image_size=vision_model.config.image_size)
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.std).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_folder(cls, folder: str | Path, config: ClipConfig | None = None) -> ClipReferenceEncoder:
        """Load from a local transformers folder (never from a hub)."""
        from transformers import CLIPVisionModelWithProjection
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a batch tool's logs are not a terminal
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MissingInputError(f"{folder}: no CLIP vision model here (config.json missing)")
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelError(f"{folder}: cannot load the CLIP vision model ({error})") from None
        return cls(model.eval(), config)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images of any size -> CLIP input: bicubic to a square (aspect not kept), CLIP mean/std."""
        size = self.config.image_size
        x = F.interpolate(images.float(), (size, size), mode="bicubic", align_corners=True, antialias=True)
        x = (x + 1.0) / 2.0
        return ((x - self.mean) / self.std).to(self.model.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Local tokens of [-1, 1] images (B, 3, H, W): (B, n_patches, projection_dim)."""
        hidden = self.model.vision_model(pixel_values=self.preprocess(images)).last_hidden_state
        tokens = self.model.visual_projection(self.model.vision_model.post_layernorm(hidden))
        return tokens[:, 1:]
