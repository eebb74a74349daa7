"""Model folders: what `colorize model convert` writes and the engine loads.

    DIR/model_index.json                          format tag, full ModelConfig, components, schedule
    DIR/<component>/diffusion_pytorch_model.safetensors   unet, sketch_encoder, background_encoder,
                                                          style_encoder, vae (vae/ also has a diffusers
                                                          AutoencoderKL config.json)
    DIR/scheduler/scheduler_config.json           diffusers DDPMScheduler config (v-prediction)
    DIR/clip/                                     optional: transformers CLIPVisionModelWithProjection

Loading builds the modules on the meta device and assigns the stored tensors: no random init, fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from colorize.errors import MissingInputError, ModelError, OutputError

from .config import ClipConfig, EncoderConfig, ModelConfig, SketchEncoderConfig, UNetConfig, VAEConfig
from .modeling import COMPONENTS, ColorizeDiffusionModel
from .reference import ClipReferenceEncoder

FORMAT = "colorize-diffusion-v2"
FORMAT_VERSION = 1
WEIGHTS = "diffusion_pytorch_model.safetensors"
INDEX = "model_index.json"


def scheduler_config(config: ModelConfig, trained_betas: list[float] | None) -> dict[str, Any]:
    s = config.schedule
    return {
        "_class_name": "DDPMScheduler",
        "num_train_timesteps": s.num_train_timesteps,
        "beta_start": s.beta_start,
        "beta_end": s.beta_end,
        "beta_schedule": "scaled_linear",
        "trained_betas": trained_betas,
        "prediction_type": s.prediction_type,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    }


def save_model_folder(model: ColorizeDiffusionModel, folder: str | Path, source: str = "") -> Path:
    """Write `model` as a model folder (the folder may exist but must not hold a model already)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if (folder / INDEX).exists():
        raise OutputError(f"{folder}: already holds a model folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            sub = folder / name
            sub.mkdir(exist_ok=True)
            state = {k: v.detach().contiguous().cpu() for k, v in getattr(model, name).state_dict().items()}
            save_file(state, str(sub / WEIGHTS), metadata={"format": "pt"})
        (folder / "vae" / "config.json").write_text(
            json.dumps({"_class_name": "AutoencoderKL", **model.config.vae.diffusers_config()}, indent=2)
        )
        (folder / "scheduler").mkdir(exist_ok=True)
        (folder / "scheduler" / "scheduler_config.json").write_text(
            json.dumps(scheduler_config(model.config, model.trained_betas), indent=2)
        )
        if model.clip is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            model.clip.model.save_pretrained(folder / "clip", safe_serialization=True)
        index = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "components": list(COMPONENTS) + (["clip"] if model.clip is not None else []),
            "source": source,
            "config": model.config.to_dict(),
        }
        (folder / INDEX).write_text(json.dumps(index, indent=2))
    except OSError as error:
        raise OutputError(f"{folder}: cannot write the model folder ({error.strerror or error})") from None
    return folder


def read_index(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: model folder not found")
    path = folder / INDEX
    if not path.is_file():
        raise MissingInputError(
            f"{folder}: not a model folder ({INDEX} missing; create one with `colorize model convert`)"
        )
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ModelError(f"{path}: not a {FORMAT} model folder (format {index.get('format')!r})")
    if index.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: format version {index.get('format_version')} not supported (expected {FORMAT_VERSION})"
        )
    return index


