"""Official LDM-layout checkpoint (`v2-full.safetensors`) -> our modules.

The mapping is generated from our own module tree: every parameter of every module gets the official key
it comes from. So the converter knows the complete list of official keys the configuration needs, and
conversion is strict about them: a key the model needs but the file lacks, a shape that differs, or a key
nobody knows is a `ModelError` naming the keys. What the official loader carries besides the weights is
accepted: the schedule buffers (`betas`, `alphas_cumprod`, `alphas_cumprod_prev` and the nine buffers
derived from them, each checked against `betas` and dropped), and the EMA copy (`model_ema.*`) and the
text/CLIP tower (`cond_stage_model.*`), which are ignored with a note. Nothing is loaded from a hub.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from colorize.errors import ModelError

from .config import ModelConfig
from .loading import read_checkpoint

if TYPE_CHECKING:
    from .pipeline import ColorizeDiffusionPipeline

# Official checkpoint prefix of each of our components.
PREFIXES = {
    "unet": "model.diffusion_model.",
    "sketch_encoder": "control_encoder.",
    "background_encoder": "bg_encoder.",
    "style_encoder": "style_encoder.",
    "vae": "first_stage_model.",
}
SCHEDULE_KEYS = ("betas", "alphas_cumprod", "alphas_cumprod_prev")
# Buffers the official model derives from betas at load time; a checkpoint saved from it holds them too.
DERIVED_SCHEDULE_KEYS = (
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)
# Parts of a full training checkpoint the model folder does not use.
IGNORED_PREFIXES = {
    "model_ema.": "the EMA copy",
    "cond_stage_model.": "the CLIP tower (give CLIP with --clip)",
}

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _sub(rest: str, table: dict[str, str]) -> str:
    """Rename the leading module path of `rest` through `table` (longest match first)."""
    for ours in sorted(table, key=len, reverse=True):
        if rest.startswith(ours + "."):
            return table[ours] + rest[len(ours) :]
    return rest


def _lora(rest: str) -> str:
    # ...attn2.split_lora.fg.to_q.down.weight -> ...attn2.to_q.lora_down_fg.weight
    return re.sub(r"split_lora\.(fg|bg)\.(to_[qkv])\.(down|up)\.", r"\2.lora_\3_\1.", rest)


class _Rules:
    """Ordered (regex, replacement function) rules; the first match wins, no match is a bug."""

    def __init__(self) -> None:
        self.rules: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []

    def add(self, pattern: str, fn: Callable[[re.Match[str]], str]) -> None:
        self.rules.append((re.compile(pattern + r"$"), fn))

    def __call__(self, key: str) -> str:
        for pattern, fn in self.rules:
            m = pattern.match(key)
            if m:
                return fn(m)
        raise KeyError(key)


def _down_path_rules(rules: _Rules, num_res_blocks: int) -> None:
    """conv_in/down_blocks -> input_blocks.N (the encoder half shared by UNet and encoders)."""
    per_level = num_res_blocks + 1

    def resnet(m: re.Match[str]) -> str:
        n = 1 + int(m[1]) * per_level + int(m[2])
        return f"input_blocks.{n}.0.{_sub(m[3], _RESNET)}"

    def attention(m: re.Match[str]) -> str:
        n = 1 + int(m[1]) * per_level + int(m[2])
        return f"input_blocks.{n}.1.{m[3]}"

    def downsample(m: re.Match[str]) -> str:
        n = 1 + int(m[1]) * per_level + num_res_blocks
        return f"input_blocks.{n}.0.op.{m[2]}"

    rules.add(r"time_embedding\.linear_1\.(.+)", lambda m: f"time_embed.0.{m[1]}")
    rules.add(r"time_embedding\.linear_2\.(.+)", lambda m: f"time_embed.2.{m[1]}")
    rules.add(r"conv_in\.(.+)", lambda m: f"input_blocks.0.0.{m[1]}")
    rules.add(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", resnet)
    rules.add(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", attention)
    rules.add(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", downsample)


def _unet_rules(c: dict) -> _Rules:
    rules = _Rules()
    num_res_blocks = c["num_res_blocks"]
    _down_path_rules(rules, num_res_blocks)
    per_level = num_res_blocks + 1
    n_levels = len(c["channel_mult"])
    # Decoder levels carry attention where their downsampling factor is an attention resolution.
    attention_levels = {u for u in range(n_levels) if 2 ** (n_levels - 1 - u) in c["attention_resolutions"]}

    def resnet(m: re.Match[str]) -> str:
        return f"output_blocks.{int(m[1]) * per_level + int(m[2])}.0.{_sub(m[3], _RESNET)}"

    def attention(m: re.Match[str]) -> str:
        return f"output_blocks.{int(m[1]) * per_level + int(m[2])}.1.{_lora(m[3])}"

    def upsample(m: re.Match[str]) -> str:
        u = int(m[1])
        slot = 2 if u in attention_levels else 1
        return f"output_blocks.{u * per_level + num_res_blocks}.{slot}.conv.{m[2]}"

    mid = {"resnets.0": "middle_block.0", "attentions.0": "middle_block.1", "resnets.1": "middle_block.2"}
    rules.add(r"mid_block\.(resnets\.0|attentions\.0|resnets\.1)\.(.+)", lambda m: _mid(mid, m))
    rules.add(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", resnet)
    rules.add(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", attention)
    rules.add(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", upsample)
    rules.add(r"conv_norm_out\.(.+)", lambda m: f"out.0.{m[1]}")
    rules.add(r"conv_out\.(.+)", lambda m: f"out.2.{m[1]}")
    rules.add(r"skip_injectors\.(.+)", lambda m: f"warp_modules.{m[1]}")
    style = {"norm": "0", "time_proj": "1", "proj": "2"}
    rules.add(
        r"style_modulators\.(\d+)\.(norm|time_proj|proj)\.(.+)",
        lambda m: f"style_modules.{m[1]}.{style[m[2]]}.{m[3]}",
    )
    return rules


def _mid(table: dict[str, str], m: re.Match[str]) -> str:
    rest = _sub(m[2], _RESNET) if m[1].startswith("resnets") else m[2]
    return f"{table[m[1]]}.{rest}"


def _encoder_rules(c: dict) -> _Rules:
    rules = _Rules()
    _down_path_rules(rules, c["num_res_blocks"])
    rules.add(r"class_embedding\.linear_1\.(.+)", lambda m: f"label_emb.0.0.{m[1]}")
    rules.add(r"class_embedding\.linear_2\.(.+)", lambda m: f"label_emb.0.2.{m[1]}")
    rules.add(r"heads\.(\d+)\.(.+)", lambda m: f"zero_layers.{m[1]}.{m[2]}")
    return rules


def _sketch_rules() -> _Rules:
    rules = _Rules()
    rules.add(r"stem\.(.+)", lambda m: f"model.{m[1]}")
    rules.add(r"hint_convs\.0\.(.+)", lambda m: f"zero_layer.0.{m[1]}")
    rules.add(r"hint_convs\.(\d+)\.(.+)", lambda m: f"zero_blocks.{int(m[1]) - 1}.0.{m[2]}")
    rules.add(r"levels\.(.+)", lambda m: f"output_blocks.{m[1]}")
    return rules


def _vae_part_rules(rules: _Rules, p: str) -> None:
    """Rules shared by the VAE's encoder and decoder (`p`): convs in and out, norm out, middle block."""
    rules.add(rf"{p}\.(conv_in|conv_out)\.(.+)", lambda m: f"{p}.{m[1]}.{m[2]}")
    rules.add(rf"{p}\.conv_norm_out\.(.+)", lambda m: f"{p}.norm_out.{m[1]}")
    rules.add(
        rf"{p}\.mid_block\.resnets\.(\d)\.(.+)",
        lambda m: f"{p}.mid.block_{int(m[1]) + 1}.{_sub(m[2], _VAE_RESNET)}",
    )
    rules.add(
        rf"{p}\.mid_block\.attentions\.0\.(.+)", lambda m: f"{p}.mid.attn_1.{_sub(m[1], _VAE_ATTENTION)}"
    )


