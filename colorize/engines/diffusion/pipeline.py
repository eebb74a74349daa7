"""The v2 sampling run as functions on tensors: what the engine runs per shot and per batch, and what
`colorize model parity` runs on the end-to-end fixture. Nothing here reads files or knows about frames.

Per shot (`encode_references`), for the mode `v2` (the official app with style and background
enhancement on):

    ref_tokens   = tokens(reference)                                   CLIP local tokens, at its own size
    bleached     = bleach(reference, mask, threshold)                  character whitened (no background image)
    bg_tokens    = tokens(bleached)
    z_ref, z_bg  = encode(resize_bicubic(reference | bleached, latent size))
    size_emb     = size_embedding(reference_size_ratios(reference, output))
    style        = style_encoder(z_ref, ref_tokens, size_emb)          averaged over the characters
    hs_bg        = background_encoder(z_bg, ref_tokens, size_emb)      the reference's tokens as context
    context      = [ref_tokens_1 ; … ; ref_tokens_N ; bg_tokens]       split cross-attention
    blank_hints  = sketch_encoder(blank sketch)                        the unconditional sketch branch's

With a background image the background encoder reads that image, its tokens and its own size embedding
instead of the bleached reference. Mode `plain` (enhancements off) uses the references' tokens as the
context and nothing else: no split attention, no background injection, no style.

Per batch (`denoise_batch`, the one function the engine, `colorize model parity` and bench/bench_gpu.py
call): a batch of prepared frames (sketches, region masks, start noise, img2img start images) in, decoded
images out. It pads the batch to its fixed shape, stacks the guidance branches as the official sampler
does (cond, uncond_ref, uncond_sketch: `batch_inputs`), builds the scheduler, starts from noise or from the
encoded images noised to `strength`, runs the denoising loop (one UNet call per step for every branch and
frame: `predict`, or its CUDA-graph replay, cuda_graph.py) and decodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .embeddings import reference_size_ratios
from .modeling import ColorizeDiffusionModel
from .preprocess import to_model_image
from .sampling import branches, combine, make_scheduler, set_steps, start_latents

if TYPE_CHECKING:
    from .cuda_graph import GraphedModelCall

TokenFunction = Callable[[torch.Tensor], torch.Tensor]
Mode = Literal["v2", "plain"]

# The official app's reference-mask handling: the segmentation mask is dilated with an 11×11 max-pool,
# then the reference is whitened where the mask is at least 0.5.
BLEACH_DILATION = 11
BLEACH_THRESHOLD = 0.5


# ---- references ----------------------------------------------------------------------------------------


def dilate_mask(mask: torch.Tensor, kernel: int = BLEACH_DILATION) -> torch.Tensor:
    """(B, 1, H, W) soft mask grown by a kernel×kernel max-pool (stride 1, same size), clamped to [0, 1]."""
    return F.max_pool2d(mask.float(), kernel_size=kernel, stride=1, padding=kernel // 2).clamp(0, 1)


def bleach(reference: torch.Tensor, mask: torch.Tensor, threshold: float = BLEACH_THRESHOLD) -> torch.Tensor:
    """The reference kept where `mask` < threshold (background), +1 (white) where it is not (the character)."""
    return torch.where(mask < threshold, reference, torch.ones_like(reference))


def resize_reference(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A [-1, 1] image batch resized for the VAE as the official app does: bicubic, no antialias, no clamp."""
    return F.interpolate(image, size=tuple(size), mode="bicubic", align_corners=False)


def size_ratios(image: torch.Tensor, output: tuple[int, int]) -> torch.Tensor:
    """(2,) float32 reference-to-output ratios (h, w) of an image batch (B, 3, h, w)."""
    height, width = image.shape[-2:]
    return torch.tensor(reference_size_ratios(height, width, *output), dtype=torch.float32)


@dataclass
class Conditioning:
    """What every step reads, computed once per shot; `steps` keeps the intermediates (parity, logs)."""

    context: torch.Tensor  # (1, T_total, C)
    background_features: list[torch.Tensor] | None
    style_vectors: list[torch.Tensor] | None
    split: bool  # split cross-attention (v2 with characters): the region masks are used
    steps: dict[str, torch.Tensor] = field(default_factory=dict)
    blank_hints: list[torch.Tensor] | None = None  # sketch hints of a blank sketch at the model input's size
    graphs: dict[tuple, GraphedModelCall] = field(default_factory=dict)  # CUDA graphs by batch shape

    @property
    def zero_context(self) -> torch.Tensor:
        """The unconditional reference branch's context: every token zero."""
        return torch.zeros_like(self.context)


