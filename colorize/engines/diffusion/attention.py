"""Mask-guided split cross-attention for N characters, and the decoder's foreground/background LoRA.

The context of a split layer is the tokens of reference 1..N followed by the background tokens, all with the
same token count T: shape (B, (N + 1)·T, C). Each query position is given to one *region*:

* the character k whose resized mask exceeds `mask_threshold` there; where several do (overlapping
  masks), the one with the **highest mask value** wins, ties going to the **lowest index**;
* the background where no character mask exceeds the threshold.

A character position k takes `fg_k · (1 − merge) + bg · merge`, a background position takes `bg`, with
`fg_k = fg_scale · attention(q_fg, K_k, V_k)` and `bg = bg_scale · attention(q_bg, K_bg, V_bg)`. With
LoRA on, the q/k/v projections add the foreground LoRA for the character passes and the background LoRA
for the background pass. For N = 1 this is exactly the official two-way split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn


@dataclass(frozen=True)
class SplitSettings:
    """Scalars of the split cross-attention (the official fg/bg/merge scales and mask threshold)."""

    fg_scale: float = 1.0
    bg_scale: float = 1.0
    merge_scale: float = 0.0
    mask_threshold: float = 0.05
    use_lora: bool = True


class LowRank(nn.Module):
    """`up(down(x))`, the low-rank update of one projection."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class QKVLoRA(nn.Module):
    """Low-rank updates of an attention layer's to_q, to_k and to_v."""

    def __init__(self, query_dim: int, context_dim: int, inner_dim: int, rank: int):
        super().__init__()
        self.to_q = LowRank(query_dim, inner_dim, rank)
        self.to_k = LowRank(context_dim, inner_dim, rank)
        self.to_v = LowRank(context_dim, inner_dim, rank)


class SplitLoRA(nn.Module):
    """The two LoRAs of one decoder cross-attention layer: `fg` for character passes, `bg` for background."""

    def __init__(self, query_dim: int, context_dim: int, inner_dim: int, rank_fg: int, rank_bg: int):
        super().__init__()
        self.fg = QKVLoRA(query_dim, context_dim, inner_dim, rank_fg)
        self.bg = QKVLoRA(query_dim, context_dim, inner_dim, rank_bg)


def _heads_attention(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Multi-head scaled dot-product attention on (B, L, inner) projections -> (B, Lq, inner)."""
    b = q.shape[0]
    head_dim = q.shape[-1] // attn.heads
    q, k, v = (t.view(b, -1, attn.heads, head_dim).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    return out.transpose(1, 2).reshape(b, -1, attn.heads * head_dim)


def _project(
    attn: Attention, x: torch.Tensor, context: torch.Tensor, lora: QKVLoRA | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v = attn.to_q(x), attn.to_k(context), attn.to_v(context)
    if lora is not None:
        q = q + lora.to_q(x)
        k = k + lora.to_k(context)
        v = v + lora.to_v(context)
    return q, k, v


def assign_regions(region_masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """Region of every query position: 0 = background, k = character k (1-based).

    `region_masks` (B, L, N) soft masks at the layer's token resolution. Overlaps go to the highest mask
    value, ties to the lowest character index (torch.argmax returns the first maximum).
    """
    best_index = region_masks.argmax(dim=-1, keepdim=True)
    best_value = region_masks.gather(-1, best_index)
    return torch.where(best_value > threshold, best_index + 1, torch.zeros_like(best_index)).squeeze(-1)


def _plain_attention(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Ordinary multi-head attention of the layer, no LoRA, output projection included."""
    q, k, v = _project(attn, hidden_states, context, None)
    return attn.to_out[1](attn.to_out[0](_heads_attention(attn, q, k, v)))


class SelfAttnProcessor:
    """Plain self-attention for `attn1`, and the calling convention of every processor here.

    diffusers hands a transformer block's `cross_attention_kwargs` to both of its attention layers, so the
    processors name the split-attention inputs (`region_masks`, `split`) and pass them to `attend`, which
    this one ignores, instead of letting diffusers warn.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        split: SplitSettings | None = None,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        return self.attend(attn, hidden_states, context, region_masks, split)

    def attend(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        context: torch.Tensor,
        region_masks: torch.Tensor | None,
        split: SplitSettings | None,
    ) -> torch.Tensor:
        return _plain_attention(attn, hidden_states, context)


class SplitCrossAttnProcessor(SelfAttnProcessor):
    """Cross-attention (`attn2`) with the N-character mask-guided split.

    Without `region_masks` it is ordinary cross-attention over the whole context and no LoRA (the official
    unmasked path). The LoRA weights, where the layer has them, are the attention module's `split_lora`
    child, so they live (and load) with the UNet's state dict; the processor itself holds no state.
    """

    def attend(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        context: torch.Tensor,
        region_masks: torch.Tensor | None,
        split: SplitSettings | None,
    ) -> torch.Tensor:
        if region_masks is None:
            return _plain_attention(attn, hidden_states, context)
        out = self.split_attention(attn, hidden_states, context, region_masks, split or SplitSettings())
        return attn.to_out[1](attn.to_out[0](out))

    @staticmethod
    def split_attention(
        attn: Attention,
        x: torch.Tensor,
        context: torch.Tensor,
        region_masks: torch.Tensor,
        split: SplitSettings,
    ) -> torch.Tensor:
        """The merged attention output before to_out; `region_masks` (B, Lq, N)."""
        n_chars = region_masks.shape[-1]
        if context.shape[1] % (n_chars + 1):
            raise ValueError(
                f"split cross-attention: context of {context.shape[1]} tokens cannot be cut into "
                f"{n_chars} character(s) + background of equal length"
            )
        chunks = context.chunk(n_chars + 1, dim=1)
        lora: SplitLoRA | None = getattr(attn, "split_lora", None) if split.use_lora else None
        lora_fg = lora.fg if lora is not None else None
        lora_bg = lora.bg if lora is not None else None

        bg = _heads_attention(attn, *_project(attn, x, chunks[-1], lora_bg)) * split.bg_scale
        region = assign_regions(region_masks, split.mask_threshold).unsqueeze(-1)
        out = bg
        # The query projection is the same for every character pass: compute it once.
        q_fg = attn.to_q(x) + (lora_fg.to_q(x) if lora_fg is not None else 0)
        for index in range(n_chars):
            ref = chunks[index]
            k = attn.to_k(ref) + (lora_fg.to_k(ref) if lora_fg is not None else 0)
            v = attn.to_v(ref) + (lora_fg.to_v(ref) if lora_fg is not None else 0)
            fg = _heads_attention(attn, q_fg, k, v) * split.fg_scale
            fg = fg * (1 - split.merge_scale) + bg * split.merge_scale
            out = torch.where(region == index + 1, fg, out)
        return out
