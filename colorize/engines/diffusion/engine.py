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

Per frame, ahead (`preprocess`, called by the runner in its reader threads while the model works on an
earlier batch; line art only): the sketch normalised at the working size, the character masks merged
(missing ones made from the line art or an anime-segmentation network) and resized to the latent grid,
the frame's initial noise (`colorize.temporal`), the keyframe of a keyframe anchor at the working size,
the line-art flow and occlusion from the previous frame (`temporal: warp`), the line-art regions of cel
finish.

Per batch (`colorize`): the init images (the previous result warped along the precomputed flow, in worker
threads), then per UNet batch the pipeline's `__call__` (the one batch function the parity check and the GPU
benchmark run too: padding, guidance branches, scheduler, start, the denoising loop, CUDA-graph replay,
decode), one copy back, then crop, resize back and cel finish in worker threads.

Temporal modes (see `colorize.temporal` for the warp-chain rule that makes chunked runs equal whole
runs): `none` noise(seed, f); `locked` one noise field for the shot; `warp` the previous frame's result
warped onto the line art, encoded and denoised from `strength`. Warp chains restart at anchors, so frames of
different chains are independent: the runner hands over the next frames of several chains together
(`planning.warp_batches`). A frame whose predecessor this engine does not hold (a chunk that starts
between anchors) gets its chain recomputed from the anchor first, in memory, batched in the same way.

Batch shape: the UNet always sees `settings.batch` frames per call (when fewer frames are ready, the batch
is padded with copies of its last frame and the copies dropped), and the frames of one call share one
timestep schedule: noise anchors and `none` / `locked` frames every step, keyframe anchors and warped
frames from `strength`. Nothing in a frame's computation mixes frames of a batch, so with the shape fixed
a frame's bytes depend neither on which frames share its batch nor on where a chunk boundary cut the
batches (tested). `--batch` is part of the settings that determine the bytes: on CPU a frame's floats can
differ in the last bit with the batch shape.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np
import torch

from colorize.engines import BatchSizes
from colorize.engines.base import Character, EngineBase, FrameInput, FrameResult, ShotContext
from colorize.errors import ColorizeError, InputDataError, MissingInputError, UsageError
from colorize.images import over_white
from colorize.regions.segment import ink_u8
from colorize.settings import Settings
from colorize.temporal import SHOT_KEY, LineArtWarp, apply_warp, frame_noise, line_art_warp

from . import preprocess as pp
from .cel import CelRegions, cel_apply, cel_regions, keep_alpha
from .conditioning import Conditioning, dilate_mask, encode_references
from .pipeline import ColorizeDiffusionPipeline
from .planning import chain_starts

WORKERS = max(1, min(8, os.cpu_count() or 1))  # threads for per-frame CPU work inside a batch


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
    conditioning: Conditioning  # (with the blank-sketch hints and the shot's CUDA graphs)
    background_source: str  # what the background encoder read
    bleach_mask: str | None  # where the bleaching mask came from: manifest, anime_seg, heuristic


@dataclass
class FramePrep:
    """A frame's CPU work done ahead (`preprocess`): it needs the frame's line art and inputs only.

    NumPy and OpenCV only: torch's CPU kernels run on OpenMP, and a second thread starting them makes a
    second team of threads that fights the model's for the cores. Tensors are made on the main thread, and
    so are masks that need the segmentation network (`masks_from`: completed by `colorize`).
    """

    sketch: np.ndarray  # (Hp, Wp) float32 in [-1, 1], lines bright
    regions: np.ndarray | None  # (N, h, w) float32 latent region masks (split conditioning)
    noise_key: int | str  # the key of the frame's initial noise (`colorize.temporal.frame_noise`)
    from_noise: bool  # every step from noise; else img2img from `strength`
    init: np.ndarray | None  # a keyframe anchor's keyframe at the model's padded size (Hp, Wp, 3) uint8
    warp: LineArtWarp | None  # a warped frame: flow and occlusion from the previous frame's line art
    previous: int | None  # a warped frame: the frame whose result it starts from
    cel: CelRegions | None  # cel finish: the line art's regions and line roles
    info: dict[str, Any]
    masks_from: FrameInput | None = None  # masks still to make on the main thread (segmentation network)


