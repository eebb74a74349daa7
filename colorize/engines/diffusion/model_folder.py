"""Model folders for people: `colorize model info` and `colorize model init-random`.

The format itself (what `save_pretrained` writes, how components load) is in modeling.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from colorize.errors import MissingInputError, ModelError

from .config import ModelConfig, vae_config
from .modeling import CLIP, COMPONENTS, INDEX, WEIGHTS, ColorizeDiffusionModel, read_index
from .reference import ClipReferenceEncoder

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig


def describe_model_folder(folder: str | Path) -> list[str]:
    """Human-readable lines about a model folder (reads configs and safetensors headers, no tensors)."""
    from .planning import check_weight_files, parameter_count, require_model_folder, safetensors_header

    folder = require_model_folder(folder)  # a checkpoint file given instead says how to convert it
    index = read_index(folder)
    check_weight_files(folder)  # every weight file whole, clip/ included

    def config(name: str) -> dict:
        path = folder / name / "config.json"
        if not path.is_file():
            raise MissingInputError(f"{path}: component config missing")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ModelError(f"{path}: unreadable ({error})") from None

    u, v = config("unet"), config("vae")
    lines = [
        f"model folder       {folder}",
        f"format             {index['format']} v{index['format_version']}"
        + (f"  (from {index['source']})" if index.get("source") else ""),
        f"unet               model_channels {u['model_channels']}, channel_mult {u['channel_mult']}, "
        f"res blocks {u['num_res_blocks']}, context_dim {u['context_dim']}, heads of {u['num_head_channels']}, "
        f"LoRA fg/bg rank {u['lora_rank_fg']}/{u['lora_rank_bg']}",
        f"latent             {u['in_channels']} channels, 1/{2 ** (len(v['block_out_channels']) - 1)} of the "
        f"image size, scaling {v['scaling_factor']}",
    ]
    total = 0
    for name in COMPONENTS:
        path = folder / name / WEIGHTS
        if not path.is_file():
            raise MissingInputError(f"{path}: weights file missing")
        tensors = safetensors_header(path)[1]
        count, dtypes = parameter_count(tensors), {str(e["dtype"]) for e in tensors.values()}
        total += count
        lines.append(f"{name:<19}{count / 1e6:8.1f} M parameters  {'/'.join(sorted(dtypes))}")
    scheduler = folder / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        s = json.loads(scheduler.read_text())
        lines.append(
            f"scheduler          {s.get('_class_name')}, {s.get('prediction_type')}, spacing "
            f"{s.get('timestep_spacing')}, steps_offset {s.get('steps_offset')}"
        )
    clip = "yes (clip/)" if CLIP in index else "no (convert with --clip to add it)"
    lines.append(f"{'total':<19}{total / 1e6:8.1f} M parameters (without CLIP)")
    lines.append(f"clip               {clip}")
    return lines


def remove_model_folder(folder: Path) -> None:
    """Delete only what a model folder holds (never other files the user keeps there)."""
    import shutil

    for name in (*COMPONENTS, "scheduler", CLIP):
        shutil.rmtree(folder / name, ignore_errors=True)
    (folder / INDEX).unlink(missing_ok=True)


# ---- random-weight model folders (tests, smoke runs, benchmarks) -----------------------------------------


def tiny_config() -> ModelConfig:
    """A small but complete model (every v2 feature) that runs on CPU in tests."""
    down = {
        "in_channels": 4,
        "model_channels": 32,
        "channel_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [1, 2],
        "num_head_channels": 32,
        "transformer_depth": 1,
        "context_dim": 32,
    }
    return ModelConfig(
        unet={**down, "lora_rank_fg": 2, "lora_rank_bg": 2},
        sketch_encoder={
            "model_channels": 32,
            "channel_mult": [1, 2],
            "stem_layers": [[16, 1], [16, 2], [32, 2], [32, 2]],
        },
        background_encoder={**down, "adm_in_channels": 32},
        style_encoder={**down, "adm_in_channels": 32, "style_modulation": True},
        vae=vae_config(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1),
    )


def clip_vision_config(size: str, projection_dim: int) -> CLIPVisionConfig:
    from transformers import CLIPVisionConfig

    if size == "tiny":
        return CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
            projection_dim=projection_dim,
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
        projection_dim=projection_dim,
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
    model = ColorizeDiffusionModel.from_config(config)
    # Layers the official model zero-initialises get small random weights here, so every path matters.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 1 and torch.count_nonzero(p) == 0:
                p.normal_(0, 0.02)
    if with_clip:
        vision = CLIPVisionModelWithProjection(clip_vision_config(size, config.unet["context_dim"])).eval()
        model.clip = ClipReferenceEncoder(vision)
    return model.eval().requires_grad_(False)
