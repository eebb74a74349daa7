"""Building blocks shared by the UNet and the background/style encoders (diffusers modules, SD-2.x layout).

The official UNet is a flat list of "input blocks" (conv_in, then per level: res[+attn] × n, downsample);
here they are grouped the diffusers way (`conv_in`, `down_blocks[level].resnets/attentions/downsamplers`)
and `DownPath.iter_input_blocks` walks them in the official order, so callers can act after each one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from .attention import SelfAttnProcessor, SplitCrossAttnProcessor

# GroupNorm eps of the official ResBlocks (GroupNorm32 default); the transformers' own GroupNorm uses 1e-6.
RESNET_EPS = 1e-5
NORM_GROUPS = 32  # GroupNorm groups everywhere in the official model


def make_resnet(in_channels: int, out_channels: int, temb_channels: int) -> ResnetBlock2D:
    """Official ResBlock: GN-SiLU-conv, + Linear(SiLU(emb)), GN-SiLU-conv, + 1x1 skip when widths differ."""
    return ResnetBlock2D(
        in_channels=in_channels,
        out_channels=out_channels,
        temb_channels=temb_channels,
        groups=NORM_GROUPS,
        eps=RESNET_EPS,
    )


def make_transformer(channels: int, head_channels: int, context_dim: int, depth: int) -> Transformer2DModel:
    """Official SpatialTransformer (conv proj_in/out, GEGLU feed-forward), with our attention processors."""
    transformer = Transformer2DModel(
        num_attention_heads=channels // head_channels,
        attention_head_dim=head_channels,
        in_channels=channels,
        num_layers=depth,
        norm_num_groups=NORM_GROUPS,
        cross_attention_dim=context_dim,
        use_linear_projection=False,
    )
    for block in transformer.transformer_blocks:
        block.attn1.set_processor(SelfAttnProcessor())
        block.attn2.set_processor(SplitCrossAttnProcessor())
    return transformer


def make_time_embedding(model_channels: int) -> tuple[Timesteps, TimestepEmbedding]:
    # flip_sin_to_cos + shift 0 is the official [cos, sin] embedding with f_i = exp(-ln(1e4)·i/half).
    return Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0), TimestepEmbedding(
        model_channels, model_channels * 4
    )


class DownBlock(nn.Module):
    """One resolution level of the encoder half."""

    resnets: nn.ModuleList
    attentions: nn.ModuleList
    downsamplers: nn.ModuleList

    def __init__(
        self, resnets: Sequence[nn.Module], attentions: Sequence[nn.Module], downsampler: nn.Module | None
    ):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.downsamplers = nn.ModuleList([downsampler] if downsampler is not None else [])


class DownPath:
    """Timestep embedding, conv_in and down_blocks, as in the UNet's encoder half: a mixin for the UNet and the
    reference encoders.

    `build_down_path(self.config)` (from the component's `__init__`, after `super().__init__()`) creates the modules
    and sets `skip_channels` (output width of every input block, official order), `attention_downsampling`
    (downsampling factor of every attention layer, in order), `downsample_indices` (input-block index of each
    downsample), `out_channels` and `out_downsampling`.
    """

    time_proj: Timesteps
    time_embedding: TimestepEmbedding
    conv_in: nn.Conv2d
    down_blocks: nn.ModuleList

    def build_down_path(self, config: Any) -> None:
        """Create the timestep embedding, conv_in and down_blocks from a component config (the fields of
        `config.V2_DOWN_PATH`)."""
        in_channels, model_channels = config.in_channels, config.model_channels
        channel_mult, num_res_blocks = list(config.channel_mult), config.num_res_blocks
        attention_resolutions = list(config.attention_resolutions)
        num_head_channels, context_dim = config.num_head_channels, config.context_dim
        transformer_depth = config.transformer_depth
        temb = model_channels * 4
        self.time_proj, self.time_embedding = make_time_embedding(model_channels)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.skip_channels = [model_channels]
        self.attention_downsampling: list[int] = []
        self.downsample_indices: list[int] = []
        blocks = []
        ch, ds = model_channels, 1
        for level, mult in enumerate(channel_mult):
            resnets, attentions = [], []
            for _ in range(num_res_blocks):
                resnets.append(make_resnet(ch, mult * model_channels, temb))
                ch = mult * model_channels
                if ds in attention_resolutions:
                    attentions.append(make_transformer(ch, num_head_channels, context_dim, transformer_depth))
                    self.attention_downsampling.append(ds)
                self.skip_channels.append(ch)
            downsampler = None
            if level != len(channel_mult) - 1:
                # name="op" keeps the official conv as `.conv`; padding 1, stride 2.
                downsampler = Downsample2D(ch, use_conv=True, out_channels=ch, padding=1, name="op")
                self.downsample_indices.append(len(self.skip_channels))
                self.skip_channels.append(ch)
                ds *= 2
            blocks.append(DownBlock(resnets, attentions, downsampler))
        self.down_blocks = nn.ModuleList(blocks)
        self.out_channels = ch
        self.out_downsampling = ds

    def time_embed(self, timestep: torch.Tensor | int, batch: int) -> torch.Tensor:
        """Timestep embedding (batch, 4·model_channels) of a scalar or per-sample timestep."""
        weight = self.conv_in.weight
        t = torch.as_tensor(timestep, device=weight.device).reshape(-1).expand(batch)
        return self.time_embedding(self.time_proj(t).to(weight.dtype))

    def run(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor | None,
        attention_kwargs: Callable[[int, torch.Tensor], dict[str, Any] | None] | None = None,
        after_block: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Run the input blocks in the official order; return the hidden state after each one.

        `attention_kwargs(layer_index, hidden)` gives the cross-attention kwargs of attention layer
        `layer_index` (0 = first layer of this path) or None; `after_block(block_index, hidden)` may change
        the hidden state after each input block (the UNet adds the sketch hints there).
        """
        outputs: list[torch.Tensor] = []

        def finish(h: torch.Tensor) -> torch.Tensor:
            if after_block is not None:
                h = after_block(len(outputs), h)
            outputs.append(h)
            return h

        h = finish(self.conv_in(x))
        layer = 0
        for block in cast("list[DownBlock]", self.down_blocks):
            for i, resnet in enumerate(block.resnets):
                h = resnet(h, temb)
                if len(block.attentions):
                    kwargs = attention_kwargs(layer, h) if attention_kwargs else None
                    h = block.attentions[i](
                        h, encoder_hidden_states=context, cross_attention_kwargs=kwargs, return_dict=False
                    )[0]
                    layer += 1
                h = finish(h)
            for down in block.downsamplers:
                h = finish(down(h))
        return outputs

    @property
    def num_attention_layers(self) -> int:
        """Cross-attention layers of the encoder half."""
        return len(self.attention_downsampling)
