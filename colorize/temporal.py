"""Temporal coherence: per-frame noise from (seed, frame), warp chains, optical-flow warping.

Noise. The initial noise of frame f is drawn from its own `torch.Generator` seeded with a hash of
(seed, f), never from the global RNG, so it does not depend on what ran before in the process.
`temporal: locked` uses one field for the whole shot (the hash of (seed, "shot")).

Warp chains (`temporal: warp`). Frame f starts from frame f-1's result warped onto f's line art, so a
frame depends on its predecessors. To keep "four chunks == one run" even when chunks run in parallel on
different machines, the chain restarts at fixed *anchors*:

* every `anchor_every`-th frame of the shot's line-art sequence, counted from the shot's first frame
  (not from the first frame of the run), starts from noise(seed, f) alone;
* every keyframe is an anchor too, and starts from its own colored keyframe (encoded, then denoised at
  `strength`).

Frame f's chain starts at the nearest anchor a <= f. A run (or chunk) whose first frame is not an anchor
recomputes a..f-1 in memory first; it never reads predecessors from the output folder, because an
output there may be stale (other settings) or not yet written by this run's writer thread. The result is
a pure function of (inputs, settings, f), as the engine contract asks.

Warping. Flow is computed between the line-art frames (`colorize.flow.line_flow`: DIS on blurred ink, the
only signal line art has), backward from the current frame to the previous one; a forward-backward consistency check marks
occluded pixels (newly visible or flow that does not round-trip within `occlusion_threshold` pixels),
which are inpainted from their surroundings instead of smearing the previous frame's colors. The flow
and the occlusion depend on the line art only (`line_art_warp`, computable ahead of time, before the
previous frame is colored); moving the previous result (`apply_warp`) is the cheap part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from colorize.flow import grid, line_flow, occlusion_mask, warp

SHOT_KEY = "shot"  # the key of `temporal: locked`'s single noise field


def noise_seed(seed: int, key: int | str) -> int:
    """63-bit generator seed for (seed, key); a stable hash (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"colorize-noise:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def frame_noise(seed: int, key: int | str, shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise (float32, CPU) that depends only on (seed, key) and the shape."""
    generator = torch.Generator(device="cpu").manual_seed(noise_seed(seed, key))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def anchor_at(index: int, frame: int, keyframes: Container[int], anchor_every: int) -> bool:
    """Whether the warp chain restarts at `frame`, the `index`-th frame of the shot: every `anchor_every`-th
    frame counted from the shot's first, and every keyframe (see the module docstring)."""
    return frame in keyframes or index % max(1, anchor_every) == 0


def chain_start(frame: int, frames: Sequence[int], keyframes: Sequence[int], anchor_every: int) -> int:
    """The anchor frame the warp chain of `frame` starts from (frames: the whole shot, sorted)."""
    keys, i = set(keyframes), frames.index(frame)
    while not anchor_at(i, frames[i], keys, anchor_every):
        i -= 1
    return frames[i]


@dataclass(frozen=True)
class LineArtWarp:
    """How frame f's line art maps onto frame f-1's: the line-art-only half of a warp, computable ahead
    of time (it needs no colored result)."""

    backward: np.ndarray  # H×W×2 float32: cur(x) ≈ prev(x + backward(x))
    occluded: np.ndarray  # H×W bool: pixels whose flow does not round-trip (filled, not warped)


def line_art_warp(ink_cur: np.ndarray, ink_prev: np.ndarray, occlusion_threshold: float = 1.5) -> LineArtWarp:
    """Flow from the current line art to the previous one, and the occluded pixels."""
    backward = line_flow(ink_cur, ink_prev)
    forward = line_flow(ink_prev, ink_cur)
    return LineArtWarp(backward, occlusion_mask(backward, forward, occlusion_threshold))


def apply_warp(previous: np.ndarray, line_warp: LineArtWarp) -> np.ndarray:
    """The previous frame's RGB (or RGBA) result (uint8) moved onto the current line art; occluded pixels
    inpainted from their surroundings (color and alpha separately)."""
    h, w = line_warp.occluded.shape
    warped = warp(previous, cv2.add(line_warp.backward, grid(h, w)))
    if line_warp.occluded.any():
        mask = line_warp.occluded.view(np.uint8)
        rgb = cv2.inpaint(np.ascontiguousarray(warped[..., :3]), mask, 3, cv2.INPAINT_TELEA)
        if warped.shape[2] == 4:
            rgb = np.dstack(
                [rgb, cv2.inpaint(np.ascontiguousarray(warped[..., 3]), mask, 3, cv2.INPAINT_TELEA)]
            )
        warped = rgb
    return warped


def warp_previous(
    previous: np.ndarray,
    ink_cur: np.ndarray,
    ink_prev: np.ndarray,
    occlusion_threshold: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the previous frame's RGB (or RGBA) result onto the current line art; (warped uint8, occluded)."""
    line_warp = line_art_warp(ink_cur, ink_prev, occlusion_threshold)
    return apply_warp(previous, line_warp), line_warp.occluded
