"""Configurations: the official ColorizeDiffusion v2 config mapped onto our component classes.

Each component is a diffusers `ModelMixin` + `ConfigMixin` class whose `__init__` arguments are its config
(`register_to_config`; `save_pretrained` writes them to `<component>/config.json`). `ModelConfig` holds the
`__init__` arguments of every component, the scheduler config and the conditioning scales, so that the
converter, the parity check and `init-random` build the same model:

    ModelConfig.v2()                      the released model (`configs/inference/v2.yaml`)
    ModelConfig.from_official(data)       the parity fixture's config.json, or the official inference YAML
    load_official_config(path)            the same, from a file
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.errors import MissingInputError, ModelError

# The official sampler's scheduler (`configs/scheduler_cfgs/dpm.yaml`, plus what the official code sets).
# Every sampler is built from this one config with diffusers' `from_config` (see sampling.py).
OFFICIAL_SCHEDULER: dict[str, Any] = {
    "_class_name": "DPMSolverMultistepScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "v_prediction",
    "use_karras_sigmas": False,
}


@dataclass(frozen=True)
class ConditioningScales:
    """Scalars of the v2 forward (the official app's knobs), stored in the model folder's index."""

    control_scale: float = 1.0  # sketch hints × this
    mask_scale: float = 1.0  # background features × this
    fg_scale: float = 1.0  # split cross-attention: foreground output × this
    bg_scale: float = 1.0  # ... background output × this
    merge_scale: float = 0.0  # foreground = fg·(1 − merge) + bg·merge
    mask_threshold: float = 0.05  # split cross-attention: a position is a character's above this
    threshold: float = 0.05  # skip injection: a skip is kept (not replaced) above this

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ConditioningScales:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{where}: unknown conditioning scale(s) {', '.join(unknown)}")
        try:
            return cls(**{k: float(v) for k, v in data.items()})
        except (TypeError, ValueError) as error:
            raise ModelError(f"{where}: bad conditioning scale ({error})") from None


# The released model's encoder-half layout (official names: the UNet and both reference encoders).
V2_DOWN_PATH: dict[str, Any] = {
    "in_channels": 4,
    "model_channels": 320,
    "channel_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attention_resolutions": [4, 2, 1],
    "num_head_channels": 64,
    "transformer_depth": 1,
    "context_dim": 1024,
}


def _down_path(official: dict[str, Any]) -> dict[str, Any]:
    """The fields the UNet and the reference encoders share, from an official params section."""
    return {
        "in_channels": official.get("in_channels", 4),
        "model_channels": official["model_channels"],
        "channel_mult": list(official["channel_mult"]),
        "num_res_blocks": official["num_res_blocks"],
        "attention_resolutions": list(official["attention_resolutions"]),
        "num_head_channels": official["num_head_channels"],
        "transformer_depth": official.get("transformer_depth", 1),
        "context_dim": official["context_dim"],
    }


def _sketch_encoder(official: dict[str, Any]) -> dict[str, Any]:
    """The sketch encoder's config from the official control-encoder section."""
    return {
        "in_channels": official["in_ch"],
        "model_channels": official["model_channels"],
        "channel_mult": list(official["ch_mults"]),
    }


def _reference_encoder(official: dict[str, Any], style: bool = False) -> dict[str, Any]:
    """A background (or, with `style`, style) encoder's config from its official params section."""
    config = {**_down_path(official), "adm_in_channels": official["adm_in_channels"]}
    return {**config, "style_modulation": True} if style else config


def vae_config(
    ch: int = 128,
    ch_mult: tuple[int, ...] = (1, 2, 4, 4),
    num_res_blocks: int = 2,
    z_channels: int = 4,
    embed_dim: int = 4,
    in_channels: int = 3,
    out_channels: int = 3,
    scaling_factor: float = 0.18215,
) -> dict[str, Any]:
    """diffusers `AutoencoderKL` arguments of the LDM KL autoencoder."""
    if z_channels != embed_dim:
        # diffusers' AutoencoderKL has one latent width for quant_conv in and out.
        raise ModelError(f"VAE z_channels {z_channels} != embed_dim {embed_dim}: not supported")
    n = len(ch_mult)
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": [ch * m for m in ch_mult],
        "layers_per_block": num_res_blocks,
        "act_fn": "silu",
        "latent_channels": z_channels,
        "norm_num_groups": 32,
        "scaling_factor": scaling_factor,
    }


