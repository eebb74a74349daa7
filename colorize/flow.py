"""Optical flow between line-art frames: the one place that computes correspondence and warps.

Line art has no texture, only thin sparse lines, so flow is computed on the *ink* (line strength, see
`colorize.regions.segment.ink_u8`) blurred a little so that DIS has gradients to lock on.

Two levels of correspondence:

* `line_flow` — plain dense DIS flow on blurred ink at about `work` pixels along the long side. Cheap and
  good for small motion; the diffusion engine's temporal warp (`colorize.temporal.line_art_warp` ahead,
  `apply_warp` per batch) and the evaluation's flow-warp baseline (`temporal.warp_previous`) use it.
* `correspondence` — a global motion first (an affine transform of the ink found by phase correlation for
  the translation, then ECC on a small pyramid), then DIS on the *residual* (the current frame against
  the source warped by the global motion) at a finer resolution that keeps thin lines. It survives moves
  of a good part of the frame and rotations of several degrees; the flat engine uses it.

Conventions: a *map* is H×W×2 float32 absolute pixel positions (x, y) in the source frame for every pixel
of the target frame (what `cv2.remap` takes); a *flow* is the same minus the pixel grid. An affine `A`
(2×3 float64) maps target coordinates to source coordinates. `correspondence` returns a `Correspondence`:
the map kept as the reduced-size flow it is made from (a full-size map is 16 MB at 1080p), read in full,
on a sparse grid or at given pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=8)
def grid(h: int, w: int, step: int = 1) -> np.ndarray:
    """H×W×2 float32 pixel coordinates (x, y) times `step`; cached per size (read-only). Thread-safe: the
    runner's reader threads and the engine's workers call it at once (`lru_cache` keeps its own lock)."""
    xs = np.broadcast_to(np.arange(0, step * w, step, dtype=np.float32)[None, :], (h, w))
    ys = np.broadcast_to(np.arange(0, step * h, step, dtype=np.float32)[:, None], (h, w))
    g = cv2.merge([np.ascontiguousarray(xs), np.ascontiguousarray(ys)])
    g.setflags(write=False)
    return g


def flow_scale(shape: tuple[int, int], work: int) -> int:
    """Integer downscale factor so the long side is about `work` pixels."""
    return max(1, round(max(shape) / work))


def flow_image(ink: np.ndarray, scale: int, sigma: float = 1.5) -> np.ndarray:
    """The image DIS sees: ink at 1/scale, blurred, stretched to the full range (lines are faint there)."""
    h, w = ink.shape
    size = (max(8, w // scale), max(8, h // scale))
    small = cv2.resize(ink, size, interpolation=cv2.INTER_AREA) if size != (w, h) else ink
    return cv2.normalize(cv2.GaussianBlur(small, (0, 0), sigma), None, 0, 255, cv2.NORM_MINMAX)


def dis_flow(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """DIS flow (h×w×2 float32) with target(x) ≈ source(x + flow(x)), between two `flow_image`s."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    return dis.calc(target, source, None)


def upscale_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A flow computed at reduced size, resized to `shape` (h, w) and expressed in full-size pixels."""
    h, w = shape
    if flow.shape[:2] == (h, w):
        return flow
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(w / flow.shape[1])


def flow_to_map(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The map (absolute positions, full size) of a flow computed at any size: grid + upscaled flow."""
    h, w = shape
    if flow.shape[:2] == (h, w):
        return cv2.add(grid(h, w), flow)
    # Scaling commutes with linear resizing: scale the small flow, resize, add the grid (in place).
    small = flow * np.float32(w / flow.shape[1])
    maps = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.add(maps, grid(h, w), dst=maps)


