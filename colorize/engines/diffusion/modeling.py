"""`ColorizeDiffusionModel`: the v2 components together, and the model folder they are saved in.

A model folder is what diffusers' `save_pretrained` writes, one sub-folder per component, and
`model_index.json` naming each component's class (diffusers' pipeline-index layout):

    DIR/model_index.json        {"unet": ["colorize.engines.diffusion.unet", "ColorizeUNet"], ..., scales}
    DIR/unet/                   config.json + diffusion_pytorch_model.safetensors   (ColorizeUNet)
    DIR/sketch_encoder/         SketchEncoder
    DIR/background_encoder/     ReferenceEncoder
    DIR/style_encoder/          ReferenceEncoder (style_modulation true)
    DIR/vae/                    diffusers AutoencoderKL
    DIR/scheduler/              scheduler_config.json: DPMSolverMultistepScheduler as the official dpm.yaml
    DIR/clip/                   transformers CLIPVisionModelWithProjection (config.json + model.safetensors)

so each component loads on its own: `ColorizeUNet.from_pretrained(DIR, subfolder="unet")`.

Per reference (once per shot): `reference_tokens`, `size_embedding`, `background_features`, `style_vectors`;
per batch: `encode_sketch`; per step: `predict_v`. For N characters the split context is
`character_context([tokens_1, ..., tokens_N], background_tokens)` and `region_masks` is (B, N, h, w);
N = 1 is the official v2 forward.

`model.device` is where inputs go and components run. `enable_offload(device)` (sequential component
offload, for cards too small for the whole model) keeps every component's weights in CPU memory (pinned)
and moves a component to `device` when one of these methods uses it, the previous one leaving: one
component on the GPU at a time; the weights and the kernels are the same, so are the results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from colorize.errors import MissingInputError, ModelError, OutputError

from .attention import SplitSettings
from .config import ConditioningScales, ModelConfig
from .embeddings import size_embedding
from .encoders import ReferenceEncoder
from .loading import device_map, short_error
from .reference import ClipReferenceEncoder
from .sketch_encoder import SketchEncoder
from .unet import ColorizeUNet

FORMAT = "colorize-diffusion-v2"
FORMAT_VERSION = 2
INDEX = "model_index.json"
SCHEDULER = "scheduler"
CLIP = "clip"

# Component name -> its class, as model_index.json names it: [library, class]. Loading takes only these
# classes (a model folder never makes us import a module it names).
COMPONENTS: dict[str, type[ModelMixin]] = {
    "unet": ColorizeUNet,
    "sketch_encoder": SketchEncoder,
    "background_encoder": ReferenceEncoder,
    "style_encoder": ReferenceEncoder,
    "vae": AutoencoderKL,
}
# Kept in float32 on a GPU, as in the official app (the UNet and the encoders run in bf16 / fp16).
FULL_PRECISION = ("vae", CLIP)
WEIGHTS = "diffusion_pytorch_model.safetensors"
CLIP_WEIGHTS = "model.safetensors"


def _library(cls: type) -> list[str]:
    module = cls.__module__
    return ["diffusers" if module.startswith("diffusers.") else module, cls.__name__]


class ColorizeDiffusionModel(nn.Module):
    """UNet, sketch encoder, background and style encoders, VAE, (optionally) CLIP, and the scales."""

    clip: ClipReferenceEncoder | None

    def __init__(
        self,
        unet: ColorizeUNet,
        sketch_encoder: SketchEncoder,
        background_encoder: ReferenceEncoder,
        style_encoder: ReferenceEncoder,
        vae: AutoencoderKL,
        *,
        clip: ClipReferenceEncoder | None = None,
        scales: ConditioningScales | None = None,
        scheduler_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.unet = unet
        self.sketch_encoder = sketch_encoder
        self.background_encoder = background_encoder
        self.style_encoder = style_encoder
        self.vae = vae
        self.clip = clip
        self.scales = scales or ConditioningScales()
        self.scheduler_config = dict(scheduler_config or ModelConfig().scheduler)
        self.offload: SequentialOffload | None = None

    @property
    def device(self) -> torch.device:
        """Where inputs go and the components run (with offload: where each one is moved to run)."""
        return self.offload.device if self.offload is not None else self.unet.device

    def enable_offload(self, device: str | torch.device) -> None:
        """Sequential component offload onto `device` (see the module docstring)."""
        names = [*COMPONENTS, *([CLIP] if self.clip is not None else [])]
        self.to("cpu")
        self.offload = SequentialOffload({name: getattr(self, name) for name in names}, device)

    def _use(self, name: str) -> None:
        if self.offload is not None:
            self.offload.activate(name)

    # ---- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig, *, meta: bool = False) -> ColorizeDiffusionModel:
        """Freshly initialised components (on the meta device with `meta`: shapes only, no memory)."""
        with torch.device("meta") if meta else torch.device("cpu"):
            parts: dict[str, Any] = {name: COMPONENTS[name](**getattr(config, name)) for name in COMPONENTS}
        return cls(**parts, scales=config.scales, scheduler_config=config.scheduler)

    @classmethod
    def from_state_dicts(
        cls,
        config: ModelConfig,
        state: dict[str, dict[str, torch.Tensor]],
        *,
        dtype: torch.dtype | None = None,
    ) -> ColorizeDiffusionModel:
        """Components built without random init (meta tensors) that take the given weights as they are."""
        model = cls.from_config(config, meta=True)
        for name in COMPONENTS:
            weights = state[name]
            if dtype is not None:
                weights = {k: v.to(dtype) for k, v in weights.items()}
            getattr(model, name).load_state_dict(weights, strict=True, assign=True)
        return model.eval().requires_grad_(False)

    # ---- the model folder -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, source: str = "") -> Path:
        """Write a model folder (the folder may exist but must not hold a model already)."""
        from diffusers import DPMSolverMultistepScheduler
        from transformers.utils import logging as hf_logging

        folder = Path(folder)
        if (folder / INDEX).exists():
            raise OutputError(f"{folder}: already holds a model folder; choose another --out")
        index: dict[str, Any] = {"_class_name": type(self).__name__}
        try:
            import diffusers

            index["_diffusers_version"] = diffusers.__version__
            folder.mkdir(parents=True, exist_ok=True)
            for name in COMPONENTS:
                getattr(self, name).save_pretrained(folder / name, safe_serialization=True)
                index[name] = _library(COMPONENTS[name])
            scheduler = DPMSolverMultistepScheduler.from_config(self.scheduler_config)
            scheduler.save_pretrained(folder / SCHEDULER)
            index[SCHEDULER] = _library(type(scheduler))
            if self.clip is not None:
                hf_logging.disable_progress_bar()
                self.clip.model.save_pretrained(folder / CLIP, safe_serialization=True)
                index[CLIP] = ["transformers", type(self.clip.model).__name__]
            index.update(
                format=FORMAT,
                format_version=FORMAT_VERSION,
                source=source,
                conditioning_scales=asdict(self.scales),
            )
            (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        except OSError as error:
            raise OutputError(
                f"{folder}: cannot write the model folder ({error.strerror or error})"
            ) from None
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        full_precision_dtype: torch.dtype | None = None,
        load_clip: bool = True,
    ) -> ColorizeDiffusionModel:
        """Load a model folder straight into `device`: the UNet and encoders in `dtype`, the VAE and CLIP in
        `full_precision_dtype` (None: float32 for either). Raises one-line errors for missing or corrupt parts."""
        folder = Path(folder)
        index = check_model_folder(folder, clip=load_clip)
        parts: dict[str, Any] = {}
        for name, component in COMPONENTS.items():
            if index.get(name) != _library(component):
                raise ModelError(
                    f"{folder / INDEX}: {name} is {index.get(name)}, expected {_library(component)}"
                )
            want = full_precision_dtype if name in FULL_PRECISION else dtype
            parts[name] = _load_component(component, folder, name, want, device)
        clip = None
        if load_clip and CLIP in index:
            from .reference import load_clip as load_clip_folder

            clip = load_clip_folder(folder / CLIP, dtype=full_precision_dtype or torch.float32, device=device)
        scheduler = read_scheduler_config(folder)
        scales = ConditioningScales.from_dict(index.get("conditioning_scales", {}), str(folder / INDEX))
        model = cls(**parts, clip=clip, scales=scales, scheduler_config=scheduler)
        return model.eval().requires_grad_(False)

    # ---- per reference ---------------------------------------------------------------------------------
    def reference_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP local tokens of [-1, 1] reference images (B, T, context_dim)."""
        if self.clip is None:
            raise RuntimeError("this model has no CLIP encoder: convert with --clip or pass tokens directly")
        self._use(CLIP)
        return self.clip(images.to(self.device))

    @property
    def size_embed_dim(self) -> int:
        """Width of one ratio's sinusoidal embedding: the size embedding is two of them, concatenated."""
        return self.background_encoder.config["adm_in_channels"] // 2

    def size_embedding(self, ratio_h: float | torch.Tensor, ratio_w: float | torch.Tensor) -> torch.Tensor:
        """Size embedding (B, adm_in_channels) of reference-to-output ratios (float32)."""
        return size_embedding(ratio_h, ratio_w, self.size_embed_dim).to(self.device)

    def background_features(
        self, latent: torch.Tensor, tokens: torch.Tensor, size_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """Background encoder token maps (decoder order, before the mask scale)."""
        self._use("background_encoder")
        return self.background_encoder(latent, tokens, size_emb, timestep=0)

    def style_vectors(
        self, latent: torch.Tensor, tokens: torch.Tensor, size_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """Style encoder vectors (decoder order)."""
        self._use("style_encoder")
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
        self._use("sketch_encoder")
        return self.sketch_encoder(sketch.to(self.device, self.sketch_encoder.dtype))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Scaled latent (posterior mean × scaling factor, float32) of [-1, 1] images."""
        self._use("vae")
        mean = self.vae.encode(image.to(self.device, self.vae.dtype)).latent_dist.mean
        return mean.float() * self.vae.config["scaling_factor"]

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (float32, not clamped) from scaled latents."""
        self._use("vae")
        z = latent.to(self.device, self.vae.dtype) / self.vae.config["scaling_factor"]
        return self.vae.decode(z).sample.float()

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
        scales: ConditioningScales | None = None,
        use_lora: bool | None = None,
    ) -> torch.Tensor:
        """The UNet's v-prediction, applying the control and mask scales of `scales`.

        region_masks (B, N, h, w) switches on the split cross-attention (context = N references +
        background) and, with background_features, the skip injection. LoRA is on when background
        features are given (as in the official app), unless `use_lora` says otherwise.
        """
        self._use("unet")
        s = scales or self.scales
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

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, **conditions: Any) -> torch.Tensor:
        """Same as `predict_v`."""
        return self.predict_v(sample, timestep, **conditions)


