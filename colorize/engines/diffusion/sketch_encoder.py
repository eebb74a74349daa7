"""The additive sketch encoder: its hints are added to the UNet's hidden state (see unet.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SketchEncoder(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers: config_name str vs None
    """A strided conv stem down to latent resolution, then one level per `channel_mult` entry.

    Hints: a 1x1 conv of the stem output, then a 1x1 conv of each level's output (every level halves the
    resolution except the last), so len(channel_mult) + 1 hints, matching the UNet's hint positions.
    The input is the sketch as the model sees it: inverted (lines bright), in [-1, 1].
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        model_channels: int = 320,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        # (out_channels, stride) of each stem conv before the final conv to model_channels; SiLU between all.
        stem_layers: Sequence[Sequence[int]] = (
            (16, 1),
            (16, 1),
            (32, 2),
            (32, 1),
            (96, 2),
            (96, 1),
            (256, 2),
        ),
    ):
        super().__init__()
        widths = [m * model_channels for m in channel_mult]
        layers: list[nn.Module] = []
        prev = in_channels
        for out, stride in stem_layers:
            layers += [nn.Conv2d(prev, out, 3, stride=stride, padding=1), nn.SiLU()]
            prev = out
        layers.append(nn.Conv2d(prev, widths[0], 3, padding=1))
        self.stem = nn.Sequential(*layers)
        hint_convs = [nn.Conv2d(widths[0], widths[0], 1)]
        levels = []
        prev = widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == len(widths) - 1 else 2
            levels.append(
                nn.Sequential(
                    nn.SiLU(),
                    nn.Conv2d(prev, width, 3, stride=stride, padding=1),
                    nn.SiLU(),
                    nn.Conv2d(width, width, 3, padding=1),
                )
            )
            hint_convs.append(nn.Conv2d(width, width, 1))
            prev = width
        self.levels = nn.ModuleList(levels)
        self.hint_convs = nn.ModuleList(hint_convs)

    def forward(self, sketch: torch.Tensor) -> list[torch.Tensor]:
        """Hints (not yet multiplied by the control scale)."""
        x = self.stem(sketch.to(self.dtype))
        hints = [self.hint_convs[0](x)]
        for level, conv in zip(self.levels, self.hint_convs[1:], strict=True):
            x = level(x)
            hints.append(conv(x))
        return hints
