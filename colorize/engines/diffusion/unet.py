"""The ColorizeDiffusion v2 denoising UNet (v-prediction), on diffusers blocks.

SD-2.x layout (diffusers names: conv_in, down_blocks, mid_block, up_blocks, conv_norm_out, conv_out) plus
the v2 additions:

* sketch hints added to the hidden state right after the input blocks that start a resolution (conv_in,
  each downsample) and after the last input block;
* split cross-attention with per-character masks in every cross-attention layer (see attention.py), with
  a fg/bg LoRA on the decoder layers (`split_lora` children of their attn2);
* background injection on every decoder skip: where no character mask exceeds `skip_threshold` the skip is
  replaced by `skip_injectors[i](skip, background_features[i])`;
* style modulation after every decoder block (`style_modulators[i]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import nn

from .attention import SelfAttnProcessor, SplitLoRA, SplitSettings
from .blocks import NORM_GROUPS, DownPath, make_resnet, make_transformer


class SkipInjector(nn.Module):
    """Background injection on one decoder skip (the official `warp_modules`): a transformer block over
    the skip's tokens attending to the background encoder's features."""

    def __init__(self, channels: int, head_channels: int = 64, mlp_ratio: int = 4):
        super().__init__()
        # The official block uses channels // 64 heads; never fewer than one head on narrow test models.
        heads = max(1, channels // head_channels)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = Attention(
            query_dim=channels,
            heads=heads,
            dim_head=channels // heads,
            bias=False,
            processor=SelfAttnProcessor(),  # type: ignore[arg-type]  # diffusers types processors loosely
        )
        self.norm2 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, channels * mlp_ratio), nn.SiLU(), nn.Linear(channels * mlp_ratio, channels)
        )

    def forward(self, skip: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        b, c, h, w = skip.shape
        x = skip.flatten(2).transpose(1, 2)
        features = features.to(x.dtype).expand(b, -1, -1)
        x = self.attn(self.norm1(x), encoder_hidden_states=features) + x
        x = self.ff(self.norm2(x)) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


class StyleModulation(nn.Module):
    """`h · (1 + scale) + shift` with `scale, shift = proj(norm(style + time_proj(temb)))`."""

    def __init__(self, channels: int, temb_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels * 2)
        self.time_proj = nn.Linear(temb_channels, channels * 2)
        self.proj = nn.Linear(channels * 2, channels * 2)

    def forward(self, h: torch.Tensor, style: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        m = style.to(h.dtype) + self.time_proj(temb)
        scale, shift = self.proj(self.norm(m))[..., None, None].chunk(2, dim=1)
        return h * (1 + scale) + shift


class MidBlock(nn.Module):
    """The middle block: resnet, transformer, resnet."""

    resnets: nn.ModuleList
    attentions: nn.ModuleList

    def __init__(self, resnets: Sequence[nn.Module], attentions: Sequence[nn.Module]):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)


class UpBlock(nn.Module):
    """One resolution level of the decoder half."""

    resnets: nn.ModuleList
    attentions: nn.ModuleList
    upsamplers: nn.ModuleList

    def __init__(
        self, resnets: Sequence[nn.Module], attentions: Sequence[nn.Module], upsampler: nn.Module | None
    ):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.upsamplers = nn.ModuleList([upsampler] if upsampler is not None else [])


def _hw(x: torch.Tensor) -> tuple[int, int]:
    """(h, w) of an (…, h, w) tensor."""
    return int(x.shape[-2]), int(x.shape[-1])


def resize_masks(
    masks: torch.Tensor, size: tuple[int, int], scale_factor: float | None = None
) -> torch.Tensor:
    """Bicubic resize of (B, N, H, W) masks; uses `scale_factor` (the official call) when it lands on `size`."""
    masks = masks.float()
    if scale_factor is not None:
        out_size = (int(masks.shape[-2] * scale_factor), int(masks.shape[-1] * scale_factor))
        if out_size == tuple(size):
            return F.interpolate(masks, scale_factor=scale_factor, mode="bicubic")
    return F.interpolate(masks, size=tuple(size), mode="bicubic")


class ColorizeUNet(ModelMixin, ConfigMixin, DownPath):  # type: ignore[misc]  # diffusers: config_name str vs None
    """The v2 UNet; the `__init__` arguments are its config (`unet/config.json` of a model folder)."""

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
        out_channels: int = 4,
        # v2 additions: background injection on decoder skips, style modulation after decoder blocks,
        # fg/bg LoRA on the decoder's cross-attention projections.
        skip_injection: bool = True,
        injector_head_channels: int = 64,
        injector_mlp_ratio: int = 4,
        style_modulation: bool = True,
        lora_rank_fg: int = 4,
        lora_rank_bg: int = 4,
        # Mask resize factor of each cross-attention layer in forward order (encoder, middle, decoder).
        # None: 1 / downsampling factor of the layer, which is what the official table encodes.
        attention_scale_factors: Sequence[float] | None = None,
    ):
        super().__init__()
        self.build_down_path(self.config)
        temb = model_channels * 4
        ch = self.out_channels
        ds = self.out_downsampling

        def transformer(width: int) -> nn.Module:
            return make_transformer(width, num_head_channels, context_dim, transformer_depth)

        self.mid_block = MidBlock(
            [make_resnet(ch, ch, temb), make_resnet(ch, ch, temb)],
            [transformer(ch)],
        )
        attention_downsampling = [*self.attention_downsampling, ds]

        skips = list(self.skip_channels)
        up_blocks, injectors, modulators = [], [], []
        for level in reversed(range(len(channel_mult))):
            out = channel_mult[level] * model_channels
            resnets, attentions = [], []
            for _ in range(num_res_blocks + 1):
                skip_ch = skips.pop()
                resnets.append(make_resnet(ch + skip_ch, out, temb))
                ch = out
                if ds in attention_resolutions:
                    attentions.append(transformer(ch))
                    attention_downsampling.append(ds)
                if skip_injection:
                    injectors.append(SkipInjector(skip_ch, injector_head_channels, injector_mlp_ratio))
                if style_modulation:
                    modulators.append(StyleModulation(ch, temb))
            upsampler = None
            if level != 0:
                upsampler = Upsample2D(ch, use_conv=True, out_channels=ch)
                ds //= 2
            up_blocks.append(UpBlock(resnets, attentions, upsampler))
        self.up_blocks = nn.ModuleList(up_blocks)
        self.skip_injectors = nn.ModuleList(injectors)
        self.style_modulators = nn.ModuleList(modulators)

        if lora_rank_fg or lora_rank_bg:
            for block in cast("list[UpBlock]", self.up_blocks):
                for transformer_model in cast("list[Transformer2DModel]", block.attentions):
                    for tb in transformer_model.transformer_blocks:
                        attn2 = cast(Attention, tb.attn2)
                        attn2.split_lora = SplitLoRA(
                            attn2.query_dim,
                            attn2.cross_attention_dim,
                            attn2.inner_dim,
                            lora_rank_fg,
                            lora_rank_bg,
                        )

        self.conv_norm_out = nn.GroupNorm(NORM_GROUPS, model_channels, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(model_channels, out_channels, 3, padding=1)

        # Sketch hints land after conv_in, after every downsample and after the last input block.
        last = len(self.skip_channels) - 1
        self.hint_indices = [0, *self.downsample_indices, last]
        if attention_scale_factors is not None:
            if len(attention_scale_factors) != len(attention_downsampling):
                raise ValueError(
                    f"attention_scale_factors has {len(attention_scale_factors)} entries but the UNet has "
                    f"{len(attention_downsampling)} cross-attention layers"
                )
            self.attention_scale_factors = [float(f) for f in attention_scale_factors]
        else:
            self.attention_scale_factors = [1.0 / d for d in attention_downsampling]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        *,
        sketch_hints: list[torch.Tensor] | None = None,
        region_masks: torch.Tensor | None = None,
        split: SplitSettings | None = None,
        background_features: list[torch.Tensor] | None = None,
        skip_threshold: float | None = None,
        style_vectors: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Predict v for `sample` (B, C, h, w) at `timestep`.

        context: (B, T, C) tokens; with `region_masks` (B, N, h, w) it is N references + background,
            (B, (N+1)·T, C), and every cross-attention layer splits it (attention.py).
        sketch_hints: the sketch encoder's hints, already multiplied by the control scale.
        background_features / skip_threshold: the background encoder's token maps (decoder order, already
            multiplied by the mask scale) and the skip-injection threshold; need `region_masks`.
        style_vectors: the style encoder's vectors (decoder order).
        """
        b = sample.shape[0]
        temb = self.time_embed(timestep, b)
        context = context.to(self.dtype)
        if sketch_hints is not None and len(sketch_hints) != len(self.hint_indices):
            raise ValueError(f"expected {len(self.hint_indices)} sketch hints, got {len(sketch_hints)}")

        def attention_kwargs(layer: int, h: torch.Tensor) -> dict | None:
            if region_masks is None:
                return None
            resized = resize_masks(region_masks, _hw(h), self.attention_scale_factors[layer])
            return {"region_masks": resized.flatten(2).transpose(1, 2), "split": split or SplitSettings()}

        def add_hint(index: int, h: torch.Tensor) -> torch.Tensor:
            if sketch_hints is None or index not in self.hint_indices:
                return h
            return h + sketch_hints[self.hint_indices.index(index)].to(h.dtype)

        skips = self.run(sample.to(self.dtype), temb, context, attention_kwargs, add_hint)
        h = skips[-1]

        layer = self.num_attention_layers
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](
            h,
            encoder_hidden_states=context,
            cross_attention_kwargs=attention_kwargs(layer, h),
            return_dict=False,
        )[0]
        h = self.mid_block.resnets[1](h, temb)
        layer += 1

        k = 0  # decoder block index (official output_blocks index)
        for block in cast("list[UpBlock]", self.up_blocks):
            for i, resnet in enumerate(block.resnets):
                skip = skips.pop()
                if (
                    region_masks is not None
                    and skip_threshold is not None
                    and background_features is not None
                ):
                    keep = resize_masks(region_masks, _hw(skip)).amax(dim=1, keepdim=True) > skip_threshold
                    skip = torch.where(keep, skip, self.skip_injectors[k](skip, background_features[k]))
                h = resnet(torch.cat([h, skip], dim=1), temb)
                if len(block.attentions):
                    h = block.attentions[i](
                        h,
                        encoder_hidden_states=context,
                        cross_attention_kwargs=attention_kwargs(layer, h),
                        return_dict=False,
                    )[0]
                    layer += 1
                if i == len(block.resnets) - 1:
                    for up in block.upsamplers:
                        h = up(h, output_size=tuple(skips[-1].shape[-2:]))
                if style_vectors is not None:
                    h = self.style_modulators[k](h, style_vectors[k], temb)
                k += 1

        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return h.to(sample.dtype)
