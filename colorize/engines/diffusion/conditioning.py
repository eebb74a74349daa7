"""The per-shot conditioning of the v2 sampling run: what every batch of a shot reads, computed once.

For the mode `v2` (the official app with style and background enhancement on):

    ref_tokens   = tokens(reference)                                   CLIP local tokens, at its own size
    bleached     = bleach(reference, mask, threshold)                  character whitened (no background image)
    bg_tokens    = tokens(bleached)
    z_ref, z_bg  = encode(resize_bicubic(reference | bleached, latent size))
    size_emb     = size_embedding(reference_size_ratios(reference, output))
    style        = style_encoder(z_ref, ref_tokens, size_emb)          averaged over the characters
    hs_bg        = background_encoder(z_bg, ref_tokens, size_emb)      the reference's tokens as context
    context      = [ref_tokens_1 ; … ; ref_tokens_N ; bg_tokens]       split cross-attention
    blank_hints  = sketch_encoder(blank sketch)                        the unconditional sketch branch's

With a background image the background encoder reads that image, its tokens and its own size embedding
instead of the bleached reference. Mode `plain` (enhancements off) uses the references' tokens as the
context and nothing else: no split attention, no background injection, no style.
Nothing here reads files or knows about frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from .embeddings import reference_size_ratios

if TYPE_CHECKING:
    from .cuda_graph import GraphedModelCall
    from .pipeline import ColorizeDiffusionPipeline

TokenFunction = Callable[[torch.Tensor], torch.Tensor]
Mode = Literal["v2", "plain"]

# The official app's reference-mask handling: the segmentation mask is dilated with an 11×11 max-pool,
# then the reference is whitened where the mask is at least 0.5.
BLEACH_DILATION = 11
BLEACH_THRESHOLD = 0.5


def dilate_mask(mask: torch.Tensor, kernel: int = BLEACH_DILATION) -> torch.Tensor:
    """(B, 1, H, W) soft mask grown by a kernel×kernel max-pool (stride 1, same size), clamped to [0, 1]."""
    return F.max_pool2d(mask.float(), kernel_size=kernel, stride=1, padding=kernel // 2).clamp(0, 1)


def bleach(reference: torch.Tensor, mask: torch.Tensor, threshold: float = BLEACH_THRESHOLD) -> torch.Tensor:
    """The reference kept where `mask` < threshold (background), +1 (white) where it is not (the character)."""
    return torch.where(mask < threshold, reference, torch.ones_like(reference))


def resize_reference(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A [-1, 1] image batch resized for the VAE as the official app does: bicubic, no antialias, no clamp."""
    return F.interpolate(image, size=tuple(size), mode="bicubic", align_corners=False)


def size_ratios(image: torch.Tensor, output: tuple[int, int]) -> torch.Tensor:
    """(2,) float32 reference-to-output ratios (h, w) of an image batch (B, 3, h, w)."""
    height, width = image.shape[-2:]
    return torch.tensor(reference_size_ratios(height, width, *output), dtype=torch.float32)


@dataclass
class Conditioning:
    """What every step reads, computed once per shot; `steps` keeps the intermediates (parity, logs)."""

    context: torch.Tensor  # (1, T_total, C)
    background_features: list[torch.Tensor] | None
    style_vectors: list[torch.Tensor] | None
    split: bool  # split cross-attention (v2 with characters): the region masks are used
    steps: dict[str, torch.Tensor] = field(default_factory=dict)
    blank_hints: list[torch.Tensor] | None = None  # sketch hints of a blank sketch at the model input's size
    graphs: dict[tuple, GraphedModelCall] = field(default_factory=dict)  # CUDA graphs by batch shape

    @property
    def zero_context(self) -> torch.Tensor:
        """The unconditional reference branch's context: every token zero."""
        return torch.zeros_like(self.context)


def encode_references(
    model: ColorizeDiffusionPipeline,
    tokens: TokenFunction,
    characters: Sequence[torch.Tensor],
    *,
    background: torch.Tensor | None = None,
    bleach_mask: torch.Tensor | None = None,
    latent_size: tuple[int, int],
    output_size: tuple[int, int] | None = None,
    mode: Mode = "v2",
    bleach_threshold: float = BLEACH_THRESHOLD,
) -> Conditioning:
    """The per-shot conditioning (see the module docstring).

    characters: [-1, 1] reference images (1, 3, h_i, w_i), manifest order. background: a background image,
    or None to bleach the first character's reference with `bleach_mask` (1, 1, h_1, w_1), already dilated.
    latent_size: the size the references are resized to for the VAE (the model input's pixel size; the
    blank sketch of the unconditional sketch branch has it too).
    output_size: the size the size embedding compares the references with (default: latent_size).
    """
    conditioning = _encode_references(
        model,
        tokens,
        characters,
        background,
        bleach_mask,
        latent_size,
        output_size or latent_size,
        mode,
        bleach_threshold,
    )
    conditioning.blank_hints = model.encode_sketch(torch.full((1, 3, *latent_size), -1.0))
    return conditioning


def _encode_references(
    model: ColorizeDiffusionPipeline,
    tokens: TokenFunction,
    characters: Sequence[torch.Tensor],
    background: torch.Tensor | None,
    bleach_mask: torch.Tensor | None,
    latent_size: tuple[int, int],
    output_size: tuple[int, int],
    mode: Mode,
    bleach_threshold: float,
) -> Conditioning:
    steps: dict[str, torch.Tensor] = {}

    def encode(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens, latent, size embedding of one image."""
        ratios = size_ratios(image, output_size)
        return (
            tokens(image),
            model.encode_image(resize_reference(image, latent_size)),
            model.size_embedding(*ratios),
        )

    if not characters:  # the background alone: no split attention, no background injection
        if background is None:
            raise ValueError("encode_references needs a character or a background reference")
        if mode == "plain":
            return Conditioning(tokens(background), None, None, split=False, steps=steps)
        bg_tokens, z_bg, bg_emb = encode(background)
        return Conditioning(bg_tokens, None, model.style_vectors(z_bg, bg_tokens, bg_emb), split=False)

    if mode == "plain":  # the references' tokens are the whole context
        context = torch.cat([tokens(image) for image in characters], dim=1)
        return Conditioning(context, None, None, split=False, steps=steps)
    encoded = [encode(image) for image in characters]
    ref_tokens, z_ref, size_emb = encoded[0]
    steps.update(ref_tokens=ref_tokens, z_ref=z_ref, size_emb=size_emb)
    steps["size_ratios"] = size_ratios(characters[0], output_size)
    if background is not None:
        bg_tokens, z_bg, bg_emb = encode(background)
        bg_context = bg_tokens
    else:
        if bleach_mask is None:
            raise ValueError("bleaching the reference needs its mask")
        bleached = bleach(characters[0], bleach_mask, bleach_threshold)
        steps["reference_bleached"] = bleached
        bg_tokens, z_bg = tokens(bleached), model.encode_image(resize_reference(bleached, latent_size))
        # The official path with style and background enhancement and no background image: the background
        # encoder reads the reference's own tokens, not the bleached reference's.
        bg_emb, bg_context = size_emb, ref_tokens
    steps.update(bg_tokens=bg_tokens, z_bg=z_bg)
    features = model.background_features(z_bg, bg_context, bg_emb)
    styles = [model.style_vectors(z, t, emb) for t, z, emb in encoded]
    style = [torch.stack(level).mean(0) for level in zip(*styles, strict=True)]
    context = model.character_context([t for t, _, _ in encoded], bg_tokens)
    return Conditioning(context, features, style, split=True, steps=steps)
