"""Configurations of the ColorizeDiffusion v2 modules.

Every size of every module comes from these dataclasses. `ModelConfig.from_official` maps the official
configuration (the fixture's `config.json`, or the official `configs/inference/v2.yaml`) onto them, and
`ModelConfig.v2()` is the released model's configuration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from colorize.errors import MissingInputError, ModelError


def _pick(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Keep the keys `cls` knows; an unknown key is an error so that typos never pass silently."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelError(f"{where}: unknown config field(s) {', '.join(unknown)}")
    return dict(data)


@dataclass
class DownPathConfig:
    """Fields the UNet and the reference encoders share: the layout of the encoder half (blocks.DownPath)."""

    in_channels: int = 4
    model_channels: int = 320
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    attention_resolutions: list[int] = field(default_factory=lambda: [4, 2, 1])
    num_head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    norm_groups: int = 32

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4


@dataclass
class UNetConfig(DownPathConfig):
    """The denoising UNet (SD-2.x layout) plus the v2 additions on its decoder."""

    out_channels: int = 4
    # v2 additions: background injection on decoder skips, style modulation after decoder blocks,
    # fg/bg LoRA on the decoder's cross-attention projections.
    warp_module: bool = True
    warp_head_channels: int = 64
    warp_mlp_ratio: int = 4
    style_modulation: bool = True
    lora_rank_fg: int = 4
    lora_rank_bg: int = 4
    # Mask resize factor of each cross-attention layer in forward order (encoder, middle, decoder).
    # None: 1 / downsampling factor of the layer, which is what the official table encodes.
    attention_scale_factors: list[float] | None = None


@dataclass
class EncoderConfig(DownPathConfig):
    """Background or style encoder: the UNet's encoder half with a size ('adm') embedding and output heads."""

    adm_in_channels: int = 512
    # False: background encoder (1x1 conv heads, token maps). True: style encoder (linear heads on means).
    style_modulation: bool = False


@dataclass
class SketchEncoderConfig:
    """The additive sketch encoder: a strided conv stem to latent resolution, then one hint per level."""

    in_channels: int = 3
    model_channels: int = 320
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    # (out_channels, stride) of each stem conv before the final conv to model_channels; SiLU between all.
    stem: list[list[int]] = field(
        default_factory=lambda: [[16, 1], [16, 1], [32, 2], [32, 1], [96, 2], [96, 1], [256, 2]]
    )


@dataclass
class VAEConfig:
    """The LDM KL autoencoder (becomes a diffusers AutoencoderKL)."""

    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    norm_groups: int = 32
    scaling_factor: float = 0.18215

    def diffusers_config(self) -> dict[str, Any]:
        """The equivalent `AutoencoderKL` config."""
        if self.z_channels != self.embed_dim:
            # diffusers' AutoencoderKL has one latent width for quant_conv in and out.
            raise ModelError(f"VAE z_channels {self.z_channels} != embed_dim {self.embed_dim}: not supported")
        n = len(self.ch_mult)
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": [self.ch * m for m in self.ch_mult],
            "layers_per_block": self.num_res_blocks,
            "act_fn": "silu",
            "latent_channels": self.z_channels,
            "norm_num_groups": self.norm_groups,
            "scaling_factor": self.scaling_factor,
        }


