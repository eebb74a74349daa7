"""The model folder: what diffusers' `DiffusionPipeline.save_pretrained` writes for
`ColorizeDiffusionPipeline` (pipeline.py), the checks in front of `from_pretrained`, and the folder tools
for people (`colorize model info`, `colorize model init-random`).

    DIR/model_index.json        {"unet": ["colorize.engines.diffusion.unet", "ColorizeUNet"], ..., scales}
    DIR/unet/                   config.json + diffusion_pytorch_model.safetensors   (ColorizeUNet)
    DIR/sketch_encoder/         SketchEncoder
    DIR/background_encoder/     ReferenceEncoder
    DIR/style_encoder/          ReferenceEncoder (style_modulation true)
    DIR/vae/                    diffusers AutoencoderKL
    DIR/scheduler/              scheduler_config.json: DPMSolverMultistepScheduler as the official dpm.yaml
    DIR/clip/                   transformers CLIPVisionModelWithProjection (config.json + model.safetensors)

so each component also loads on its own: `ColorizeUNet.from_pretrained(DIR, subfolder="unet")`.

Loading never runs code the folder brings: `check_model_folder` accepts only the (library, class) pairs of
`ENTRIES` in model_index.json and refuses a `.py` file in the folder or a component's sub-folder. (diffusers
0.42 itself imports a non-diffusers library only when the process has imported it already, and runs a
component folder's `<library>.py` only with `trust_remote_code`, which colorize never passes.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.modeling_utils import ModelMixin

from colorize.errors import MissingInputError, ModelError

from .config import ModelConfig, vae_config
from .encoders import ReferenceEncoder
from .sketch_encoder import SketchEncoder
from .unet import ColorizeUNet

if TYPE_CHECKING:
    from transformers import CLIPVisionConfig

    from .pipeline import ColorizeDiffusionPipeline

FORMAT = "colorize-diffusion-v2"
FORMAT_VERSION = 2
INDEX = "model_index.json"
SCHEDULER = "scheduler"
CLIP = "clip"

# The weighted components, each built from its config.json.
COMPONENTS: dict[str, type[ModelMixin]] = {
    "unet": ColorizeUNet,
    "sketch_encoder": SketchEncoder,
    "background_encoder": ReferenceEncoder,
    "style_encoder": ReferenceEncoder,
    "vae": AutoencoderKL,
}
# Every component as model_index.json names it, [library, class]: the only entries a folder may hold.
ENTRIES: dict[str, list[str]] = {
    **{name: [cls.__module__, cls.__name__] for name, cls in COMPONENTS.items() if name != "vae"},
    "vae": ["diffusers", "AutoencoderKL"],
    SCHEDULER: ["diffusers", "DPMSolverMultistepScheduler"],
    CLIP: ["transformers", "CLIPVisionModelWithProjection"],  # optional: absent or [null, null]
}
# Kept in float32 on a GPU, as in the official app (the UNet and the encoders run in bf16 / fp16).
FULL_PRECISION = ("vae", CLIP)
WEIGHTS = "diffusion_pytorch_model.safetensors"
CLIP_WEIGHTS = "model.safetensors"


# ---- checking a folder (before diffusers reads it) -------------------------------------------------------


def read_index(folder: str | Path) -> dict[str, Any]:
    """model_index.json, checked: one-line errors for a missing, unreadable or foreign folder."""
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
        got = index.get("format") if isinstance(index, dict) else None
        raise ModelError(f"{path}: not a {FORMAT} model folder (format {got!r})")
    if index.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: format version {index.get('format_version')} not supported (expected "
            f"{FORMAT_VERSION}); convert the checkpoint again with `colorize model convert`"
        )
    _check_entries(path, index)
    return index


def has_clip(index: dict[str, Any]) -> bool:
    """Whether the folder's index names a CLIP encoder (absent or [null, null]: none)."""
    return index.get(CLIP) == ENTRIES[CLIP]


def _check_entries(path: Path, index: dict[str, Any]) -> None:
    """Only our components, each named as `ENTRIES` names it, and no Python file beside them."""
    for name, entry in index.items():
        is_component = isinstance(entry, list) and len(entry) == 2
        if name == CLIP and entry in (None, [None, None]):
            continue
        if (name in ENTRIES or is_component) and entry != ENTRIES.get(name):
            raise ModelError(f"{path}: {name} is {entry}, expected {ENTRIES.get(name, 'no such component')}")
    code = sorted(
        p.relative_to(path.parent) for p in [*path.parent.glob("*.py"), *path.parent.glob("*/*.py")]
    )
    if code:
        raise ModelError(
            f"{path.parent}: holds Python code ({code[0]}); colorize never runs a model folder's code"
        )


CONVERT_HINT = (
    "`colorize model convert v2-full.safetensors --out DIR --clip open_clip_pytorch_model.bin` makes a "
    "complete folder (`colorize model init-random DIR` a random one for tests)"
)


def check_model_folder(folder: str | Path, *, clip: bool = True) -> dict[str, Any]:
    """The folder's checked index; one MissingInputError line naming everything missing (the CLIP part when
    the index names one and `clip`), and how to make the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: model folder not found; {CONVERT_HINT}")
    if not (folder / INDEX).is_file():
        raise MissingInputError(f"{folder}: incomplete model folder, missing {INDEX}; {CONVERT_HINT}")
    index = read_index(folder)
    missing = missing_parts(folder, clip=clip and has_clip(index))
    if missing:
        raise MissingInputError(
            f"{folder}: incomplete model folder, missing {', '.join(missing)}; {CONVERT_HINT}"
        )
    return index


def missing_parts(folder: Path, *, clip: bool = True) -> list[str]:
    """Files a model folder lacks (relative paths; empty when complete). diffusers would stop at the first."""
    wanted = [f"{name}/{f}" for name in COMPONENTS for f in ("config.json", WEIGHTS)]
    wanted.append(f"{SCHEDULER}/scheduler_config.json")
    if clip:
        wanted += [f"{CLIP}/config.json", f"{CLIP}/{CLIP_WEIGHTS}"]
    return [part for part in wanted if not (folder / part).is_file()]


# ---- for people ------------------------------------------------------------------------------------------


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
    clip = "yes (clip/)" if has_clip(index) else "no (convert with --clip to add it)"
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


def random_model(size: str = "tiny", seed: int = 0, with_clip: bool = True) -> ColorizeDiffusionPipeline:
    """A randomly initialised model (`tiny` or `full` v2 sizes)."""
    from transformers import CLIPVisionModelWithProjection

    from .pipeline import ColorizeDiffusionPipeline

    if size not in ("tiny", "full"):
        raise ValueError(f"unknown size {size!r} (tiny or full)")
    config = tiny_config() if size == "tiny" else ModelConfig.v2()
    torch.manual_seed(seed)
    model = ColorizeDiffusionPipeline.from_config(config)
    # Layers the official model zero-initialises get small random weights here, so every path matters.
    with torch.no_grad():
        for name in COMPONENTS:
            for p in getattr(model, name).parameters():
                if p.ndim >= 1 and torch.count_nonzero(p) == 0:
                    p.normal_(0, 0.02)
    if with_clip:
        vision = CLIPVisionModelWithProjection(clip_vision_config(size, config.unet["context_dim"]))
        model.register_modules(clip=vision.eval().requires_grad_(False))
    return model
