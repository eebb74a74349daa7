"""`ColorizeDiffusionModel`: the v2 modules together, with one function per thing a sampler needs.

Per reference (compute once per shot, reuse at every step):
    tokens = model.reference_tokens(image)                     # CLIP local tokens (needs `clip`)
    size = model.size_embedding(*reference_size_ratios(...))
    hs_bg = model.background_features(z_bleached, tokens, size)
    style = model.style_vectors(z_ref, tokens, size)
Per frame batch:
    hints = model.encode_sketch(sketches)
Per step:
    v = model.predict_v(x, t, context=..., sketch_hints=hints, region_masks=..., background_features=hs_bg,
                        style_vectors=style, settings=settings)

For N characters, `character_context([tokens_1, ..., tokens_N], background_tokens)` builds the split
context and `region_masks` is (B, N, h, w); N = 1 is the official v2 forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention import SplitSettings
from .config import ModelConfig, Settings
from .embeddings import size_embedding
from .encoders import ReferenceEncoder
from .reference import ClipReferenceEncoder
from .sketch_encoder import SketchEncoder
from .unet import ColorizeUNet
from .vae import build_vae, decode, posterior_mean

COMPONENTS = ("unet", "sketch_encoder", "background_encoder", "style_encoder", "vae")


class ColorizeDiffusionModel(nn.Module):
    """UNet, sketch encoder, background and style encoders, VAE and (optionally) the CLIP encoder."""

    def __init__(self, config: ModelConfig, clip: ClipReferenceEncoder | None = None):
        super().__init__()
        self.config = config
        self.unet = ColorizeUNet(config.unet)
        self.sketch_encoder = SketchEncoder(config.sketch_encoder)
        self.background_encoder = ReferenceEncoder(config.background_encoder)
        self.style_encoder = ReferenceEncoder(config.style_encoder)
        self.vae = build_vae(config.vae)
        self.clip = clip
        # Non-standard training betas, if the checkpoint had them (None: the config's scaled-linear schedule).
        self.trained_betas: list[float] | None = None

    @classmethod
    def from_state_dicts(
        cls,
        config: ModelConfig,
        state: dict[str, dict[str, torch.Tensor]],
        *,
        dtype: torch.dtype | None = None,
        clip: ClipReferenceEncoder | None = None,
        trained_betas: list[float] | None = None,
    ) -> ColorizeDiffusionModel:
        """Build without random init (meta tensors) and take the given weights as they are."""
        with torch.device("meta"):
            model = cls(config)
        for name in COMPONENTS:
            weights = state[name]
            if dtype is not None:
                weights = {k: v.to(dtype) for k, v in weights.items()}
            getattr(model, name).load_state_dict(weights, strict=True, assign=True)
        leftover = [n for n, p in model.named_parameters() if p.is_meta]
        if leftover:  # a bug: every parameter must come from the state dicts
            raise RuntimeError(f"parameters left unset: {leftover[:4]}")
        model.clip = clip
        model.trained_betas = trained_betas
        return model.eval().requires_grad_(False)

    # ---- per reference ---------------------------------------------------------------------------------
    def reference_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP local tokens of [-1, 1] reference images (B, T, context_dim)."""
        if self.clip is None:
            raise RuntimeError("this model has no CLIP encoder: convert with --clip or pass tokens directly")
        return self.clip(images)

    def size_embedding(self, ratio_h: float | torch.Tensor, ratio_w: float | torch.Tensor) -> torch.Tensor:
        """Size embedding (B, adm_in_channels) of reference-to-output ratios."""
        return size_embedding(ratio_h, ratio_w, self.config.size_embed_dim).to(self.unet.dtype)

    def background_features(
        self, latent: torch.Tensor, tokens: torch.Tensor, size_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """Background encoder token maps (decoder order, before the mask scale)."""
        return self.background_encoder(latent, tokens, size_emb, timestep=0)

    def style_vectors(
        self, latent: torch.Tensor, tokens: torch.Tensor, size_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """Style encoder vectors (decoder order)."""
        return self.style_encoder(latent, tokens, size_emb, timestep=0)

    @staticmethod
    def character_context(
        reference_tokens: Sequence[torch.Tensor], background_tokens: torch.Tensor
    ) -> torch.Tensor:
        """Split-attention context: the N references' tokens then the background's, (B, (N+1)·T, C)."""
        lengths = {t.shape[1] for t in [*reference_tokens, background_tokens]}
        if len(lengths) != 1:
            raise ValueError(f"all token sets must have the same length, got {sorted(lengths)}")
        return torch.cat([*reference_tokens, background_tokens], dim=1)

    # ---- per frame -------------------------------------------------------------------------------------
    def encode_sketch(self, sketch: torch.Tensor) -> list[torch.Tensor]:
        """Sketch hints of an inverted [-1, 1] sketch batch (before the control scale)."""
        return self.sketch_encoder(sketch)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Scaled latent (posterior mean × scaling factor) of [-1, 1] images."""
        return posterior_mean(self.vae, image) * self.config.vae.scaling_factor

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images from scaled latents."""
        return decode(self.vae, latent / self.config.vae.scaling_factor)

    # ---- per step --------------------------------------------------------------------------------------
    def predict_v(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        *,
        context: torch.Tensor,
        sketch_hints: list[torch.Tensor] | None = None,
        region_masks: torch.Tensor | None = None,
        background_features: list[torch.Tensor] | None = None,
        style_vectors: list[torch.Tensor] | None = None,
        settings: Settings | None = None,
        use_lora: bool | None = None,
    ) -> torch.Tensor:
        """The UNet's v-prediction, applying the control and mask scales of `settings`.

        region_masks (B, N, h, w) switches on the split cross-attention (context = N references +
        background) and, with background_features, the skip injection. LoRA is on when background
        features are given (as in the official app), unless `use_lora` says otherwise.
        """
        s = settings or self.config.settings
        hints = [h * s.control_scale for h in sketch_hints] if sketch_hints is not None else None
        features = (
            [f * s.mask_scale for f in background_features] if background_features is not None else None
        )
        lora = (features is not None) if use_lora is None else use_lora
        split = SplitSettings(s.fg_scale, s.bg_scale, s.merge_scale, s.mask_threshold, use_lora=lora)
        return self.unet(
            sample,
            timestep,
            context,
            sketch_hints=hints,
            region_masks=region_masks,
            split=split,
            background_features=features,
            skip_threshold=s.threshold if region_masks is not None else None,
            style_vectors=style_vectors,
        )

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, **conditions) -> torch.Tensor:
        """Same as `predict_v`."""
        return self.predict_v(sample, timestep, **conditions)
