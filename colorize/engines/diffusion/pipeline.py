"""`ColorizeDiffusionPipeline`: the v2 components as a diffusers `DiffusionPipeline`, and its batch function.

The components are registered (`register_modules`): the UNet, the sketch encoder, the background and style
encoders, the VAE, the scheduler and (optionally) the transformers CLIP vision model; the conditioning
scales are in the pipeline's config. So diffusers saves and loads the model folder (`save_pretrained` /
`from_pretrained`: model_folder.py has the layout and the checks colorize runs in front of it) and offloads
it (`enable_model_cpu_offload`, `enable_sequential_cpu_offload`): every method runs its component through
the component's own `forward` (or, for the VAE, `encode`/`decode`, which diffusers hooks too), and inputs
go to `_execution_device`, where the hooks run the components.

Per reference (once per shot, conditioning.py): `reference_tokens`, `size_embedding`,
`background_features`, `style_vectors`; per batch: `encode_sketch`; per step: `predict_v`.

`pipe(conditioning, sketch=..., noise=...)` (`__call__`) is the one batch function: the engine, `colorize
model parity` and bench/bench_gpu.py call it and nothing else. A batch of prepared frames (sketches, region
masks, start noise, img2img start images) in, decoded images out: it pads the batch to its fixed shape,
stacks the guidance branches as the official sampler does (cond, uncond_ref, uncond_sketch:
`batch_inputs`), builds the scheduler, starts from noise or from the encoded images noised to `strength`,
runs the denoising loop (one UNet call per step for every branch and frame: `predict`, or its CUDA-graph
replay, cuda_graph.py) and decodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
from transformers import CLIPVisionModelWithProjection  # diffusers reads __init__'s annotations

from colorize.errors import ModelError, OutputError

from .attention import SplitSettings
from .conditioning import Conditioning
from .config import ConditioningScales, ModelConfig
from .embeddings import size_embedding
from .encoders import ReferenceEncoder
from .loading import short_error
from .model_folder import (
    CLIP,
    COMPONENTS,
    FORMAT,
    FORMAT_VERSION,
    FULL_PRECISION,
    INDEX,
    SCHEDULER,
    check_model_folder,
)
from .preprocess import to_model_image
from .reference import clip_tokens
from .sampling import branches, combine, make_scheduler, set_steps, start_latents
from .sketch_encoder import SketchEncoder
from .unet import ColorizeUNet

Frames = torch.Tensor | Sequence[np.ndarray] | Sequence[torch.Tensor]
StepCallback = Callable[[dict[str, Any]], None]
ATTENTION_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")  # on a GPU, in order of preference


@dataclass
class BatchResult:
    latents: torch.Tensor  # (B, C, h, w) float32 final latents, on the execution device
    images: torch.Tensor  # (B, 3, Hp, Wp) float32 decoded images in [-1, 1] (not clamped), on the device


class ColorizeDiffusionPipeline(DiffusionPipeline):
    """UNet, sketch encoder, background and style encoders, VAE, scheduler, (optionally) CLIP, the scales."""

    # diffusers' model offload: the order a shot uses them in; each one leaves the GPU when the next runs.
    model_cpu_offload_seq = "clip->vae->background_encoder->style_encoder->sketch_encoder->unet"  # type: ignore[assignment]
    _optional_components = [CLIP]

    unet: ColorizeUNet
    sketch_encoder: SketchEncoder
    background_encoder: ReferenceEncoder
    style_encoder: ReferenceEncoder
    vae: AutoencoderKL
    scheduler: DPMSolverMultistepScheduler
    clip: CLIPVisionModelWithProjection | None

    def __init__(
        self,
        unet: ColorizeUNet,
        sketch_encoder: SketchEncoder,
        background_encoder: ReferenceEncoder,
        style_encoder: ReferenceEncoder,
        vae: AutoencoderKL,
        scheduler: DPMSolverMultistepScheduler,
        clip: CLIPVisionModelWithProjection | None = None,
        conditioning_scales: dict[str, float] | None = None,
        source: str = "",
        format: str = FORMAT,  # noqa: A002 (model_index.json's key; the folder checks read it)
        format_version: int = FORMAT_VERSION,
    ):
        super().__init__()
        self.register_modules(
            unet=unet,
            sketch_encoder=sketch_encoder,
            background_encoder=background_encoder,
            style_encoder=style_encoder,
            vae=vae,
            scheduler=scheduler,
            clip=clip,
        )
        self.scales = ConditioningScales.from_dict(conditioning_scales or {}, INDEX)
        self.register_to_config(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            source=source,
            conditioning_scales=asdict(self.scales),
        )

    # ---- building, saving, loading ----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig, *, meta: bool = False) -> ColorizeDiffusionPipeline:  # type: ignore[override]
        """Freshly initialised components (on the meta device with `meta`: shapes only, no memory)."""
        with torch.device("meta") if meta else torch.device("cpu"):
            parts: dict[str, Any] = {name: COMPONENTS[name](**getattr(config, name)) for name in COMPONENTS}
        for part in parts.values():
            part.eval().requires_grad_(False)
        scheduler = DPMSolverMultistepScheduler.from_config(config.scheduler)
        return cls(**parts, scheduler=scheduler, conditioning_scales=asdict(config.scales))

    @classmethod
    def from_state_dicts(
        cls,
        config: ModelConfig,
        state: dict[str, dict[str, torch.Tensor]],
        *,
        dtype: torch.dtype | None = None,
    ) -> ColorizeDiffusionPipeline:
        """Components built without random init (meta tensors) that take the given weights as they are."""
        pipe = cls.from_config(config, meta=True)
        for name in COMPONENTS:
            weights = state[name]
            if dtype is not None:
                weights = {k: v.to(dtype) for k, v in weights.items()}
            getattr(pipe, name).load_state_dict(weights, strict=True, assign=True)
        return pipe

    def save(self, folder: str | Path, source: str = "") -> Path:
        """Write a model folder with diffusers' `save_pretrained` (the folder may exist but must not hold a
        model already); `source` is recorded in model_index.json."""
        folder = Path(folder)
        if (folder / INDEX).exists():
            raise OutputError(f"{folder}: already holds a model folder; choose another --out")
        self.register_to_config(source=source)
        _quiet()
        try:
            self.save_pretrained(folder, safe_serialization=True)
        except OSError as error:
            raise OutputError(
                f"{folder}: cannot write the model folder ({error.strerror or error})"
            ) from None
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        full_precision_dtype: torch.dtype | None = None,
        load_clip: bool = True,
    ) -> ColorizeDiffusionPipeline:
        """A model folder, checked (`check_model_folder`), then diffusers' `from_pretrained` (local files
        only), on `device`: the UNet and encoders in `dtype`, the VAE and CLIP in `full_precision_dtype` (None:
        float32 for either). One-line errors for missing, foreign or corrupt parts."""
        folder = Path(folder)
        check_model_folder(folder, clip=load_clip)
        dtypes = {name: full_precision_dtype or torch.float32 for name in FULL_PRECISION}
        skip: dict[str, Any] = {} if load_clip else {CLIP: None}
        _quiet()
        try:
            pipe = cls.from_pretrained(
                folder,
                local_files_only=True,
                dtype={**dtypes, "default": dtype or torch.float32},
                **skip,
            )
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
            names = [n for n in (*COMPONENTS, SCHEDULER, CLIP) if str(folder / n) in str(error)]
            where = folder / names[0] if names else folder  # the component whose file diffusers names
            raise ModelError(f"{where}: corrupt or truncated ({short_error(error)})") from None
        return pipe.to(device)

    # ---- per reference ---------------------------------------------------------------------------------
    def reference_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP local tokens of [-1, 1] reference images (B, T, context_dim)."""
        if self.clip is None:
            raise RuntimeError("this model has no CLIP encoder: convert with --clip or pass tokens directly")
        return clip_tokens(self.clip, images.to(self._execution_device))

    @property
    def size_embed_dim(self) -> int:
        """Width of one ratio's sinusoidal embedding: the size embedding is two of them, concatenated."""
        return self.background_encoder.config["adm_in_channels"] // 2

    def size_embedding(self, ratio_h: float | torch.Tensor, ratio_w: float | torch.Tensor) -> torch.Tensor:
        """Size embedding (B, adm_in_channels) of reference-to-output ratios (float32)."""
        return size_embedding(ratio_h, ratio_w, self.size_embed_dim).to(self._execution_device)

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
        return self.sketch_encoder(sketch.to(self._execution_device, self.sketch_encoder.dtype))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Scaled latent (posterior mean × scaling factor, float32) of [-1, 1] images."""
        mean = self.vae.encode(image.to(self._execution_device, self.vae.dtype)).latent_dist.mean
        return mean.float() * self.vae.config["scaling_factor"]

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (float32, not clamped) from scaled latents."""
        z = latent.to(self._execution_device, self.vae.dtype) / self.vae.config["scaling_factor"]
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

    # ---- the batch function ------------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(
        self,
        conditioning: Conditioning,
        *,
        sketch: Frames,
        noise: Frames,
        region_masks: Frames | None = None,
        init_images: Frames | None = None,
        sampler: str = "dpmpp",
        steps: int = 20,
        strength: float = 1.0,
        ref_scale: float = 4.0,
        sketch_scale: float = 1.0,
        batch_size: int | None = None,
        cuda_graph: bool = False,
        attention: Sequence[str] = ATTENTION_BACKENDS,
        callback: StepCallback | None = None,
    ) -> BatchResult:
        """B prepared frames -> their final latents and decoded images: the whole sampling run of one batch.

        The frames (each argument B frames, stacked or as a list of per-frame arrays, on any device):
          sketch        (B, Hp, Wp) one plane, or (B, 3, Hp, Wp): the inverted sketch in [-1, 1], lines
                        bright, at the model input's size (padded to multiples of 64)
          noise         (B, C, h, w) start noise: the engine draws it per frame (`temporal.frame_noise`), the
                        parity check passes the official run's
          region_masks  (B, N, h, w) latent region masks of the N characters (read when the conditioning
                        splits)
          init_images   (B, Hp, Wp, 3) uint8 start images: img2img from `strength` (None: every step from
                        noise)
        The run: `sampler` (dpmpp, ddim, euler) over `steps`; guidance branches by `ref_scale` and
        `sketch_scale` (on above 1, `sampling.branches`); the UNet batch padded to `batch_size` frames with
        copies of the last frame (a fixed shape, so a frame's bytes do not depend on its companions), the
        copies dropped; `cuda_graph`: replay the UNet call as a CUDA graph (one per batch shape, kept in the
        conditioning); `attention`: the SDPA backends the UNet may use on a GPU, in order. The scheduler and
        the conditioning scales are the pipeline's (`self.scheduler.config`, `self.scales`). `callback` gets
        {i, t, x, v, branches} after every step (x: latents after the step, v: guided v, branches: v per
        branch). The CLIP tokens are the conditioning's (`encode_references`' token function).
        """
        device = self._execution_device
        b = len(noise)
        width = max(b, batch_size or b)  # W: frames per UNet call

        def batched(frames: Frames) -> torch.Tensor:
            """The frames stacked, padded to `width` with copies of the last one, on the device."""
            t = frames if isinstance(frames, torch.Tensor) else _stack(frames)
            if width > b:
                t = torch.cat([t, t[-1:].expand(width - b, *t.shape[1:])])
            return _to_device(t, device)

        # 1. inputs at the batch's fixed shape, every guidance branch stacked: G = len(names) branches
        names = branches(ref_scale, sketch_scale)
        x0 = batched(sketch)
        if x0.ndim == 3:
            x0 = x0[:, None].expand(-1, 3, -1, -1).contiguous()  # (W, 3, Hp, Wp)
        masks = (
            batched(region_masks) if conditioning.split and region_masks is not None else None
        )  # (W, N, h, w)
        inputs = batch_inputs(
            self, conditioning, hints=self.encode_sketch(x0), region_masks=masks, names=names
        )

        # 2. the scheduler and the start: noise, or the start images encoded and noised to the first step
        scheduler = make_scheduler(sampler, dict(self.scheduler.config))
        timesteps = set_steps(scheduler, steps, 1.0 if init_images is None else strength)  # on the CPU
        image_latents = None
        if init_images is not None:
            image_latents = self.encode_image(to_model_image(batched(init_images)))  # (W, C, h, w)
        latents = start_latents(
            scheduler, batched(noise), timesteps, image_latents=image_latents
        )  # (W, C, h, w)

        # 3. the denoising loop: one UNet call per step for every branch and frame, no host sync
        model_call = _model_call(self, conditioning, inputs, names, width, cuda_graph)
        model_steps = timesteps.to(device)  # the scheduler reads t on the CPU, the UNet on the device
        with _attention(device, attention):
            for i, t in enumerate(timesteps):
                x = scheduler.scale_model_input(latents, t)  # (W, C, h, w)
                x_all = x.repeat(len(names), 1, 1, 1)  # (G·W, C, h, w), branch-major as `inputs`
                t_all = model_steps[i].reshape(1).expand(x_all.shape[0])  # (G·W,)
                v_all = model_call(x_all, t_all).chunk(len(names))  # G × (W, C, h, w)
                v_branches = dict(zip(names, v_all, strict=True))
                v = combine(v_branches, ref_scale, sketch_scale)  # (W, C, h, w) guided v
                latents = scheduler.step(v, t, latents, return_dict=False)[0]  # (W, C, h, w)
                if callback is not None:
                    callback({"i": i, "t": t, "x": latents, "v": v, "branches": v_branches})

        # 4. decode at the fixed batch shape too, then drop the padding
        images = self.decode_latent(latents)[:b]  # (B, 3, Hp, Wp)
        return BatchResult(latents=latents[:b], images=images)


