"""CLIP reference tokens: what the UNet's cross-attention and the reference encoders read.

The official encoder is OpenCLIP ViT-H/14 (laion2b_s32b_b79k) with output "full": the final LayerNorm and
the projection applied to every token; v2 keeps tokens 1..256 (the local tokens). In transformers terms:
`visual_projection(post_layernorm(last_hidden_state))[:, 1:]`. The model lives in a model folder's `clip/`
as a transformers `CLIPVisionModelWithProjection`; `load_clip` reads it from a transformers folder or from
the OpenCLIP file users have (`open_clip_pytorch_model.bin` / `.safetensors`), mapping OpenCLIP's
visual-tower keys onto transformers' (`openclip_to_transformers`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from transformers import CLIPVisionModelWithProjection

from colorize.errors import MissingInputError, ModelError

from .loading import device_map, read_checkpoint, short_error

# OpenAI CLIP normalisation, which OpenCLIP ViT-H/14 uses too.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_tokens(vision: CLIPVisionModelWithProjection, images: torch.Tensor) -> torch.Tensor:
    """Local tokens of [-1, 1] images (B, 3, H, W): (B, n_patches, projection_dim), float32.

    The images go bicubic to CLIP's square input (aspect not kept) and through CLIP's mean/std. The model
    runs through its own `forward` (where diffusers' offload hooks move it), then the final LayerNorm and
    the projection are applied to every token."""
    size = clip_image_size(vision)
    x = images.float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, (size, size), mode="bicubic", align_corners=True, antialias=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, -1, 1, 1)
    hidden = vision(pixel_values=((x - mean) / std).to(vision.dtype)).last_hidden_state
    tokens = vision.visual_projection(vision.vision_model.post_layernorm(hidden))
    return tokens[:, 1:].float()


def clip_image_size(vision: CLIPVisionModelWithProjection) -> int:
    size = vision.config.image_size
    if not isinstance(size, int):
        raise ModelError(f"CLIP vision config: image_size {size!r} is not one number")
    return size


def load_clip(
    source: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> CLIPVisionModelWithProjection:
    """CLIP from a local transformers folder or an OpenCLIP ViT file (never from a hub)."""
    source = Path(source)
    if source.is_dir():
        return _from_transformers_folder(source, dtype, device)
    if not source.exists():
        raise MissingInputError(f"{source}: CLIP model not found (a transformers folder or an OpenCLIP file)")
    vision = openclip_to_transformers(read_checkpoint(source), str(source))
    return nn.Module.to(vision, device=device, dtype=dtype).eval().requires_grad_(False)


def _from_transformers_folder(
    folder: Path, dtype: torch.dtype, device: str | torch.device
) -> CLIPVisionModelWithProjection:
    from transformers import CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a batch tool's logs are not a terminal
    if not (folder / "config.json").is_file():
        raise MissingInputError(f"{folder}: no CLIP vision model here (config.json missing)")
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(
            folder, local_files_only=True, torch_dtype=dtype, device_map=device_map(device)
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"{folder}: cannot load the CLIP vision model ({short_error(error)})") from None
    return nn.Module.to(model, device).eval().requires_grad_(False)


# ---- OpenCLIP -> transformers -----------------------------------------------------------------------------


def _third(j: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Part j of OpenCLIP's fused q/k/v projection (3·width rows)."""
    return lambda t: t.chunk(3)[j]


# Head width of OpenCLIP's ViT towers: 64, except these widths (ViT-H/14: 1280 wide, 16 heads of 80;
# ViT-g/14: 1408, heads of 88; ViT-bigG/14: 1664, heads of 104). The file holds no head count.
_HEAD_WIDTH = {1280: 80, 1408: 88, 1664: 104}


def openclip_to_transformers(
    tensors: dict[str, torch.Tensor], source: str = "OpenCLIP file"
) -> CLIPVisionModelWithProjection:
    """A `CLIPVisionModelWithProjection` holding an OpenCLIP state dict's visual tower.

    Every size comes from the tensors' shapes (the head count from OpenCLIP's head-width convention).
    Text-tower keys are ignored; a missing or unexpected visual key is a `ModelError` naming it.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    visual = {k[len("visual.") :]: v for k, v in tensors.items() if k.startswith("visual.")}
    if "class_embedding" not in visual or "proj" not in visual:
        raise ModelError(
            f"{source}: not an OpenCLIP model (no visual.class_embedding / visual.proj; "
            f"has {len(tensors)} tensors, e.g. {', '.join(sorted(tensors)[:3])})"
        )
    width = visual["class_embedding"].shape[0]
    patch = visual["conv1.weight"].shape[-1] if "conv1.weight" in visual else 14
    grid = math.isqrt(visual["positional_embedding"].shape[0] - 1)
    layers = len({k.split(".")[2] for k in visual if k.startswith("transformer.resblocks.")})
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=visual["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=width // _HEAD_WIDTH.get(width, 64),
        image_size=grid * patch,
        patch_size=patch,
        projection_dim=visual["proj"].shape[1],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(ours: str, theirs: str, fn: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> None:
        if theirs not in visual:
            raise ModelError(f"{source}: OpenCLIP visual tower lacks visual.{theirs}")
        state[ours] = fn(visual[theirs]).contiguous()
        used.add(theirs)

    vm = "vision_model."
    take(vm + "embeddings.class_embedding", "class_embedding")
    take(vm + "embeddings.patch_embedding.weight", "conv1.weight")
    take(vm + "embeddings.position_embedding.weight", "positional_embedding")
    for part in ("weight", "bias"):
        take(f"{vm}pre_layrnorm.{part}", f"ln_pre.{part}")
        take(f"{vm}post_layernorm.{part}", f"ln_post.{part}")
    take("visual_projection.weight", "proj", lambda t: t.t())
    for i in range(layers):
        ours, theirs = f"{vm}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for q, index in (("q", 0), ("k", 1), ("v", 2)):
            take(
                f"{ours}self_attn.{q}_proj.weight",
                theirs + "attn.in_proj_weight",
                _third(index),
            )
            take(
                f"{ours}self_attn.{q}_proj.bias",
                theirs + "attn.in_proj_bias",
                _third(index),
            )
        for part in ("weight", "bias"):
            take(f"{ours}self_attn.out_proj.{part}", f"{theirs}attn.out_proj.{part}")
            take(f"{ours}layer_norm1.{part}", f"{theirs}ln_1.{part}")
            take(f"{ours}layer_norm2.{part}", f"{theirs}ln_2.{part}")
            take(f"{ours}mlp.fc1.{part}", f"{theirs}mlp.c_fc.{part}")
            take(f"{ours}mlp.fc2.{part}", f"{theirs}mlp.c_proj.{part}")
    unknown = sorted(set(visual) - used)
    if unknown:
        raise ModelError(
            f"{source}: unexpected OpenCLIP visual keys {', '.join('visual.' + k for k in unknown[:4])} "
            "(not a plain ViT tower: layer scale, attention pooling or another architecture)"
        )
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    missing, _ = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:  # a bug in the mapping: every transformers weight must come from the file
        raise RuntimeError(f"OpenCLIP mapping left {missing[:4]} unset")
    embeddings = model.vision_model.embeddings
    if getattr(embeddings, "position_ids", None) is not None and embeddings.position_ids.is_meta:
        embeddings.register_buffer(
            "position_ids", torch.arange(grid * grid + 1).expand((1, -1)), persistent=False
        )
    return model.eval()