def _read_weights(path: Path, device: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingInputError(f"{path}: weights file missing")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise ModelError(
            f"{path}: corrupt or truncated weights ({' '.join(str(error).split())[:120]})"
        ) from None


def _check_state(
    model: ColorizeDiffusionModel, name: str, state: dict[str, torch.Tensor], path: Path
) -> None:
    want = {k: tuple(v.shape) for k, v in getattr(model, name).state_dict().items()}
    missing = sorted(set(want) - set(state))
    unknown = sorted(set(state) - set(want))
    wrong = sorted(k for k in set(want) & set(state) if tuple(state[k].shape) != want[k])
    if missing or unknown or wrong:
        parts = [
            f"{len(v)} {label}: {', '.join(v[:3])}"
            for label, v in (("missing", missing), ("unexpected", unknown), ("wrong shape", wrong))
            if v
        ]
        raise ModelError(f"{path}: does not match {INDEX}'s config ({'; '.join(parts)})")


def load_model_folder(
    folder: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    load_clip: bool = True,
) -> ColorizeDiffusionModel:
    """Load a model folder onto `device` (tensors as stored, or cast to `dtype`)."""
    folder = Path(folder)
    index = read_index(folder)
    try:
        config = ModelConfig.from_dict(index["config"])
    except (KeyError, TypeError) as error:
        raise ModelError(f"{folder / INDEX}: bad config ({error})") from None
    with torch.device("meta"):
        skeleton = ColorizeDiffusionModel(config)
    state = {}
    for name in COMPONENTS:
        path = folder / name / WEIGHTS
        state[name] = _read_weights(path, str(device))
        _check_state(skeleton, name, state[name], path)
    clip = None
    if load_clip and "clip" in index.get("components", []):
        clip = ClipReferenceEncoder.from_folder(folder / "clip", config.clip).to(device)
        if dtype is not None:
            clip = clip.to(dtype)
    betas = (
        json.loads((folder / "scheduler" / "scheduler_config.json").read_text()).get("trained_betas")
        if (folder / "scheduler" / "scheduler_config.json").is_file()
        else None
    )
    return ColorizeDiffusionModel.from_state_dicts(config, state, dtype=dtype, clip=clip, trained_betas=betas)


def describe_model_folder(folder: str | Path) -> list[str]:
    """Human-readable lines about a model folder (reads headers only, no tensors)."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    index = read_index(folder)
    config = ModelConfig.from_dict(index["config"])
    u, v = config.unet, config.vae
    factor = 2 ** (len(v.ch_mult) - 1)
    lines = [
        f"model folder       {folder}",
        f"format             {index['format']} v{index['format_version']}"
        + (f"  (from {index['source']})" if index.get("source") else ""),
        f"unet               model_channels {u.model_channels}, channel_mult {u.channel_mult}, "
        f"res blocks {u.num_res_blocks}, context_dim {u.context_dim}, heads of {u.num_head_channels}, "
        f"LoRA fg/bg rank {u.lora_rank_fg}/{u.lora_rank_bg}",
        f"latent             {u.in_channels} channels, 1/{factor} of the image size, scaling {v.scaling_factor}",
    ]
    total = 0
    for name in COMPONENTS:
        path = folder / name / WEIGHTS
        if not path.is_file():
            raise MissingInputError(f"{path}: weights file missing")
        try:
            with safe_open(str(path), framework="pt") as f:
                count = 0
                dtypes = set()
                for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    tensor_slice = f.get_slice(key)
                    count += _numel(tensor_slice.get_shape())
                    dtypes.add(tensor_slice.get_dtype())
        except (SafetensorError, OSError) as error:
            raise ModelError(f"{path}: corrupt or truncated weights ({error})") from None
        total += count
        lines.append(f"{name:<19}{count / 1e6:8.1f} M parameters  {'/'.join(sorted(dtypes))}")
    clip = (
        "yes (clip/)"
        if "clip" in index.get("components", [])
        else "no (reference tokens must come from elsewhere)"
    )
    lines.append(f"{'total':<19}{total / 1e6:8.1f} M parameters (without CLIP)")
    lines.append(f"clip               {clip}")
    return lines


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# ---- random-weight model folders (tests, smoke runs) -----------------------------------------------------


def tiny_config() -> ModelConfig:
    """A small but complete model (every v2 feature) that runs on CPU in tests."""
    unet = UNetConfig(
        model_channels=32,
        channel_mult=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[1, 2],
        num_head_channels=32,
        context_dim=32,
        lora_rank_fg=2,
        lora_rank_bg=2,
    )
    enc = {
        "model_channels": 32,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [1, 2],
        "num_head_channels": 32,
        "context_dim": 32,
        "adm_in_channels": 32,
    }
    return ModelConfig(
        unet=unet,
        background_encoder=EncoderConfig(**enc),
        style_encoder=EncoderConfig(**enc, style_modulation=True),
        sketch_encoder=SketchEncoderConfig(
            model_channels=32, channel_mult=[1, 2], stem=[[16, 1], [16, 2], [32, 2], [32, 2]]
        ),
        vae=VAEConfig(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1),
        clip=ClipConfig(image_size=56),
    )


def _clip_vision_config(size: str, config: ModelConfig):
    from transformers import CLIPVisionConfig

    if size == "tiny":
        return CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=config.clip.image_size,
            patch_size=14,
            projection_dim=config.unet.context_dim,
            hidden_act="gelu",
        )
    # OpenCLIP ViT-H/14 shapes.
    return CLIPVisionConfig(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=config.unet.context_dim,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )


def random_model(size: str = "tiny", seed: int = 0, with_clip: bool = True) -> ColorizeDiffusionModel:
    """A randomly initialised model (`tiny` or `full` v2 sizes)."""
    from transformers import CLIPVisionModelWithProjection

    if size not in ("tiny", "full"):
        raise ValueError(f"unknown size {size!r} (tiny or full)")
    config = tiny_config() if size == "tiny" else ModelConfig.v2()
    torch.manual_seed(seed)
    model = ColorizeDiffusionModel(config)
    # Layers the official model zero-initialises get small random weights here, so every path matters.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 1 and torch.count_nonzero(p) == 0:
                p.normal_(0, 0.02)
    if with_clip:
        vision = CLIPVisionModelWithProjection(_clip_vision_config(size, config)).eval()
        model.clip = ClipReferenceEncoder(vision, config.clip)
    return model.eval().requires_grad_(False)