def encode_references(
    model: ColorizeDiffusionModel,
    tokens: TokenFunction,
    characters: Sequence[torch.Tensor],
    *,
    background: torch.Tensor | None = None,
    bleach_mask: torch.Tensor | None = None,
    latent_size: tuple[int, int],
    output_size: tuple[int, int] | None = None,
    mode: Mode = "v2",
    bleach_threshold: float = BLEACH_THRESHOLD,
) -> Conditioning:
    """The per-shot conditioning (see the module docstring).

    characters: [-1, 1] reference images (1, 3, h_i, w_i), manifest order. background: a background image,
    or None to bleach the first character's reference with `bleach_mask` (1, 1, h_1, w_1), already dilated.
    latent_size: the size the references are resized to for the VAE (the model input's pixel size; the
    blank sketch of the unconditional sketch branch has it too).
    output_size: the size the size embedding compares the references with (default: latent_size).
    """
    conditioning = _encode_references(
        model,
        tokens,
        characters,
        background,
        bleach_mask,
        latent_size,
        output_size or latent_size,
        mode,
        bleach_threshold,
    )
    conditioning.blank_hints = model.encode_sketch(torch.full((1, 3, *latent_size), -1.0))
    return conditioning


def _encode_references(
    model: ColorizeDiffusionModel,
    tokens: TokenFunction,
    characters: Sequence[torch.Tensor],
    background: torch.Tensor | None,
    bleach_mask: torch.Tensor | None,
    latent_size: tuple[int, int],
    output_size: tuple[int, int],
    mode: Mode,
    bleach_threshold: float,
) -> Conditioning:
    steps: dict[str, torch.Tensor] = {}

    def encode(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens, latent, size embedding of one image."""
        ratios = size_ratios(image, output_size)
        return (
            tokens(image),
            model.encode_image(resize_reference(image, latent_size)),
            model.size_embedding(*ratios),
        )

    if not characters:  # the background alone: no split attention, no background injection
        if background is None:
            raise ValueError("encode_references needs a character or a background reference")
        if mode == "plain":
            return Conditioning(tokens(background), None, None, split=False, steps=steps)
        bg_tokens, z_bg, bg_emb = encode(background)
        return Conditioning(bg_tokens, None, model.style_vectors(z_bg, bg_tokens, bg_emb), split=False)

    if mode == "plain":  # the references' tokens are the whole context
        context = torch.cat([tokens(image) for image in characters], dim=1)
        return Conditioning(context, None, None, split=False, steps=steps)
    encoded = [encode(image) for image in characters]
    ref_tokens, z_ref, size_emb = encoded[0]
    steps.update(ref_tokens=ref_tokens, z_ref=z_ref, size_emb=size_emb)
    steps["size_ratios"] = size_ratios(characters[0], output_size)
    if background is not None:
        bg_tokens, z_bg, bg_emb = encode(background)
        bg_context = bg_tokens
    else:
        if bleach_mask is None:
            raise ValueError("bleaching the reference needs its mask")
        bleached = bleach(characters[0], bleach_mask, bleach_threshold)
        steps["reference_bleached"] = bleached
        bg_tokens, z_bg = tokens(bleached), model.encode_image(resize_reference(bleached, latent_size))
        # The official path with style and background enhancement and no background image: the background
        # encoder reads the reference's own tokens, not the bleached reference's.
        bg_emb, bg_context = size_emb, ref_tokens
    steps.update(bg_tokens=bg_tokens, z_bg=z_bg)
    features = model.background_features(z_bg, bg_context, bg_emb)
    styles = [model.style_vectors(z, t, emb) for t, z, emb in encoded]
    style = [torch.stack(level).mean(0) for level in zip(*styles, strict=True)]
    context = model.character_context([t for t, _, _ in encoded], bg_tokens)
    return Conditioning(context, features, style, split=True, steps=steps)


# ---- the denoiser of a batch ---------------------------------------------------------------------------


@dataclass
class BatchInputs:
    """What every step of one batch reads besides x and t: the branches' contexts, hints and masks."""

    context: torch.Tensor  # (branches·B, T_total, C)
    hints: list[torch.Tensor]  # per hint level (branches·B, C_l, h_l, w_l)
    region_masks: torch.Tensor | None  # (branches·B, N, h, w), when the conditioning splits


def batch_inputs(
    model: ColorizeDiffusionModel,
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
        masks_all = region_masks.to(model.device, model.unet.dtype).repeat(len(names), 1, 1, 1)
    return BatchInputs(
        context=torch.cat([contexts[n].expand(width, -1, -1) for n in names]),
        hints=[
            torch.cat([blank[level].expand_as(h) if n == "uncond_sketch" else h for n in names])
            for level, h in enumerate(hints)
        ],
        region_masks=masks_all,
    )


def predict(
    model: ColorizeDiffusionModel,
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


# ---- the batch function -----------------------------------------------------------------------------------

Frames = torch.Tensor | Sequence[np.ndarray] | Sequence[torch.Tensor]
StepCallback = Callable[[dict[str, Any]], None]
ATTENTION_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")  # on a GPU, in order of preference


@dataclass
class BatchResult:
    latents: torch.Tensor  # (B, C, h, w) float32 final latents, on the model's device
    images: torch.Tensor  # (B, 3, Hp, Wp) float32 decoded images in [-1, 1] (not clamped), on the device


@torch.inference_mode()
def denoise_batch(
    model: ColorizeDiffusionModel,
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
      sketch        (B, Hp, Wp) one plane, or (B, 3, Hp, Wp): the inverted sketch in [-1, 1], lines bright,
                    at the model input's size (padded to multiples of 64)
      noise         (B, C, h, w) start noise: the engine draws it per frame (`temporal.frame_noise`), the
                    parity check passes the official run's
      region_masks  (B, N, h, w) latent region masks of the N characters (read when the conditioning splits)
      init_images   (B, Hp, Wp, 3) uint8 start images: img2img from `strength` (None: every step from noise)
    The run: `sampler` (dpmpp, ddim, euler) over `steps`; guidance branches by `ref_scale` and
    `sketch_scale` (on above 1, `sampling.branches`); the UNet batch padded to `batch_size` frames with
    copies of the last frame (a fixed shape, so a frame's bytes do not depend on its companions), the copies
    dropped; `cuda_graph`: replay the UNet call as a CUDA graph (one per batch shape, kept in the
    conditioning); `attention`: the SDPA backends the UNet may use on a GPU, in order. The scheduler and the
    conditioning scales are the model's (`model.scheduler_config`, `model.scales`). `callback` gets
    {i, t, x, v, branches} after every step (x: latents after the step, v: guided v, branches: v per branch).
    """
    device = model.device
    b = len(noise)
    width = max(b, batch_size or b)  # frames per UNet call

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
    masks = batched(region_masks) if conditioning.split and region_masks is not None else None  # (W, N, h, w)
    inputs = batch_inputs(model, conditioning, hints=model.encode_sketch(x0), region_masks=masks, names=names)

    # 2. the scheduler and the start: noise, or the start images encoded and noised to the first step
    scheduler = make_scheduler(sampler, model.scheduler_config)
    timesteps = set_steps(scheduler, steps, 1.0 if init_images is None else strength)  # on the CPU
    image_latents = None
    if init_images is not None:
        image_latents = model.encode_image(to_model_image(batched(init_images)))  # (W, C, h, w)
    latents = start_latents(scheduler, batched(noise), timesteps, image_latents=image_latents)  # (W, C, h, w)

    # 3. the denoising loop: one UNet call per step for every branch and frame, no host sync
    model_call = _model_call(model, conditioning, inputs, names, width, cuda_graph)
    model_steps = timesteps.to(device)  # the scheduler reads t on the CPU, the UNet on the device
    with _attention(device, attention):
        for i, t in enumerate(timesteps):
            x = scheduler.scale_model_input(latents, t)  # (W, C, h, w)
            x_all = x.repeat(len(names), 1, 1, 1)  # (G·W, C, h, w), branch-major as `inputs`
            t_all = model_steps[i].reshape(1).expand(x_all.shape[0])  # (G·W,)
            v_all = model_call(x_all, t_all).chunk(len(names))  # G × (W, C, h, w)
            v_branches = dict(zip(names, v_all, strict=True))
            v = combine(v_branches, ref_scale, sketch_scale)  # (W, C, h, w) guided v
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
            if callback is not None:
                callback({"i": i, "t": t, "x": latents, "v": v, "branches": v_branches})

    # 4. decode at the fixed batch shape too, then drop the padding
    images = model.decode_latent(latents)[:b]  # (B, 3, Hp, Wp)
    return BatchResult(latents=latents[:b], images=images)


def _model_call(
    model: ColorizeDiffusionModel,
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