# ---- what the loop reads ---------------------------------------------------------------------------------


@dataclass
class BatchInputs:
    """What every step of one batch reads besides x and t: the branches' contexts, hints and masks."""

    context: torch.Tensor  # (branches·B, T_total, C)
    hints: list[torch.Tensor]  # per hint level (branches·B, C_l, h_l, w_l)
    region_masks: torch.Tensor | None  # (branches·B, N, h, w), when the conditioning splits


def batch_inputs(
    model: ColorizeDiffusionPipeline,
    conditioning: Conditioning,
    *,
    hints: list[torch.Tensor],
    region_masks: torch.Tensor | None,
    names: list[str],
) -> BatchInputs:
    """The branches of a batch stacked as the official sampler stacks them (cond, uncond_ref, uncond_sketch).

    hints: the sketch encoder's hints of the batch (B frames, before the control scale); the unconditional
    sketch branch reads the conditioning's blank-sketch hints. region_masks (B, N, h, w) at latent size, used
    when the conditioning splits.
    """
    width = hints[0].shape[0]
    blank = conditioning.blank_hints or []
    if "uncond_sketch" in names and len(blank) != len(hints):
        raise ValueError("the unconditional sketch branch needs the conditioning's blank_hints")
    contexts = {
        "cond": conditioning.context,
        "uncond_ref": conditioning.zero_context,
        "uncond_sketch": conditioning.context,
    }
    masks_all = None
    if conditioning.split and region_masks is not None:
        masks_all = region_masks.to(model._execution_device, model.unet.dtype).repeat(len(names), 1, 1, 1)
    return BatchInputs(
        context=torch.cat([contexts[n].expand(width, -1, -1) for n in names]),
        hints=[
            torch.cat([blank[level].expand_as(h) if n == "uncond_sketch" else h for n in names])
            for level, h in enumerate(hints)
        ],
        region_masks=masks_all,
    )


