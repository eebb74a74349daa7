"""What the diffusion engine needs, known without loading it (no torch, no weights at import).

- `depends_on`: the line-art frames a frame's output is made from (its warp chain in `temporal: warp`).
- `schedule`: the batches the runner hands the engine. `none` / `locked`: consecutive frames. `warp`: the
  frames of *different* warp chains side by side (chain-parallel), see `warp_batches`.
- `model_fingerprint`: a cheap, stable fingerprint of a model folder for freshness. Hashing gigabytes of
  weights on every run is too slow, so it covers: every file's relative path and size, the full contents of
  small text files (configs, `model_index.json`, tokenizer files), the header of every `.safetensors` file
  (tensor names, dtypes, shapes) and 16 blocks of 64 KiB sampled evenly through every weight file. Weights
  retrained or converted again change sampled blocks; an edit confined to bytes between the samples is not
  seen (rerun with `--overwrite` after editing weights in place).
- `gpu_memory_estimate_mib`: an *estimate* of the GPU memory a run needs, for farm host requirements.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import deque
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from colorize.engines import BatchSizes, consecutive_batches
from colorize.errors import MissingInputError, ModelError
from colorize.settings import Settings

_SAMPLES, _BLOCK = 16, 64 * 1024
_TEXT_SUFFIXES = {".json", ".txt", ".yaml", ".yml", ".model", ".merges", ".vocab"}
_TEXT_LIMIT = 16 * 1024 * 1024
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own bound on a header


def depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    """`temporal: warp`: the frames of the warp chain from its anchor to `frame`; otherwise `frame` only.

    (A frame's own keyframe, and the anchor's keyframe, come with their frames.)
    """
    if settings.temporal != "warp":
        return (frame,)
    from colorize.temporal import chain_start

    order = list(frames)
    anchor = chain_start(frame, order, list(keyframes), settings.diffusion.warp_anchor_every)
    return tuple(order[order.index(anchor) : order.index(frame) + 1])


def chain_starts(frames: Sequence[int], keyframes: Sequence[int], anchor_every: int) -> dict[int, int]:
    """{frame: the anchor its warp chain starts from} for every frame of the shot, in one pass.

    The rule of `colorize.temporal.chain_start`: anchors are every `anchor_every`-th frame counted from the
    shot's first frame, and every keyframe.
    """
    from colorize.temporal import anchor_at

    keys, out, anchor = set(keyframes), {}, frames[0] if frames else 0
    for i, f in enumerate(frames):
        if anchor_at(i, f, keys, anchor_every):
            anchor = f
        out[f] = anchor
    return out


def schedule(
    todo: Sequence[int], frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> list[tuple[int, ...]]:
    """The batches the engine gets the frames `todo` in (each exactly once)."""
    if settings.temporal != "warp":
        return consecutive_batches(todo, settings.batch)
    return warp_batches(todo, frames, keyframes, settings.batch, settings.diffusion.warp_anchor_every)


def warp_batches(
    todo: Sequence[int], frames: Sequence[int], keyframes: Sequence[int], batch: int, anchor_every: int
) -> list[tuple[int, ...]]:
    """Chain-parallel batches of `temporal: warp`.

    Frames of one warp chain run one after the other (each starts from its predecessor's result); frames
    of different chains are independent. So a batch holds the next frame of up to `batch` chains. The
    frames of one UNet batch share a timestep schedule: a chain's noise anchor runs every step, every
    other frame (a keyframe anchor, a warped frame) runs img2img from `strength`. Each batch therefore
    holds frames of one kind: the kind most of the candidate chains' next frames have (ties: noise anchors,
    which start chains whose frames can then share batches; with `batch` 1, where nothing is shared, the
    first candidate's kind, so frames keep shot order), taking chains already started first, then new
    chains in shot order. Candidates
    are the started chains and new ones up to `BatchSizes.open_chains` (2 × `batch`) chains in all, which also bounds the results
    the engine keeps in memory (one per started chain).

    A frame's bytes do not depend on which frames share its batch (the UNet always sees `batch` frames;
    see the engine), so this order only decides speed, never results.
    """
    starts = chain_starts(frames, keyframes, anchor_every)
    keys, open_chains = set(keyframes), BatchSizes(batch).open_chains
    chains: dict[int, deque[int]] = {}
    for f in todo:
        chains.setdefault(starts[f], deque()).append(f)

    def from_noise(anchor: int, chain: deque[int]) -> bool:
        return chain[0] == anchor and anchor not in keys

    waiting = deque(chains.items())
    started: list[tuple[int, deque[int]]] = []
    out: list[tuple[int, ...]] = []
    while started or waiting:
        candidates = started + list(islice(waiting, max(0, open_chains - len(started))))
        kinds = [from_noise(*c) for c in candidates]
        noise = kinds.count(True)
        tie = 2 * noise == len(kinds)
        kind = (kinds[0] if batch == 1 else True) if tie else 2 * noise > len(kinds)
        picked = [i for i, k in enumerate(kinds) if k == kind][:batch]
        new = [candidates[i] for i in picked if i >= len(started)]
        for chain in new:
            waiting.remove(chain)
        started += new
        out.append(tuple(candidates[i][1].popleft() for i in picked))
        started = [c for c in started if c[1]]
    return out


def require_model_folder(folder: str | Path | None) -> Path:
    """The model folder, or MissingInputError saying how to give one."""
    make = "make one with `colorize model convert v2-full.safetensors --out DIR`"
    if not folder:
        raise MissingInputError(
            f"engine diffusion needs a model folder: pass --model DIR, set COLORIZE_MODEL_DIR or `model:` in "
            f"the manifest ({make})"
        )
    root = Path(folder)
    if root.is_file():
        raise MissingInputError(
            f"{root}: a file, not a model folder; a checkpoint becomes one with "
            f"`colorize model convert {root.name} --out DIR`"
        )
    if not root.is_dir():
        raise MissingInputError(f"{root}: model folder not found ({make})")
    return root


def check_weight_files(folder: str | Path) -> None:
    """Raise ModelError unless every `.safetensors` file of a model folder is whole.

    Reads only the headers: the data must end exactly where the header's last tensor ends, so a
    truncated copy (an interrupted download or rsync) is refused before the run, by `check` too, with
    the file named, instead of failing inside a loader.
    """
    root = require_model_folder(folder)
    for path in sorted(root.rglob("*.safetensors")):
        header, tensors = safetensors_header(path)
        end = max((int(e["data_offsets"][1]) for e in tensors.values()), default=0)
        size, expected = path.stat().st_size, 8 + len(header) + end
        if size != expected:
            what = "truncated" if size < expected else "longer than its tensors"
            raise ModelError(
                f"{path}: {what} ({size:,} bytes, the header says {expected:,}); copy or convert the model again"
            )


def safetensors_header(path: Path) -> tuple[bytes, dict[str, dict]]:
    """A safetensors file's header: (its bytes, {tensor name: {dtype, shape, data_offsets}}) without the
    metadata entry; ModelError naming the file when it is not a whole, readable header. The one reader
    of these headers (file checks, fingerprints, parameter counts, `model info`)."""
    try:
        with open(path, "rb") as f:
            header = _safetensors_header(f, path)
    except OSError as error:
        raise ModelError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        entries = json.loads(header)
        tensors = {k: e for k, e in entries.items() if k != "__metadata__"}
        for e in tensors.values():  # the fields every reader uses exist and are numbers
            parameter_count({"": e}), int(e["data_offsets"][1]), str(e["dtype"])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise ModelError(f"{path}: corrupt safetensors header") from None
    return header, tensors


def parameter_count(tensors: dict[str, dict]) -> int:
    """Number of weights of a header's tensors."""
    total = 0
    for entry in tensors.values():
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        total += count
    return total