@dataclass
class ModelConfig:
    """`__init__` arguments of every component, the scheduler config and the conditioning scales."""

    unet: dict[str, Any] = field(
        default_factory=lambda: {**V2_DOWN_PATH, "lora_rank_fg": 4, "lora_rank_bg": 4}
    )
    sketch_encoder: dict[str, Any] = field(default_factory=dict)
    background_encoder: dict[str, Any] = field(
        default_factory=lambda: {**V2_DOWN_PATH, "adm_in_channels": 512}
    )
    style_encoder: dict[str, Any] = field(
        default_factory=lambda: {**V2_DOWN_PATH, "adm_in_channels": 512, "style_modulation": True}
    )
    vae: dict[str, Any] = field(default_factory=vae_config)
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(OFFICIAL_SCHEDULER))
    scales: ConditioningScales = field(default_factory=ConditioningScales)

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
        u, e = data["unet"], data["encoders"]
        unet = {
            **_down_path(u),
            "out_channels": u.get("out_channels", 4),
            "skip_injection": u.get("warp_module", True),
            "style_modulation": u.get("style_modulation", True),
            "lora_rank_fg": u.get("lora_rank_fg", 0),
            "lora_rank_bg": u.get("lora_rank_bg", 0),
        }
        if data.get("attention_scale_factors"):
            unet["attention_scale_factors"] = _scale_factor_list(data["attention_scale_factors"])
        v = data["vae"]
        return cls(
            unet=unet,
            sketch_encoder=_sketch_encoder(data["control_encoder"]),
            background_encoder=_reference_encoder(e),
            style_encoder=_reference_encoder(e, style=True),
            vae=vae_config(v["ch"], v["ch_mult"], v["num_res_blocks"], v["z_channels"], v["embed_dim"]),
            scales=ConditioningScales.from_dict(data.get("settings", {}), "settings"),
        )

    @classmethod
    def _from_official_yaml(cls, data: dict[str, Any]) -> ModelConfig:
        p = data["model"]["params"]

        def params(name: str) -> dict[str, Any]:
            return dict(p[name]["params"])

        u = params("unet_config")
        lora = p.get("lora_config") or {}
        bg, style = params("bg_encoder_config"), params("style_encoder_config")
        ce, fs = params("control_encoder_config"), params("first_stage_config")
        dd = fs["ddconfig"]
        scheduler = dict(OFFICIAL_SCHEDULER)
        scheduler.update(
            num_train_timesteps=p.get("timesteps", 1000),
            beta_start=p.get("linear_start", 0.00085),
            beta_end=p.get("linear_end", 0.0120),
        )
        return cls(
            unet={
                **_down_path(u),
                "out_channels": u["out_channels"],
                "skip_injection": u.get("warp_module", False),
                "style_modulation": u.get("style_modulation", False),
                "lora_rank_fg": lora.get("fr", 0),
                "lora_rank_bg": lora.get("br", 0),
            },
            sketch_encoder=_sketch_encoder(ce),
            background_encoder=_reference_encoder(bg),
            style_encoder=_reference_encoder(style, style=True),
            vae=vae_config(
                dd["ch"],
                dd["ch_mult"],
                dd["num_res_blocks"],
                dd["z_channels"],
                fs["embed_dim"],
                dd.get("in_channels", 3),
                dd.get("out_ch", 3),
                p.get("scale_factor", 0.18215),
            ),
            scheduler=scheduler,
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