def predict(
    model: ColorizeDiffusionPipeline,
    conditioning: Conditioning,
    inputs: BatchInputs,
    x: torch.Tensor,
    t: torch.Tensor,
) -> torch.Tensor:
    """float32 v of every branch and frame (x, t: branches·B stacked as `inputs`): one UNet call."""
    v = model.predict_v(
        x.to(model.unet.dtype),
        t,
        context=inputs.context,
        sketch_hints=inputs.hints,
        region_masks=inputs.region_masks,
        background_features=conditioning.background_features,
        style_vectors=conditioning.style_vectors,
    )
    return v.float()


def _quiet() -> None:
    """No progress bars from diffusers' and transformers' savers and loaders (a batch tool's logs)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _model_call(
    model: ColorizeDiffusionPipeline,
    conditioning: Conditioning,
    inputs: BatchInputs,
    names: list[str],
    width: int,
    cuda_graph: bool,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`model_call(x_all, t_all)` of a batch: eager `predict`, or the shot's CUDA graph fed the batch's inputs."""
    if cuda_graph:
        from .cuda_graph import GraphedModelCall

        graph = conditioning.graphs.setdefault((width, *names), GraphedModelCall(model, conditioning))
        return graph.load(inputs)

    def eager(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict(model, conditioning, inputs, x, t)

    return eager


@contextmanager
def _attention(device: torch.device, backends: Sequence[str]) -> Iterator[None]:
    """On a GPU, the attention backends the UNet may use (FlashAttention first: exact attention; the
    memory-efficient kernel where flash cannot run, float32; the math kernel last)."""
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([getattr(SDPBackend, name) for name in backends]):
        yield


def _stack(frames: Sequence[np.ndarray] | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(frames[0], torch.Tensor):
        return torch.stack(list(frames))  # type: ignore[arg-type]
    return torch.from_numpy(np.stack(frames))


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A tensor on `device`; a CPU tensor goes to a GPU from pinned memory, without waiting for the copy."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