@dataclass(frozen=True)
class Correspondence:
    """Where each pixel of a target frame of `shape` is in the source frame: the map `flow_to_map(flow,
    shape)`, kept as the reduced-size flow (a few hundred KB instead of 16 MB at 1080p) and read where it
    is needed. Between the flow's samples the map is linear (as `cv2.resize` upscales it)."""

    flow: np.ndarray  # h×w×2 float32 flow at reduced size, in its own (reduced) pixels
    shape: tuple[int, int]  # (H, W) of the target frame

    def full(self) -> np.ndarray:
        """The full-size map (H×W×2 float32)."""
        return flow_to_map(self.flow, self.shape)

    def _scale(self) -> tuple[float, float]:
        (h, w), (fh, fw) = self.shape, self.flow.shape[:2]
        return fw / w, fh / h  # reduced pixels per full-size pixel

    def sampled(self, step: int) -> np.ndarray:
        """The map at the pixels (step·i, step·j): ceil(H/step)×ceil(W/step)×2 float32."""
        (h, w), (sx, sy) = self.shape, self._scale()
        size = (-(-w // step), -(-h // step))
        if self.flow.shape[:2] == (h, w) and step == 1:
            return self.full()
        # Reduced-size coordinates of the sampled pixels (pixel centers, as cv2.resize maps them).
        a = np.array([[step * sx, 0, 0.5 * sx - 0.5], [0, step * sy, 0.5 * sy - 0.5]])
        flow = cv2.warpAffine(
            self.flow, a, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        flow *= np.array([1 / sx, 1 / sy], np.float32)  # in full-size pixels
        return cv2.add(flow, grid(size[1], size[0], step), dst=flow)

    def at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The map at the pixels (xs[k], ys[k]): (N, 2) float32."""
        sx, sy = self._scale()
        n = len(xs)
        if n == 0:
            return np.zeros((0, 2), np.float32)
        # cv2.remap takes maps under 32767 columns and rows: the points as rows of 4096.
        cols = max(1, min(n, 4096))
        rows = -(-n // cols)
        fx = np.zeros(rows * cols, np.float32)
        fy = np.zeros(rows * cols, np.float32)
        fx[:n] = (np.asarray(xs) + 0.5) * sx - 0.5
        fy[:n] = (np.asarray(ys) + 0.5) * sy - 0.5
        flow = cv2.remap(
            self.flow,
            fx.reshape(rows, cols),
            fy.reshape(rows, cols),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        ).reshape(-1, 2)[:n]
        return flow / np.array([sx, sy], np.float32) + np.stack([xs, ys], axis=1).astype(np.float32)


def line_flow(ink_to: np.ndarray, ink_from: np.ndarray, work: int = 512) -> np.ndarray:
    """Plain dense flow (H×W×2 float32, full-size pixels) with ink_to(x) ≈ ink_from(x + flow(x))."""
    scale = flow_scale(ink_to.shape, work)
    flow = dis_flow(flow_image(ink_to, scale), flow_image(ink_from, scale))
    return upscale_flow(flow, ink_to.shape)


def occlusion_mask(backward: np.ndarray, forward: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of the current frame whose flow does not round-trip within `threshold` pixels.

    backward: cur(x) ≈ prev(x + backward(x)); forward: prev(y) ≈ cur(y + forward(y)).
    """
    h, w = backward.shape[:2]
    maps = cv2.add(backward, grid(h, w))
    back = cv2.remap(forward, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = np.linalg.norm(backward + back, axis=-1)
    mx, my = maps[..., 0], maps[..., 1]
    outside = (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
    return (error > threshold) | outside


def warp(image: np.ndarray, maps: np.ndarray, nearest: bool = False) -> np.ndarray:
    """`image` sampled at `maps` (edges replicated): the source image seen from the target frame."""
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(image, maps, None, mode, borderMode=cv2.BORDER_REPLICATE)


# -- global motion --------------------------------------------------------------------------------------

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
COARSE_WORK = 512  # long side of the first, plain flow of `correspondence` (and of its prepared images)
SMALL_MOTION = 3.0  # coarse flow pixels on the lines: below this (75th percentile) no global motion


@dataclass(frozen=True)
class Motion:
    """A global motion estimate: `affine` maps target pixels to source pixels (full size)."""

    affine: np.ndarray  # 2×3 float64
    score: float  # correlation of the target ink with the source ink under `affine` (small images, -1..1)
    identity_score: float  # the same without motion


def shrink(ink: np.ndarray, long_side: int) -> np.ndarray:
    """`ink` area-averaged down to about `long_side` pixels along its long side (never under 16)."""
    h, w = ink.shape
    f = min(1.0, long_side / max(h, w))
    return cv2.resize(ink, (max(16, round(w * f)), max(16, round(h * f))), interpolation=cv2.INTER_AREA)


def _small(ink: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    small = shrink(ink, long_side).astype(np.float32)
    # Blur in proportion to the size: at 256 px a line is a fraction of a pixel wide.
    return cv2.GaussianBlur(small, (0, 0), 1.2), ink.shape[1] / small.shape[1]


def _score(target: np.ndarray, source: np.ndarray, affine: np.ndarray) -> float:
    h, w = target.shape
    warped = cv2.warpAffine(source, affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a, b = target - target.mean(), warped - warped.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _scaled(affine: np.ndarray, factor: float) -> np.ndarray:
    """The affine of a pyramid level `factor` times larger."""
    out = affine.copy()
    out[:, 2] *= factor
    return out


def global_motion(
    ink_to: np.ndarray, ink_from: np.ndarray, levels: tuple[int, ...] = (128, 256, 512)
) -> Motion:
    """Affine motion of the drawing between two ink images (target `ink_to`, source `ink_from`).

    Phase correlation at the coarsest level gives the translation (any size of move); ECC refines an affine
    transform coarse to fine. The result is kept only if it explains the target better than no motion.
    """
    pyramid = [(_small(ink_to, s), _small(ink_from, s)) for s in levels]
    (t0, f0), (s0, _) = pyramid[0]
    window = cv2.createHanningWindow(t0.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(s0, t0, window)
    affine = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]])
    if not np.isfinite(affine).all() or _score(t0, s0, affine) < _score(t0, s0, IDENTITY):
        affine = IDENTITY.copy()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
    prev_f = f0
    for (target, f_t), (source, _) in pyramid:
        affine = _scaled(affine, prev_f / f_t)
        prev_f = f_t
        warp32 = affine.astype(np.float32)
        try:
            _, warp32 = cv2.findTransformECC(target, source, warp32, cv2.MOTION_AFFINE, criteria, None, 3)
        except cv2.error:  # no convergence (blank frames, too little ink): keep the previous estimate
            continue
        if _score(target, source, warp32.astype(np.float64)) >= _score(target, source, affine):
            affine = warp32.astype(np.float64)
    (target, f_t), (source, _) = pyramid[-1]
    score, still = _score(target, source, affine), _score(target, source, IDENTITY)
    if score <= still:
        affine, score = IDENTITY.copy(), still
    return Motion(_scaled(affine, f_t), score, still)


def outside(pos: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Whether positions (...×2 float32, x and y) fall outside a frame of `shape` (nearest sampling: a
    position is read at the pixel it rounds to)."""
    h, w = shape
    x, y = pos[..., 0], pos[..., 1]
    return (x < -0.5) | (x >= w - 0.5) | (y < -0.5) | (y >= h - 0.5)


def affine_map(affine: np.ndarray, shape: tuple[int, int], flow: np.ndarray | None = None) -> np.ndarray:
    """The map of `affine` applied to the grid (plus `flow` in target pixels first): A(x + flow(x))."""
    h, w = shape
    points = grid(h, w) if flow is None else cv2.add(grid(h, w), flow)
    return cv2.transform(points, affine.astype(np.float32))


def moves(affine: np.ndarray, shape: tuple[int, int], tolerance: float = 1.5) -> bool:
    """Whether `affine` moves some corner of a frame of `shape` by more than `tolerance` pixels."""
    h, w = shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)
    return bool(np.abs(corners @ affine[:, :2].T + affine[:, 2] - corners).max() > tolerance)


def _prefer(target: np.ndarray, source: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """H×W bool: where map `first` aligns `source` with `target` better than map `second`.

    The ink difference of the two is compared in a small window first; where that window holds no line
    (the inside of a large region) a wider one decides, so a region follows the map its outline follows.
    Ties go to `first`."""
    t = target.astype(np.float32)
    gain = cv2.absdiff(t, warp(source, second).astype(np.float32))
    gain -= cv2.absdiff(t, warp(source, first).astype(np.float32))
    decided = np.zeros(target.shape, bool)
    prefer = np.ones(target.shape, bool)
    for size in (9, 41, 161):
        d = cv2.blur(gain, (size, size))
        sure = ~decided & (np.abs(d) > 0.5)
        prefer[sure] = d[sure] > 0
        decided |= sure
    return prefer


def correspondence(
    ink_to: np.ndarray,
    ink_from: np.ndarray,
    work: int = 1024,
    coarse: int = COARSE_WORK,
    images: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
) -> tuple[Correspondence, Motion | None]:
    """The map from the target frame into the source frame (a `Correspondence`), and the global motion used.

    Plain DIS at about `coarse` pixels along the long side first. Small motion (75 % of the flow on the
    lines under SMALL_MOTION pixels there) ends there (motion None): cheap, and enough to vote regions.
    Otherwise the global motion of the ink is estimated (`global_motion`); when it moves the frame, DIS runs
    at about `work` pixels (1024 keeps 1-px lines of a 1080p frame) on the residual after it and plainly,
    and each pixel keeps the answer that aligns the ink better around it, so a character that moves far and
    a background that stays both find their match. `images`: {scale: (target, source) `flow_image`s}
    already computed (None where not).
    """
    h, w = ink_to.shape
    images = images or {}

    def pair(scale: int) -> tuple[np.ndarray, np.ndarray]:
        t, s = images.get(scale, (None, None))
        return (flow_image(ink_to, scale) if t is None else t), (
            flow_image(ink_from, scale) if s is None else s
        )

    scale = flow_scale((h, w), coarse)
    target, source = pair(scale)
    flow = dis_flow(target, source)
    motion = None
    on_lines = target[::4, ::4] > 64
    if on_lines.any() and np.percentile(np.abs(flow[::4, ::4][on_lines]).max(axis=-1), 75) > SMALL_MOTION:
        motion = global_motion(ink_to, ink_from)
        if moves(motion.affine, (h, w)):
            fine = flow_scale((h, w), work)
            target, source = pair(fine)
            sh, sw = target.shape
            plain = cv2.add(grid(sh, sw), dis_flow(target, source))
            small = cv2.resize(ink_from, (sw, sh), interpolation=cv2.INTER_AREA) if fine > 1 else ink_from
            a = motion.affine.copy()
            a[:, 2] /= fine  # the same transform in small-image pixels (the scale is uniform)
            moved = cv2.warpAffine(small, a, (sw, sh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            moved = cv2.normalize(cv2.GaussianBlur(moved, (0, 0), 1.5), None, 0, 255, cv2.NORM_MINMAX)
            carried = affine_map(a, (sh, sw), dis_flow(target, moved))
            better = _prefer(target, source, carried, plain)
            plain[better] = carried[better]
            flow = cv2.subtract(plain, grid(sh, sw))
    return Correspondence(flow, (h, w)), motion