@dataclass
class ScheduleConfig:
    """The training noise schedule (v-prediction, 'scaled linear' betas)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.0120
    prediction_type: str = "v_prediction"


@dataclass
class ClipConfig:
    """How reference images become CLIP tokens (the model itself lives in a transformers folder)."""

    image_size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    std: list[float] = field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])


@dataclass
class Settings:
    """Inference scalars of the v2 forward (the official app's knobs)."""

    control_scale: float = 1.0
    mask_scale: float = 1.0
    fg_scale: float = 1.0
    bg_scale: float = 1.0
    merge_scale: float = 0.0
    mask_threshold: float = 0.05  # split cross-attention: a position is a character's above this
    threshold: float = 0.05  # skip injection: a skip is kept (not replaced) above this


@dataclass
class ModelConfig:
    """Everything needed to build a ColorizeDiffusion v2 model."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    background_encoder: EncoderConfig = field(default_factory=EncoderConfig)
    style_encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(style_modulation=True))
    sketch_encoder: SketchEncoderConfig = field(default_factory=SketchEncoderConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    settings: Settings = field(default_factory=Settings)

    @property
    def size_embed_dim(self) -> int:
        """Width of one ratio's sinusoidal embedding: the size embedding is two of them, concatenated."""
        return self.background_encoder.adm_in_channels // 2

    # ---- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        parts = {
            "unet": UNetConfig,
            "background_encoder": EncoderConfig,
            "style_encoder": EncoderConfig,
            "sketch_encoder": SketchEncoderConfig,
            "vae": VAEConfig,
            "schedule": ScheduleConfig,
            "clip": ClipConfig,
            "settings": Settings,
        }
        unknown = sorted(set(data) - set(parts))
        if unknown:
            raise ModelError(f"model config: unknown section(s) {', '.join(unknown)}")
        return cls(**{k: parts[k](**_pick(parts[k], data[k], k)) for k in data})

    @classmethod
    def v2(cls) -> ModelConfig:
        """The released v2 model (`configs/inference/v2.yaml`)."""
        return cls()

    # ---- official configuration ----------------------------------------------------------------------
    @classmethod
    def from_official(cls, data: dict[str, Any]) -> ModelConfig:
        """Map the official config onto ours.

        Accepts the parity-fixture layout (`unet`, `encoders`, `control_encoder`, `vae`, `settings`,
        `attention_scale_factors`) and the official inference YAML (`model.params.*_config.params`).
        """
        if "model" in data:
            return cls._from_official_yaml(data)
        unet_fields = dict(data["unet"])
        for ignored in ("use_spatial_transformer", "use_checkpoint"):
            unet_fields.pop(ignored, None)
        unet = UNetConfig(**_pick(UNetConfig, unet_fields, "unet"))
        factors = data.get("attention_scale_factors")
        if factors:
            unet.attention_scale_factors = _scale_factor_list(factors)
        enc_fields = dict(data["encoders"])
        for ignored in ("use_spatial_transformer", "use_checkpoint", "num_classes"):
            enc_fields.pop(ignored, None)
        bg = EncoderConfig(**_pick(EncoderConfig, {**enc_fields, "style_modulation": False}, "encoders"))
        style = EncoderConfig(**_pick(EncoderConfig, {**enc_fields, "style_modulation": True}, "encoders"))
        ce = data["control_encoder"]
        sketch = SketchEncoderConfig(
            in_channels=ce["in_ch"], model_channels=ce["model_channels"], channel_mult=list(ce["ch_mults"])
        )
        v = data["vae"]
        vae = VAEConfig(
            ch=v["ch"],
            ch_mult=list(v["ch_mult"]),
            num_res_blocks=v["num_res_blocks"],
            z_channels=v["z_channels"],
            embed_dim=v["embed_dim"],
        )
        settings = Settings(**_pick(Settings, data.get("settings", {}), "settings"))
        return cls(
            unet=unet,
            background_encoder=bg,
            style_encoder=style,
            sketch_encoder=sketch,
            vae=vae,
            settings=settings,
        )

    @classmethod
    def _from_official_yaml(cls, data: dict[str, Any]) -> ModelConfig:
        p = data["model"]["params"]

        def params(name: str) -> dict[str, Any]:
            return dict(p[name]["params"])

        unet_p = params("unet_config")
        unet = UNetConfig(
            in_channels=unet_p["in_channels"],
            out_channels=unet_p["out_channels"],
            model_channels=unet_p["model_channels"],
            channel_mult=list(unet_p["channel_mult"]),
            num_res_blocks=unet_p["num_res_blocks"],
            attention_resolutions=list(unet_p["attention_resolutions"]),
            num_head_channels=unet_p["num_head_channels"],
            transformer_depth=unet_p.get("transformer_depth", 1),
            context_dim=unet_p["context_dim"],
            warp_module=unet_p.get("warp_module", False),
            style_modulation=unet_p.get("style_modulation", False),
        )
        lora = p.get("lora_config") or {}
        unet.lora_rank_fg = lora.get("fr", 0)
        unet.lora_rank_bg = lora.get("br", 0)

        def encoder(name: str, style: bool) -> EncoderConfig:
            e = params(name)
            return EncoderConfig(
                in_channels=e["in_channels"],
                model_channels=e["model_channels"],
                channel_mult=list(e["channel_mult"]),
                num_res_blocks=e["num_res_blocks"],
                attention_resolutions=list(e["attention_resolutions"]),
                num_head_channels=e["num_head_channels"],
                transformer_depth=e.get("transformer_depth", 1),
                context_dim=e["context_dim"],
                adm_in_channels=e["adm_in_channels"],
                style_modulation=style,
            )

        ce = params("control_encoder_config")
        dd = params("first_stage_config")["ddconfig"]
        fs = params("first_stage_config")
        return cls(
            unet=unet,
            background_encoder=encoder("bg_encoder_config", False),
            style_encoder=encoder("style_encoder_config", True),
            sketch_encoder=SketchEncoderConfig(
                in_channels=ce["in_ch"],
                model_channels=ce["model_channels"],
                channel_mult=list(ce["ch_mults"]),
            ),
            vae=VAEConfig(
                in_channels=dd.get("in_channels", 3),
                out_channels=dd.get("out_ch", 3),
                ch=dd["ch"],
                ch_mult=list(dd["ch_mult"]),
                num_res_blocks=dd["num_res_blocks"],
                z_channels=dd["z_channels"],
                embed_dim=fs["embed_dim"],
                scaling_factor=p.get("scale_factor", 0.18215),
            ),
            schedule=ScheduleConfig(
                num_train_timesteps=p.get("timesteps", 1000),
                beta_start=p.get("linear_start", 0.00085),
                beta_end=p.get("linear_end", 0.0120),
            ),
        )


def _scale_factor_list(table: dict[str, list[int]]) -> list[float]:
    """{"0.5": [2, 3, ...], ...} -> one factor per cross-attention layer, in layer order."""
    by_layer: dict[int, float] = {}
    for factor, layers in table.items():
        for layer in layers:
            by_layer[int(layer)] = float(factor)
    n = len(by_layer)
    if sorted(by_layer) != list(range(n)):
        raise ModelError(f"attention_scale_factors: layers {sorted(by_layer)} are not 0..{n - 1}")
    return [by_layer[i] for i in range(n)]


def load_official_config(path: str | Path) -> ModelConfig:
    """Read an official config file (JSON as in the parity fixture, or the official YAML)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: config file not found")
    import yaml

    try:
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return ModelConfig.from_official(data)
    except (ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        raise ModelError(f"{path}: not an official ColorizeDiffusion config ({error!r})") from None