def _vae_rules(c: dict) -> _Rules:
    n_levels = len(c["block_out_channels"])
    rules = _Rules()
    for part in ("encoder", "decoder"):
        _vae_part_rules(rules, part)
    rules.add(
        r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
        lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{_sub(m[3], _VAE_RESNET)}",
    )
    rules.add(
        r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)",
        lambda m: f"encoder.down.{m[1]}.downsample.conv.{m[2]}",
    )
    rules.add(
        r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)",
        lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.block.{m[2]}.{_sub(m[3], _VAE_RESNET)}",
    )
    rules.add(
        r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)",
        lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.upsample.conv.{m[2]}",
    )
    rules.add(r"(quant_conv|post_quant_conv)\.(.+)", lambda m: f"{m[1]}.{m[2]}")
    return rules


def _rules(model: ColorizeDiffusionPipeline) -> dict[str, _Rules]:
    """Key rules of every component, from the components' own configs."""
    return {
        "unet": _unet_rules(model.unet.config),
        "sketch_encoder": _sketch_rules(),
        "background_encoder": _encoder_rules(model.background_encoder.config),
        "style_encoder": _encoder_rules(model.style_encoder.config),
        "vae": _vae_rules(model.vae.config),
    }


_VAE_ATTENTION_WEIGHT = re.compile(r"mid_block\.attentions\.0\.to_(q|k|v|out\.0)\.weight$")