class SequentialOffload:
    """Components whose weights live in CPU memory, one of them at a time on `device` (where it runs).

    The CPU copies are made once (pinned, when the device is a GPU, so the copies to it are asynchronous);
    a component leaving the device just points back at them (inference never changes weights).
    """

    def __init__(self, components: dict[str, nn.Module], device: str | torch.device):
        self.device = torch.device(device)
        pin = self.device.type == "cuda"
        self.active: str | None = None
        self.moves = 0  # components moved onto the device so far
        self._tensors = {
            name: [
                (t, t.data.pin_memory() if pin else t.data) for t in [*module.parameters(), *module.buffers()]
            ]
            for name, module in components.items()
        }

    def activate(self, name: str) -> None:
        """Put component `name` on the device, and the one there before back in CPU memory."""
        if name == self.active:
            return
        if self.active is not None:
            for tensor, cpu in self._tensors[self.active]:
                tensor.data = cpu
        for tensor, cpu in self._tensors[name]:
            tensor.data = self.transfer(cpu)
        self.active = name
        self.moves += 1

    def transfer(self, cpu: torch.Tensor) -> torch.Tensor:
        """A CPU copy on the device (asynchronously from pinned memory)."""
        return cpu.to(self.device, non_blocking=True)


# ---- reading a folder ---------------------------------------------------------------------------------


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
    return index


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
    missing = missing_parts(folder, clip=clip and CLIP in index)
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


def read_scheduler_config(folder: Path) -> dict[str, Any]:
    from diffusers import DPMSolverMultistepScheduler

    try:
        return dict(DPMSolverMultistepScheduler.load_config(folder, subfolder=SCHEDULER))
    except (OSError, ValueError) as error:
        raise ModelError(f"{folder / SCHEDULER}: unreadable scheduler config ({error})") from None


def _load_component(
    component: type[ModelMixin],
    folder: Path,
    name: str,
    dtype: torch.dtype | None,
    device: str | torch.device,
) -> nn.Module:
    """One component with diffusers' loader, straight in `dtype` (no float32 copy) and onto `device`."""
    try:
        module = component.from_pretrained(
            folder, subfolder=name, torch_dtype=dtype, device_map=device_map(device)
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelError(
            f"{folder / name}: corrupt, truncated or not a {component.__name__} ({short_error(error)})"
        ) from None
    return nn.Module.to(module, device)