def model_fingerprint(folder: str | Path | None) -> str:
    """sha256 hex of the model folder's sizes, configs, safetensors headers and sampled weight blocks."""
    root = require_model_folder(folder)
    digest = hashlib.sha256(b"colorize-model-fingerprint-1\0")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as f:
            if path.suffix in _TEXT_SUFFIXES and size <= _TEXT_LIMIT:
                digest.update(f.read())
                continue
            if path.suffix == ".safetensors":
                digest.update(_safetensors_header(f, path))
            for i in range(_SAMPLES):
                f.seek(max(0, size - _BLOCK) * i // max(1, _SAMPLES - 1))
                digest.update(f.read(_BLOCK))
    return digest.hexdigest()


def _safetensors_header(f: BinaryIO, path: Path) -> bytes:
    f.seek(0)
    raw = f.read(8)
    if len(raw) < 8:
        raise ModelError(f"{path}: truncated safetensors file")
    (length,) = struct.unpack("<Q", raw)
    if length > _HEADER_LIMIT:
        raise ModelError(f"{path}: not a safetensors file (header length {length:,})")
    header = f.read(length)
    if len(header) != length:
        raise ModelError(f"{path}: truncated safetensors header")
    return header


def model_parameters(folder: str | Path) -> int | None:
    """Number of weights in the folder's safetensors files (from their headers), or None if unreadable."""
    root = Path(folder)
    if not root.is_dir():
        return None
    try:
        total = sum(parameter_count(safetensors_header(p)[1]) for p in sorted(root.rglob("*.safetensors")))
    except (OSError, ModelError):
        return None
    return total or None


# The estimate: weights at the run's dtype + activations per UNet sample + a fixed overhead. The
# activation figure is a rough allowance (about 1 GiB per frame and guidance branch at 768×448), not a
# measurement; bench/bench_gpu.py measures the real peak on a card.
FULL_MODEL_PARAMETERS = 2_600_000_000  # when the model folder cannot be read where the plan is made
ACTIVATION_GIB_PER_MEGAPIXEL = 3.0
OVERHEAD_GIB = 1.5


def gpu_memory_estimate_mib(settings: Settings, frame_size: tuple[int, int]) -> int:
    """Estimated peak GPU memory (MiB, rounded up to whole GiB) of a diffusion run with these settings.

    An estimate for farm scheduling (`amount.worker.gpu.memory`), deliberately on the high side: weights
    at the run's dtype, `batch` frames × guidance branches of UNet activations at the working size, and a
    fixed overhead for the CUDA context and VAE decoding.
    """
    from colorize.engines.diffusion.preprocess import frame_geometry
    from colorize.engines.diffusion.sampling import branches

    options = settings.diffusion
    params = (model_parameters(settings.model) if settings.model else None) or FULL_MODEL_PARAMETERS
    weight_bytes = 4 if options.dtype == "float32" else 2
    padded = frame_geometry(*frame_size, options.resolution).padded
    guidance = len(branches(options.ref_scale, options.sketch_scale))  # the sampler's own rule
    activations = ACTIVATION_GIB_PER_MEGAPIXEL * padded[0] * padded[1] / 1e6 * settings.batch * guidance
    gib = params * weight_bytes / 2**30 + activations + OVERHEAD_GIB
    return int(-(-gib // 1)) * 1024