def _is_vae_attention_weight(component: str, key: str) -> bool:
    # The LDM autoencoder's attention uses 1x1 convs where diffusers uses Linear layers.
    return component == "vae" and _VAE_ATTENTION_WEIGHT.search(key) is not None


def official_key_map(model: ColorizeDiffusionPipeline) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """official key -> (component, our key, official shape), for every parameter of `model`'s components."""
    rules = _rules(model)
    mapping: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for component, prefix in PREFIXES.items():
        module = getattr(model, component)
        for key, tensor in module.state_dict().items():
            official = prefix + rules[component](key)
            shape = tuple(tensor.shape)
            if _is_vae_attention_weight(component, key):
                shape = (*shape, 1, 1)
            if official in mapping:
                raise RuntimeError(f"two parameters map to {official}")  # a bug in the rules
            mapping[official] = (component, key, shape)
    return mapping


def official_key_shapes(config: ModelConfig) -> dict[str, list[int]]:
    """Every key (and shape) an official checkpoint of this configuration holds, schedule buffers included."""
    from .pipeline import ColorizeDiffusionPipeline

    model = ColorizeDiffusionPipeline.from_config(config, meta=True)
    shapes = {k: list(v[2]) for k, v in official_key_map(model).items()}
    shapes.update({k: [config.scheduler["num_train_timesteps"]] for k in SCHEDULE_KEYS})
    return dict(sorted(shapes.items()))


# ---- converting a checkpoint --------------------------------------------------------------------------


