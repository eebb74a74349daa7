"""Background and style encoders: the UNet's encoder half, conditioned on a reference's CLIP tokens and size.

Both read a reference latent (timestep 0), take `y` = the size embedding through `class_embedding`, and
emit one output per input block, returned in decoder order (index i feeds decoder block i):

* background encoder (`style_modulation=False`): a 1x1 conv per block, token maps (B, h·w, ch);
* style encoder (`style_modulation=True`): a linear layer on the spatial mean per block, vectors
  (B, 2·ch_i) where ch_i is the width of decoder block i (scale and shift of its modulation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .blocks import DownPath


def decoder_channels(model_channels: int, channel_mult: Sequence[int], num_res_blocks: int) -> list[int]:
    """Output width of each decoder block, in decoder order."""
    return [m * model_channels for m in reversed(channel_mult) for _ in range(num_res_blocks + 1)]


class ReferenceEncoder(ModelMixin, ConfigMixin, DownPath):  # type: ignore[misc]  # diffusers: config_name str vs None
    """Background (`style_modulation=False`) or style encoder; `__init__` arguments are its config."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        model_channels: int = 320,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_head_channels: int = 64,
        transformer_depth: int = 1,
        context_dim: int = 1024,
        adm_in_channels: int = 512,
        style_modulation: bool = False,
    ):
        super().__init__()
        self.build_down_path(self.config)
        self.class_embedding = TimestepEmbedding(adm_in_channels, model_channels * 4)
        if style_modulation:
            widths = decoder_channels(model_channels, list(channel_mult), num_res_blocks)
            # input block j feeds decoder block (n-1-j): its head emits that block's scale and shift
            heads: list[nn.Module] = [
                nn.Linear(ch, 2 * widths[len(widths) - 1 - j]) for j, ch in enumerate(self.skip_channels)
            ]
        else:
            heads = [nn.Conv2d(ch, ch, 1) for ch in self.skip_channels]
        self.heads = nn.ModuleList(heads)

    def forward(
        self,
        latent: torch.Tensor,
        context: torch.Tensor,
        size_embedding: torch.Tensor,
        timestep: torch.Tensor | int = 0,
    ) -> list[torch.Tensor]:
        """Outputs of every input block's head, in decoder order."""
        b = latent.shape[0]
        temb = self.time_embed(timestep, b)
        temb = temb + self.class_embedding(size_embedding.to(self.dtype).expand(b, -1))
        hidden = self.run(latent.to(self.dtype), temb, context.to(self.dtype))
        outputs = []
        for head, h in zip(self.heads, hidden, strict=True):
            if self.config["style_modulation"]:
                outputs.append(head(h.mean(dim=(2, 3))))
            else:
                outputs.append(head(h).flatten(2).transpose(1, 2))
        outputs.reverse()
        return outputs
