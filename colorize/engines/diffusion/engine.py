"""The diffusion engine: shots streamed through the ColorizeDiffusion v2 core.

Working size (`preprocess.frame_geometry`): the model sees each frame resized so its long side is
`diffusion.resolution` (aspect kept; 0: native size), padded to a multiple of 64. Everything the model
sees is at that size: the sketch, the region masks, the keyframe / warped init images, the reference
latents. The decoded result is cropped to the working size and resized back to the frame's size; what
happens at the frame's size stays there: mask derivation and merging (`mask_dilation` is in frame
pixels), optical flow and warping of the previous result (a frame-sized result, resized into the
working size like any init image), cel finish (on the frame-sized result, so regions follow the
original line art).

Per shot (`prepare`, once per shot whatever the frame count): `pipeline.encode_references` (CLIP tokens
of every reference, the reference latents, the background encoder's token maps from the background
reference or the first character's reference bleached, the style vectors averaged over characters, the
split-attention context) and the blank-sketch hints of the unconditional sketch branch. Bleaching whitens
the character where its mask (dilated 11×11, at least 0.5) says so; the mask comes from the manifest's
`characters.NAME.reference_mask`, else the model folder's segmentation network (`anime_seg/`), else a
flat-backdrop heuristic; `frame_done` says which (`bleach_mask`).

Per batch (`colorize`): sketches normalised and encoded, character masks merged (missing ones made from
the line art or an anime-segmentation network), initial latents from `colorize.temporal`, then the
explicit denoising loop of `sampling` with every guidance branch of every frame in one UNet batch
(`pipeline.make_model_call`),
VAE decode, crop, resize back to the frame's size, optional cel finish.

Temporal modes (see `colorize.temporal` for the warp-chain rule that makes chunked runs equal whole
runs): `none` noise(seed, f); `locked` one noise field for the shot; `warp` the previous frame's result
warped onto the line art, encoded and denoised from `strength` (frames run one after the other).

Batch shape: the UNet always sees `settings.batch` frames per call (a short last batch is padded with
copies of its last frame and the copies are dropped), so a frame's bytes never depend on where a
chunk boundary cut the batches. `--batch` is therefore part of the settings that determine the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorize.engines.base import Character, FrameInput, FrameResult, ShotContext
from colorize.errors import MissingInputError, UsageError
from colorize.images import over_white
from colorize.regions.segment import ink_u8
from colorize.settings import Settings
from colorize.temporal import SHOT_KEY, chain_start, frame_noise, warp_previous

from . import preprocess as pp
from .cel import cel_finish
from .modeling import INDEX, ColorizeDiffusionModel, missing_parts, read_index
from .pipeline import Conditioning, dilate_mask, encode_references, make_model_call
from .sampling import (
    branch_predictor,
    branches,
    guided_denoiser,
    make_scheduler,
    sample,
    set_steps,
    start_latents,
)

CONVERT_HINT = (
    "`colorize model convert v2-full.safetensors --out DIR --clip open_clip_pytorch_model.bin` makes a "
    "complete folder (`colorize model init-random DIR` a random one for tests)"
)


def check_model_folder(folder: str | Path) -> Path:
    """Raise one MissingInputError line naming everything missing, and how to make the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: model folder not found; {CONVERT_HINT}")
    index = read_index(folder) if (folder / INDEX).is_file() else None
    missing = [INDEX] if index is None else missing_parts(folder, index)
    if missing:
        raise MissingInputError(
            f"{folder}: incomplete model folder, missing {', '.join(missing)}; {CONVERT_HINT}"
        )
    return folder