def _list(keys: list[str], limit: int = 4) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def derived_schedule(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every schedule buffer the official model computes from `betas` (float64)."""
    betas = betas.double()
    ac = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    variance = betas * (1 - prev) / (1 - ac)  # v-posterior_loss weight 0: plain DDPM posterior
    return {
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(),
        "posterior_variance": variance,
        "posterior_log_variance_clipped": variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * prev.sqrt() / (1 - ac),
        "posterior_mean_coef2": (1 - prev) * (1 - betas).sqrt() / (1 - ac),
    }


def check_schedule(tensors: dict[str, torch.Tensor], scheduler: dict, source: str) -> list[float] | None:
    """Check every schedule buffer against `betas`; return the betas if they are not the configured
    scaled-linear schedule (None when they are)."""
    betas = tensors["betas"].double()
    steps = scheduler["num_train_timesteps"]
    if betas.numel() != steps:
        raise ModelError(f"{source}: betas has {betas.numel()} steps, config says {steps}")
    derived = derived_schedule(betas)
    for name in (*SCHEDULE_KEYS[1:], *DERIVED_SCHEDULE_KEYS):
        if name in tensors and not torch.allclose(
            tensors[name].double(), derived[name], rtol=1e-4, atol=1e-6
        ):
            raise ModelError(f"{source}: {name} does not match betas (inconsistent schedule buffers)")
    start, end = scheduler["beta_start"], scheduler["beta_end"]
    linear = torch.linspace(start**0.5, end**0.5, betas.numel(), dtype=torch.float64) ** 2
    if torch.allclose(betas, linear, rtol=1e-4, atol=1e-8):
        return None
    return betas.tolist()


def convert_state_dict(
    tensors: dict[str, torch.Tensor], config: ModelConfig, source: str = "checkpoint"
) -> tuple[dict[str, dict[str, torch.Tensor]], list[float] | None, list[str]]:
    """Official tensors -> ({component: our state dict}, trained betas if non-standard, notes).

    Strict about the model's keys: unknown keys, missing keys and shape mismatches raise one ModelError
    naming them. Works on meta tensors too (then only the schedule buffers need values).
    """
    from .pipeline import ColorizeDiffusionPipeline

    if not any(k.startswith(PREFIXES["unet"]) for k in tensors):
        raise ModelError(
            f"{source}: not a ColorizeDiffusion checkpoint: no '{PREFIXES['unet']}*' tensors "
            f"(has {len(tensors)} tensors, e.g. {_list(list(tensors), 3)})"
        )
    ignored = []
    for prefix, what in IGNORED_PREFIXES.items():
        count = sum(k.startswith(prefix) for k in tensors)
        if count:
            ignored.append(f"{count} {prefix}* tensor{'s' if count > 1 else ''} ({what})")
    notes = [f"ignored {' and '.join(ignored)}"] if ignored else []
    tensors = {k: v for k, v in tensors.items() if not k.startswith(tuple(IGNORED_PREFIXES))}
    model = ColorizeDiffusionPipeline.from_config(config, meta=True)
    mapping = official_key_map(model)
    expected = set(mapping) | set(SCHEDULE_KEYS)
    unknown = sorted(set(tensors) - expected - set(DERIVED_SCHEDULE_KEYS))
    missing = sorted(expected - set(tensors))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_list(missing)}")
        if unknown:
            parts.append(f"{len(unknown)} unexpected: {_list(unknown)}")
        raise ModelError(
            f"{source}: keys do not match this model configuration ({'; '.join(parts)}); "
            "another model, or the wrong config"
        )
    wrong = [
        f"{k} {list(tensors[k].shape)} != {list(shape)}"
        for k, (_, _, shape) in mapping.items()
        if tuple(tensors[k].shape) != shape
    ]
    if wrong:
        raise ModelError(
            f"{source}: {len(wrong)} tensor(s) have the wrong shape for this configuration: {_list(wrong, 3)}"
        )
    bad = [k for k, t in tensors.items() if not t.is_floating_point()]
    if bad:
        raise ModelError(f"{source}: non-float tensors {_list(bad)}")

    state: dict[str, dict[str, torch.Tensor]] = {c: {} for c in PREFIXES}
    for official, (component, ours, _) in mapping.items():
        tensor = tensors[official]
        if _is_vae_attention_weight(component, ours):
            tensor = tensor[:, :, 0, 0]
        state[component][ours] = tensor.contiguous()
    betas = check_schedule(tensors, config.scheduler, source)
    return state, betas, notes


def convert_checkpoint(
    path: str | Path, config: ModelConfig, dtype: torch.dtype | None = None
) -> tuple[ColorizeDiffusionPipeline, list[str]]:
    """Read and convert an official checkpoint: (`ColorizeDiffusionPipeline` on CPU, notes for the user)."""
    from diffusers import DPMSolverMultistepScheduler

    from .pipeline import ColorizeDiffusionPipeline

    tensors = read_checkpoint(path)
    state, betas, notes = convert_state_dict(tensors, config, source=str(path))
    model = ColorizeDiffusionPipeline.from_state_dicts(config, state, dtype=dtype)
    if betas is not None:  # the checkpoint's own schedule, in the folder's scheduler config
        scheduler = DPMSolverMultistepScheduler.from_config(model.scheduler.config, trained_betas=betas)
        model.register_modules(scheduler=scheduler)
    return model, notes