@dataclass
class _Job:
    frame_input: FrameInput
    prep: FramePrep
    anchor: int  # its warp chain's anchor (the frame itself outside `warp`)

    @property
    def frame(self) -> int:
        return self.frame_input.frame


class DiffusionEngine(EngineBase):
    """ColorizeDiffusion v2 engine; see the module docstring.

    `model`: an already loaded model (benchmarks comparing settings on one model); by default the settings'
    model folder is loaded onto the settings' device.
    """

    name = "diffusion"

    def __init__(self, settings: Settings, model: ColorizeDiffusionPipeline | None = None):
        super().__init__()
        self.settings = settings
        self.options = settings.diffusion
        self.sizes = BatchSizes(settings.batch)
        self.device, self.dtype, full = choose_device(self.options.device, self.options.dtype)
        folder = Path(settings.model) if settings.model else None
        if model is None:  # the plan validated the folder (EngineSpec.check); loading reads what it loads
            model = ColorizeDiffusionPipeline.load(
                settings.model or "",
                device="cpu" if self.options.offload else self.device,
                dtype=self.dtype,
                full_precision_dtype=full,
            )
        self.model = model
        if self.options.offload and self.device.type == "cpu":
            # Nothing to offload to; accelerate's hooks would copy every weight at every call, and CPU
            # kernels can round differently on the copies (alignment): the bytes would not be the same.
            self.notes.append("diffusion.offload has no effect on the CPU (the weights are in CPU memory)")
        elif self.options.offload:
            model.enable_model_cpu_offload(device=self.device)  # diffusers' hooks (accelerate)
        self.segmenter = None
        if self.options.mask_source != "lineart" and folder is not None:
            self.segmenter = pp.AnimeSegmenter.from_model_folder(folder, self.device)
        if self.segmenter is None and self.options.mask_source == "anime_seg":
            raise MissingInputError(
                f"{folder}: diffusion.mask_source anime_seg needs anime_seg/model.pt in the model folder"
            )
        self.graphs = self.options.cuda_graph
        if self.graphs and self.device.type != "cuda":
            self.notes.append(
                f"diffusion.cuda_graph needs a CUDA device; the UNet runs eagerly on {self.device}"
            )
            self.graphs = False
        elif self.graphs and self.options.offload:
            self.notes.append("diffusion.cuda_graph is off with diffusion.offload (the weights move)")
            self.graphs = False
        if self.device.type == "cuda":  # reproducible kernels; CPU kernels already are
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.factor = 2 ** (len(self.model.vae.config["block_out_channels"]) - 1)
        self.counts = {"unet_batches": 0, "frames": 0, "padding": 0}  # UNet batches run (benches, tests)
        self._workers: ThreadPoolExecutor | None = None  # (`_pool`: made when first needed, ended by close)
        self._failed = False  # a batch raised: a worker may still be busy (or stuck) on it (see `close`)
        self._shot: ShotContext | None = None
        self._cache: ShotCache | None = None
        self._starts: dict[int, int] = {}  # frame -> its warp chain's anchor
        self._index: dict[int, int] = {}  # frame -> its position in the shot
        self._held: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()  # anchor -> (frame, result)
        self._inks: OrderedDict[int, np.ndarray] = OrderedDict()  # recent frames' ink, for the flow
        self._inks_lock = Lock()

    # ---- per shot --------------------------------------------------------------------------------------

    @torch.inference_mode()
    def prepare(self, shot: ShotContext) -> None:
        """Encode every reference once for the shot."""
        self._shot = shot
        if shot.qa:
            self.notes.append(
                "--qa: the diffusion engine makes no overlays; qa.json lists each frame's details "
                "(temporal seeding, occlusion, foreground, regions with cel finish)"
            )
        self._held.clear()
        with self._inks_lock:
            self._inks.clear()
        self._starts = chain_starts(shot.frames, shot.keyframes, self.options.warp_anchor_every)
        self._index = {f: i for i, f in enumerate(shot.frames)}
        geometry = pp.frame_geometry(*shot.size, self.options.resolution)
        latent = (geometry.padded[0] // self.factor, geometry.padded[1] // self.factor)

        def image(rgb: np.ndarray) -> torch.Tensor:
            return pp.to_model_image(rgb)[None].to(self.model._execution_device)

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
            bleach_mask = dilate_mask(torch.from_numpy(mask)[None, None].to(self.model._execution_device))
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
        self._cache = ShotCache(
            geometry=geometry,
            latent=latent,
            conditioning=conditioning,
            background_source=source,
            bleach_mask=how,
        )

    def close(self) -> None:
        """Shut the engine's worker threads down (the runner calls it when the stream ends). After a batch
        that raised (a bad frame, an engine bug, Ctrl-C), queued work is cancelled and a worker still busy
        on it is not waited for: a stuck worker cannot stall the run's teardown and its summary."""
        if self._workers is not None:
            self._workers.shutdown(wait=not self._failed, cancel_futures=True)
            self._workers = None
        self._failed = False

    @property
    def _pool(self) -> ThreadPoolExecutor:
        """The engine's worker threads (per-frame CPU work inside a batch); a closed engine used again gets
        new ones."""
        if self._workers is None:
            self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="colorize-diffusion")
        return self._workers

    def _reference_mask(self, character: Character) -> tuple[np.ndarray, str]:
        """(soft H×W float32 mask of the character in its reference, where it came from)."""
        if character.reference_mask is not None:
            return character.reference_mask.astype(np.float32), "manifest"
        if self.segmenter is not None:
            return self.segmenter.probability(character.reference), "anime_seg"
        return pp.reference_foreground(character.reference).astype(np.float32), "heuristic"

    def _require_cache(self) -> tuple[ShotContext, ShotCache]:
        if self._cache is None or self._shot is None:
            raise RuntimeError("DiffusionEngine.prepare(shot) must run before preprocess() and colorize()")
        return self._shot, self._cache

    # ---- per frame, ahead of time ------------------------------------------------------------------------

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        """The frame with its `FramePrep` (thread-safe: the runner calls it from its reader threads)."""
        return replace(frame_input, prepared=self._prepare_frame(frame_input))

    def _prepare_frame(self, fi: FrameInput) -> FramePrep:
        shot, cache = self._require_cache()
        o, geometry, f = self.options, cache.geometry, fi.frame
        ink = ink_u8(fi.lineart)
        self._remember_ink(f, ink)
        work_ink = np.clip(geometry.to_work(ink.astype(np.float32) / 255.0), 0.0, 1.0)
        info: dict[str, Any] = {
            "mode": o.mode,
            "mask_source": {},
            "background": cache.background_source,
            "working_size": [geometry.work[1], geometry.work[0]],  # [w, h] as run_start's `size`
        }
        if cache.bleach_mask is not None:
            info["bleach_mask"] = cache.bleach_mask
        if cache.conditioning.split:
            info["foreground"] = None  # (`_add_masks`)
        temporal = self.settings.temporal
        init, warp, previous = None, None, None
        if temporal != "warp":
            info["temporal"] = temporal
        elif self._starts[f] == f:
            key = fi.keyframe
            if key is None and f in shot.keyframes:
                key = shot.load_keyframe(f)
            if key is None:
                info["temporal"] = "warp anchor (noise)"
            else:
                init = self._work_image(over_white(key))  # an RGBA keyframe, over white
                info["temporal"] = "warp anchor (keyframe)"
        else:
            previous = shot.frames[self._index[f] - 1]
            warp = line_art_warp(ink, self._ink(previous), o.occlusion_threshold)
            info["temporal"] = f"warp from {previous} (anchor {self._starts[f]})"
            info["occluded"] = round(float(warp.occluded.mean()), 4)
        cel = cel_regions(fi.lineart, self.settings.flat, self.settings.trace_lines) if o.cel_finish else None
        if cel is not None:
            info["regions"] = int(cel.labels.max())
        prep = FramePrep(
            sketch=pp.sketch_plane(work_ink),
            regions=None,
            noise_key=SHOT_KEY if temporal == "locked" else f,
            from_noise=init is None and warp is None,
            init=init,
            warp=warp,
            previous=previous,
            cel=cel,
            info=info,
            masks_from=fi if self._segments(fi) else None,
        )
        if cache.conditioning.split and prep.masks_from is None:
            self._add_masks(prep, fi)
        return prep

    def _segments(self, fi: FrameInput) -> bool:
        """Whether the frame's masks need the segmentation network (a torch model, maybe on the GPU): it runs
        on the main thread (`colorize`), never in the runner's reader threads (see FramePrep)."""
        shot, cache = self._require_cache()
        missing = any(c.name not in fi.masks for c in shot.characters)
        return cache.conditioning.split and self.segmenter is not None and missing

    def _add_masks(self, prep: FramePrep, fi: FrameInput) -> None:
        """The frame's region masks (and what they came from) into its FramePrep."""
        _, cache = self._require_cache()
        foreground, masks, sources = self._masks(fi)
        prep.regions = pp.latent_masks(masks, cache.geometry, cache.latent).numpy()
        prep.info["mask_source"] = sources
        prep.info["foreground"] = round(float(foreground.mean()), 4)
        prep.masks_from = None

    def _remember_ink(self, frame: int, ink: np.ndarray) -> None:
        with self._inks_lock:
            self._inks[frame] = ink
            self._inks.move_to_end(frame)
            while len(self._inks) > self.sizes.remembered_inks:
                self._inks.popitem(last=False)

    def _ink(self, frame: int) -> np.ndarray:
        """A frame's ink: remembered from its own preprocessing, else read through the shot's loader."""
        with self._inks_lock:
            ink = self._inks.get(frame)
        if ink is None:
            shot, _ = self._require_cache()
            ink = ink_u8(shot.load_lineart(frame))
        return ink

    def _work_image(self, rgb: np.ndarray) -> np.ndarray:
        """A frame-sized RGB image at the model's padded working size, (Hp, Wp, 3) uint8."""
        _, cache = self._require_cache()
        geometry = cache.geometry
        return pp.pad_image(geometry.to_work(rgb), geometry.padded)

    def _masks(self, fi: FrameInput) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        """(foreground, split N×H×W, source per character) of one frame."""
        shot, _ = self._require_cache()
        given = [c.name for c in shot.characters if c.name in fi.masks]
        sources = {name: "manifest" for name in given}
        missing = [c.name for c in shot.characters if c.name not in fi.masks]
        derived = np.zeros(shot.size, bool)  # the characters without a mask share what is left
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
            derived &= ~taken
            sources.update({name: how for name in missing})
        masks = [fi.masks.get(c.name, derived) for c in shot.characters]
        merged = pp.merge_character_masks(masks, self.options.mask_dilation)
        return merged.foreground, merged.split, sources

    # ---- per batch -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        """Color a batch (frames of one kind, as the schedule groups them; any batch works)."""
        try:
            return self._colorize(batch)
        except BaseException:
            self._failed = True
            raise

    def _colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        shot, _ = self._require_cache()
        # Frames the runner did not preprocess (an engine driven directly): prepared here, in threads.
        batch = list(
            self._pool.map(
                lambda fi: fi if isinstance(fi.prepared, FramePrep) else self.preprocess(fi), batch
            )
        )
        jobs = {fi.frame: _Job(fi, fi.prepared, self._starts.get(fi.frame, fi.frame)) for fi in batch}
        failed: dict[int, ColorizeError] = {}
        if self.settings.temporal == "warp":
            helpers, failed = self._chain_helpers(jobs)
            jobs = {**helpers, **{f: j for f, j in jobs.items() if f not in failed}}
        for job in jobs.values():  # the segmentation network, on this (the main) thread
            if job.prep.masks_from is not None:
                self._add_masks(job.prep, job.prep.masks_from)
        results = self._compute(sorted(jobs.values(), key=lambda j: self._index[j.frame]))
        return [
            FrameResult(fi.frame, None, {}, error=failed[fi.frame])
            if fi.frame in failed
            else _with_layers(
                FrameResult(
                    fi.frame,
                    self._with_alpha(fi, results[fi.frame]),
                    fi.prepared.info,
                    main_lines=fi.prepared.cel.main if fi.prepared.cel is not None else None,
                ),
                shot,
            )
            for fi in batch
        ]

    def _chain_helpers(self, jobs: dict[int, _Job]) -> tuple[dict[int, _Job], dict[int, ColorizeError]]:
        """The frames to compute first so that every warped frame of `jobs` has its predecessor's result
        (from the chain's latest result this engine holds, or its anchor, up to the frame), and the frames
        of `jobs` that cannot be made because their chain needs an input that cannot be read (with why)."""
        shot, _ = self._require_cache()
        position = self._index.__getitem__
        by_chain: dict[int, list[int]] = {}
        for job in jobs.values():
            by_chain.setdefault(job.anchor, []).append(job.frame)
        needed: list[tuple[int, int]] = []  # (frame, anchor), in chain order
        for anchor, frames in by_chain.items():
            start, first = position(anchor), min(frames, key=position)
            held = self._held.get(anchor)
            if held is not None and position(held[0]) < position(first):
                start = position(held[0]) + 1
            end = position(max(frames, key=position))
            needed += [(g, anchor) for g in shot.frames[start:end] if g not in jobs]
        helpers: dict[int, _Job] = {}
        broken: dict[int, tuple[int, ColorizeError]] = {}  # anchor -> first frame that cannot be read
        for (frame, anchor), got in zip(needed, self._pool.map(self._load_job, needed), strict=True):
            if anchor in broken:
                continue
            if isinstance(got, ColorizeError):
                broken[anchor] = (frame, got)
            else:
                helpers[frame] = got
        failed = {
            f: _chain_error(f, anchor, bad, error)
            for anchor, (bad, error) in broken.items()
            for f in by_chain[anchor]
            if position(f) > position(bad)
        }
        return helpers, failed

    def _load_job(self, item: tuple[int, int]) -> _Job | ColorizeError:
        """A frame outside the batch read through the shot's loaders and prepared (or why it cannot be)."""
        shot, _ = self._require_cache()
        frame, anchor = item
        try:
            key = shot.load_keyframe(frame) if frame in shot.keyframes else None
            fi = FrameInput(frame, shot.load_lineart(frame), shot.load_masks(frame), key)
            return _Job(fi, self._prepare_frame(fi), anchor)
        except ColorizeError as error:
            return error

    def _compute(self, jobs: list[_Job]) -> dict[int, np.ndarray]:
        """Every job's result, level by level: a warped frame runs once its predecessor's result is held.
        Each level runs as UNet batches of frames that share a timestep schedule."""
        results: dict[int, np.ndarray] = {}
        pending = jobs
        while pending:
            ready = [j for j in pending if j.prep.previous is None or self._holds(j.anchor, j.prep.previous)]
            if not ready:
                raise RuntimeError(f"warp chains cannot proceed at frames {[j.frame for j in pending]}")
            for from_noise in (True, False):
                group = [j for j in ready if j.prep.from_noise == from_noise]
                for i in range(0, len(group), self.settings.batch):
                    results.update(self._run(group[i : i + self.settings.batch]))
            done = {j.frame for j in ready}
            pending = [j for j in pending if j.frame not in done]
        return results

    def _holds(self, anchor: int, frame: int) -> bool:
        held = self._held.get(anchor)
        return held is not None and held[0] == frame

    def _run(self, jobs: list[_Job]) -> dict[int, np.ndarray]:
        """One UNet batch: init images, the denoising loop, decode, then the frames finished in threads."""
        inits = None
        if not jobs[0].prep.from_noise:
            inits = list(self._pool.map(self._init_image, jobs))
        decoded = self._denoise(jobs, inits)
        images = list(self._pool.map(self._finish, jobs, decoded))
        if self.settings.temporal == "warp":
            for job, image in zip(jobs, images, strict=True):
                self._held[job.anchor] = (job.frame, image)
                self._held.move_to_end(job.anchor)
            while len(self._held) > self.sizes.held_results:
                self._held.popitem(last=False)
        return {job.frame: image for job, image in zip(jobs, images, strict=True)}

    def _init_image(self, job: _Job) -> np.ndarray:
        """The image an img2img frame starts from (Hp, Wp, 3): its keyframe, or the previous result warped."""
        if job.prep.init is not None:
            return job.prep.init
        assert job.prep.warp is not None
        return self._work_image(apply_warp(self._held[job.anchor][1], job.prep.warp))

    def _finish(self, job: _Job, image: np.ndarray) -> np.ndarray:
        """A decoded padded result (uint8) at the frame's size, cel-finished if asked."""
        _, cache = self._require_cache()
        shot, _ = self._require_cache()
        image = cache.geometry.to_frame(image)
        return cel_apply(image, job.prep.cel, shot.palette) if job.prep.cel is not None else image

    def _with_alpha(self, fi: FrameInput, image: np.ndarray) -> np.ndarray:
        """The frame as written: the shot's transparency kept (`output_alpha: auto`, `cel.keep_alpha`)."""
        shot, _ = self._require_cache()
        if self.settings.output_alpha != "auto":
            return image
        keyframe = fi.keyframe
        if keyframe is None and fi.frame in shot.keyframes:
            keyframe = shot.load_keyframe(fi.frame)
        return keep_alpha(
            image, fi.lineart, keyframe, fi.prepared.cel.labels if fi.prepared.cel is not None else None
        )

    # ---- the sampler -----------------------------------------------------------------------------------

    def _denoise(self, jobs: list[_Job], inits: list[np.ndarray] | None) -> np.ndarray:
        """Denoise the jobs' frames (one timestep schedule) as one UNet batch of `settings.batch` frames;
        (len(jobs), Hp, Wp, 3) uint8."""
        _, cache = self._require_cache()
        o = self.options
        self.counts["unet_batches"] += 1
        self.counts["frames"] += len(jobs)
        self.counts["padding"] += max(0, self.settings.batch - len(jobs))
        shape = (self.model.unet.config["in_channels"], *cache.latent)
        result = self.model(
            cache.conditioning,
            sketch=[j.prep.sketch for j in jobs],
            noise=[frame_noise(self.settings.seed, j.prep.noise_key, shape) for j in jobs],
            region_masks=[j.prep.regions for j in jobs if j.prep.regions is not None] or None,
            init_images=inits,
            sampler=o.sampler,
            steps=o.steps,
            strength=o.strength,
            ref_scale=o.ref_scale,
            sketch_scale=o.sketch_scale,
            batch_size=self.settings.batch,
            cuda_graph=self.graphs,
        )
        return pp.from_model_image(result.images)  # decoded at the fixed batch shape, one copy back


def _with_layers(result: FrameResult, shot: ShotContext) -> FrameResult:
    """The layers the shot asks for: the model paints its lines into the frame, so `paint` is the frame
    itself (on model with cel finish and a palette, its lines not: index 65535 there) and `line` is empty."""
    image = result.image
    if image is not None:
        if "paint" in shot.layers:
            result.layers["paint"] = image
        if "line" in shot.layers:
            result.layers["line"] = np.zeros((*image.shape[:2], 4), image.dtype)
    return result


def _chain_error(frame: int, anchor: int, missing: int, error: ColorizeError) -> ColorizeError:
    """Why `frame` cannot be made: its warp chain needs `missing`, whose input is bad (same exit code)."""
    text = f"frame {frame}: its warp chain from {anchor} needs frame {missing}: {error}"
    try:
        return type(error)(text)
    except TypeError:  # an error class that is not built from one message
        return InputDataError(text)