def choose_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype, torch.dtype]:
    """(device, UNet/encoder dtype, VAE/CLIP dtype).

    auto: CUDA when present, else CPU. dtype auto: as the official app, the UNet and the encoders in bf16
    (fp16 without bf16 support) and the VAE and CLIP in fp32 on a GPU; everything fp32 on CPU. An explicit
    dtype applies to every component.
    """
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UsageError(f"diffusion.device {device!r}: not a device (auto, cpu, cuda, cuda:N)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"diffusion.device {device!r}: CUDA is not available on this machine")
    if dtype != "auto":
        return dev, getattr(torch, dtype), getattr(torch, dtype)
    if dev.type == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return dev, half, torch.float32
    return dev, torch.float32, torch.float32


@dataclass
class ShotCache:
    """Everything that depends only on the references, the frame size and the working resolution."""

    geometry: pp.Geometry  # frame size, working size, padded model input (multiples of 64)
    latent: tuple[int, int]  # latent (h, w) of the padded size
    conditioning: Conditioning
    blank_hints: list[torch.Tensor]  # sketch hints of a blank sketch (unconditional sketch branch)
    background_source: str  # what the background encoder read
    bleach_mask: str | None  # where the bleaching mask came from: manifest, anime_seg, heuristic


class DiffusionEngine:
    """ColorizeDiffusion v2 engine; see the module docstring."""

    name = "diffusion"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.options = settings.diffusion
        folder = check_model_folder(settings.model or "")
        self.device, self.dtype, full = choose_device(self.options.device, self.options.dtype)
        self.model = ColorizeDiffusionModel.from_pretrained(
            folder, device=self.device, dtype=self.dtype, full_precision_dtype=full
        )
        self.segmenter = None
        if self.options.mask_source != "lineart":
            self.segmenter = pp.AnimeSegmenter.from_model_folder(folder, self.device)
            if self.segmenter is None and self.options.mask_source == "anime_seg":
                raise MissingInputError(
                    f"{folder}: diffusion.mask_source anime_seg needs anime_seg/model.pt in the model folder"
                )
        if self.device.type == "cuda":  # reproducible kernels; CPU kernels already are
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.factor = 2 ** (len(self.model.vae.config.block_out_channels) - 1)
        self._shot: ShotContext | None = None
        self._cache: ShotCache | None = None
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None  # warp chain: (frame, result, lineart)

    # ---- per shot --------------------------------------------------------------------------------------

    @torch.inference_mode()
    def prepare(self, shot: ShotContext) -> None:
        """Encode every reference once for the shot."""
        self._shot = shot
        self._last = None
        geometry = pp.frame_geometry(*shot.size, self.options.resolution)
        latent = (geometry.padded[0] // self.factor, geometry.padded[1] // self.factor)

        def image(rgb: np.ndarray) -> torch.Tensor:
            return pp.to_model_image(rgb)[None].to(self.device)

        if not shot.characters and shot.background is None:
            raise MissingInputError(
                "the diffusion engine needs a reference: give `characters` or `background` in the manifest"
            )
        mode = self.options.mode
        bleach_mask, how = None, None
        if mode == "plain":
            source = "none (plain mode)" if shot.characters else "background reference"
        elif shot.background is not None or not shot.characters:
            source = "background reference"
        else:
            first = shot.characters[0]
            mask, how = self._reference_mask(first)
            bleach_mask = dilate_mask(torch.from_numpy(mask)[None, None].to(self.device))
            source = f"{first.name} bleached"
        conditioning = encode_references(
            self.model,
            self.model.reference_tokens,
            [image(c.reference) for c in shot.characters],
            background=image(shot.background) if shot.background is not None else None,
            bleach_mask=bleach_mask,
            latent_size=geometry.padded,
            output_size=geometry.work,
            mode=mode,
        )
        blank = torch.full(
            (1, 3, *geometry.padded), -1.0, device=self.device, dtype=self.model.sketch_encoder.dtype
        )
        self._cache = ShotCache(
            geometry=geometry,
            latent=latent,
            conditioning=conditioning,
            blank_hints=self.model.encode_sketch(blank),
            background_source=source,
            bleach_mask=how,
        )

    def _reference_mask(self, character: Character) -> tuple[np.ndarray, str]:
        """(soft H×W float32 mask of the character in its reference, where it came from)."""
        if character.reference_mask is not None:
            return character.reference_mask.astype(np.float32), "manifest"
        if self.segmenter is not None:
            return self.segmenter.probability(character.reference), "anime_seg"
        return pp.reference_foreground(character.reference).astype(np.float32), "heuristic"

    # ---- per batch -------------------------------------------------------------------------------------

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        """Color a batch: as one UNet batch (none, locked), or frame after frame along the warp chain."""
        if self.settings.temporal == "warp":
            return [self._warp_frame(fi) for fi in batch]
        seed, shape = self.settings.seed, self._latent_shape()
        if self.settings.temporal == "locked":
            noise = [frame_noise(seed, SHOT_KEY, shape)] * len(batch)
        else:
            noise = [frame_noise(seed, fi.frame, shape) for fi in batch]
        images, infos = self._run(batch, torch.stack(noise))
        for info in infos:
            info["temporal"] = self.settings.temporal
        return [FrameResult(fi.frame, img, info) for fi, img, info in zip(batch, images, infos, strict=True)]

    def _latent_shape(self) -> tuple[int, ...]:
        cache = self._require_cache()
        return (self.model.unet.config.in_channels, *cache.latent)

    def _require_cache(self) -> ShotCache:
        if self._cache is None or self._shot is None:
            raise RuntimeError("DiffusionEngine.prepare(shot) must run before colorize()")
        return self._cache

    # ---- warp chains -----------------------------------------------------------------------------------

    def _input(self, frame: int) -> FrameInput:
        """A frame's inputs read through the shot's loaders (to recompute a warp chain)."""
        shot = self._shot
        assert shot is not None
        key = shot.load_keyframe(frame) if frame in shot.keyframes else None
        return FrameInput(frame, shot.load_lineart(frame), shot.load_masks(frame), key)

    def _warp_frame(self, fi: FrameInput) -> FrameResult:
        shot = self._shot
        assert shot is not None
        frames, keys = list(shot.frames), list(shot.keyframes)
        anchor = chain_start(fi.frame, frames, keys, self.options.warp_anchor_every)
        index = frames.index(fi.frame)
        seed, shape = self.settings.seed, self._latent_shape()
        noise = frame_noise(seed, fi.frame, shape)[None]
        if fi.frame == anchor:
            keyframe = (
                fi.keyframe
                if fi.keyframe is not None
                else (shot.load_keyframe(fi.frame) if fi.frame in keys else None)
            )
            if keyframe is None:
                images, infos = self._run([fi], noise)
                infos[0]["temporal"] = "warp anchor (noise)"
            else:
                images, infos = self._run([fi], noise, init=[over_white(keyframe)])
                infos[0]["temporal"] = "warp anchor (keyframe)"
        else:
            previous = frames[index - 1]
            if self._last is None or self._last[0] != previous:
                # This run did not just compute the predecessor: recompute the chain from its anchor (or from
                # the latest frame of the chain this engine still holds).
                first = anchor
                if self._last is not None and anchor <= self._last[0] < previous:
                    first = frames[frames.index(self._last[0]) + 1]
                for frame in frames[frames.index(first) : index]:
                    self._warp_frame(self._input(frame))
            assert self._last is not None and self._last[0] == previous
            _, prev_image, prev_lineart = self._last
            warped, occluded = warp_previous(
                prev_image, ink_u8(fi.lineart), ink_u8(prev_lineart), self.options.occlusion_threshold
            )
            images, infos = self._run([fi], noise, init=[warped])
            infos[0]["temporal"] = f"warp from {previous} (anchor {anchor})"
            infos[0]["occluded"] = round(float(occluded.mean()), 4)
        self._last = (fi.frame, images[0], fi.lineart)
        return FrameResult(fi.frame, images[0], infos[0])

    # ---- the sampler -----------------------------------------------------------------------------------

    def _masks(self, fi: FrameInput) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        """(foreground, split N×H×W, source per character) of one frame."""
        shot = self._shot
        assert shot is not None
        given = [c.name for c in shot.characters if c.name in fi.masks]
        sources = {name: "manifest" for name in given}
        missing = [c.name for c in shot.characters if c.name not in fi.masks]
        derived = None
        if missing:
            if self.segmenter is not None:
                derived, how = self.segmenter(fi.lineart), "anime_seg"
            else:
                flat = self.settings.flat
                derived, how = (
                    pp.lineart_foreground(fi.lineart, flat.gap_close, flat.line_threshold),
                    "lineart",
                )
            taken = np.zeros(shot.size, bool)
            for name in given:
                taken |= fi.masks[name].astype(bool)
            derived = derived & ~taken
            sources.update({name: how for name in missing})
        masks = [fi.masks.get(c.name, derived) for c in shot.characters]
        merged = pp.merge_character_masks(masks, self.options.mask_dilation)
        return merged.foreground, merged.split, sources

    @torch.inference_mode()
    def _run(
        self, batch: list[FrameInput], noise: torch.Tensor, init: list[np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Denoise `batch` from `noise` (B, C, h, w), or from the `init` images at `strength`."""
        cache = self._require_cache()
        shot = self._shot
        assert shot is not None
        m, o = self.model, self.options
        geometry = cache.geometry
        split = cache.conditioning.split
        infos: list[dict[str, Any]] = []
        sketches, regions = [], []
        for fi in batch:
            foreground, masks, sources = self._masks(fi) if split else (None, None, {})
            ink = np.clip(geometry.to_work(ink_u8(fi.lineart).astype(np.float32) / 255.0), 0.0, 1.0)
            sketches.append(pp.normalize_sketch(ink))
            if masks is not None:
                regions.append(pp.latent_masks(masks, geometry, cache.latent))
            info: dict[str, Any] = {
                "mode": o.mode,
                "mask_source": sources,
                "background": cache.background_source,
                "working_size": [geometry.work[1], geometry.work[0]],  # [w, h] as run_start's `size`
            }
            if cache.bleach_mask is not None:
                info["bleach_mask"] = cache.bleach_mask
            if foreground is not None:
                info["foreground"] = round(float(foreground.mean()), 4)
            infos.append(info)

        # A fixed UNet batch shape: pad with copies of the last frame (dropped below).
        b = len(batch)
        width = max(b, self.settings.batch) if self.settings.temporal != "warp" else b

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t[-1:].expand(width - b, *t.shape[1:])]) if width > b else t

        sketch = pad(torch.stack(sketches)).to(self.device)
        names = branches(o.ref_scale, o.sketch_scale)
        model_call = make_model_call(
            m,
            cache.conditioning,
            hints=m.encode_sketch(sketch),
            blank_hints=cache.blank_hints,
            region_masks=pad(torch.stack(regions)) if regions else None,
            names=names,
        )
        noise = pad(noise).to(self.device)
        scheduler = make_scheduler(o.sampler, m.scheduler_config)
        if init is None:
            timesteps = set_steps(scheduler, o.steps)
            latents = start_latents(scheduler, noise, timesteps)
        else:
            images = pad(
                torch.stack(
                    [pp.to_model_image(pp.pad_image(geometry.to_work(img), geometry.padded)) for img in init]
                )
            )
            timesteps = set_steps(scheduler, o.steps, o.strength)
            latents = start_latents(scheduler, noise, timesteps, image_latents=m.encode_image(images))
        denoise = guided_denoiser(branch_predictor(model_call, names), o.ref_scale, o.sketch_scale)
        decoded = m.decode_latent(sample(denoise, latents, scheduler, timesteps, disable=True))

        out = []
        for i, fi in enumerate(batch):
            image = geometry.to_frame(pp.from_model_image(decoded[i]))
            if o.cel_finish:
                image = cel_finish(image, fi.lineart, self.settings.flat)
            out.append(image)
        return out, infos
