"""The flat engine: cel "paint bucket" filling of line-enclosed regions, no model weights.

Color sources per region, in order:
1. the colored keyframe of this very drawing (dominant keyframe color of the region);
2. propagation along the shot from the nearest keyframe before and after the frame (region votes through
   optical flow on the line art, frame by frame); the more confident of the two wins;
3. a character's reference palette inside that character's mask, the background reference outside all
   masks (best effort);
4. otherwise the visible `unresolved_color`, and the frame's `info["unresolved"]` counts those regions.

Character masks (when the manifest gives them) make every region "owned" by the character covering most
of its pixels, or by the background. Propagation votes only count previous-frame pixels of the same
owner (a region with none votes from the nearest same-owner pixels, then from all), and the tiny-region
neighbour fallback prefers a neighbour of the same owner, so colors stay with their character where
characters pass in front of each other. Shots without masks take exactly the unconstrained path.

Determinism: a frame's colors depend only on the chain keyframe -> ... -> frame, which is always walked
from the keyframe through every line-art frame in between. Chain states (one color per region, a few KB)
are cached so frames run in order cost one segmentation and one flow each; segmentations (full-size
label maps) live in a small LRU, so memory does not grow with shot length.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from colorize.engines.base import FrameInput, FrameResult, ShotContext
from colorize.errors import ColorizeError
from colorize.regions.palette import NO_COLOR, dominant_colors, parse_hex, reference_palette
from colorize.regions.propagate import flow_between, flow_scale, propagate, seg_flow_image
from colorize.regions.render import render
from colorize.regions.segment import Segmentation, neighbour_regions, segment
from colorize.settings import Settings

_SEG_CACHE = 4  # full-size segmentations kept (current, previous, a little slack)

SOURCE_KEYFRAME, SOURCE_FORWARD, SOURCE_BACKWARD, SOURCE_REFERENCE, SOURCE_UNRESOLVED, SOURCE_NEIGHBOUR = (
    range(6)
)
SOURCE_NAMES = ("keyframe", "forward", "backward", "reference", "unresolved", "neighbour")


class FlatEngine:
    """Paint-bucket engine; see the module docstring."""

    name = "flat"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.flat = settings.flat
        self._shot: ShotContext | None = None
        self._segs: OrderedDict[int, Segmentation] = OrderedDict()
        self._states: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._batch_lineart: dict[int, np.ndarray] = {}
        self._batch_masks: dict[int, dict[str, np.ndarray]] = {}
        self._masked: tuple[str, ...] = ()  # characters with masks, in owner order (owner i + 1)
        self._pending: dict[int, Future[Segmentation]] = {}  # segmentations running in the worker
        self._palettes: dict[str, np.ndarray] = {}

    # -- interface ---------------------------------------------------------------------------------------

    def prepare(self, shot: ShotContext) -> None:
        """Reset caches; reference palettes of the characters."""
        self._shot = shot
        self._segs.clear()
        self._states.clear()
        self._palettes = {c.name: reference_palette(c.reference) for c in shot.characters}
        self._masked = tuple(sorted(c.name for c in shot.characters if c.has_mask))

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        """Color each frame of the batch (in order).

        The next frame's segmentation runs in a worker thread while this frame propagates and renders
        (OpenCV and large numpy operations release the GIL). Segmentation is a pure function of the line
        art, so results do not depend on the overlap.
        """
        self._batch_lineart = {fi.frame: fi.lineart for fi in batch}
        self._batch_masks = {fi.frame: fi.masks for fi in batch}
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flat-segment") as pool:
                results = []
                for i, fi in enumerate(batch):
                    if i + 1 < len(batch):
                        self._prefetch(pool, batch[i + 1])
                    results.append(self._one(fi))
                return results
        finally:
            self._batch_lineart = {}
            self._batch_masks = {}
            self._pending = {}

    def _prefetch(self, pool: ThreadPoolExecutor, fi: FrameInput) -> None:
        if fi.frame not in self._segs and fi.frame not in self._pending:
            f = self.flat
            self._pending[fi.frame] = pool.submit(
                segment, fi.lineart, f.gap_close, f.min_region, f.line_threshold
            )

    # -- per frame ---------------------------------------------------------------------------------------

    def _one(self, fi: FrameInput) -> FrameResult:
        shot = self._require_shot()
        seg = self._segmentation(fi.frame, fi.lineart)
        n = seg.count + 1
        source = np.full(n, SOURCE_UNRESOLVED, np.int8)
        keyframe = fi.keyframe
        if keyframe is None and fi.frame in shot.keyframes:
            keyframe = shot.load_keyframe(fi.frame)
        if keyframe is not None:
            colors, _ = dominant_colors(seg.labels, seg.count, keyframe, valid=seg.labels > 0)
            source[colors != NO_COLOR] = SOURCE_KEYFRAME
            if fi.frame in shot.keyframes:
                # The start of this keyframe's chains (the same function of the same inputs).
                self._states[(fi.frame, fi.frame)] = (colors.copy(), np.ones(seg.count + 1, np.float32))
        else:
            colors = np.full(n, NO_COLOR, np.int32)
            conf = np.zeros(n, np.float32)
            before = [k for k in shot.keyframes if k < fi.frame]
            after = [k for k in shot.keyframes if k > fi.frame]
            pos = self._position(fi.frame)
            # Backward chain first so ties (equal confidence) go to the nearer keyframe, forward on equal distance.
            chains = []
            if before:
                chains.append((pos - self._position(before[-1]), 0, before[-1], SOURCE_FORWARD))
            if after:
                chains.append((self._position(after[0]) - pos, 1, after[0], SOURCE_BACKWARD))
            for _, _, key, src in sorted(chains, reverse=True):
                c, q = self._chain_state(key, fi.frame)
                better = (c != NO_COLOR) & (q >= conf)
                colors[better] = c[better]
                conf[better] = q[better]
                source[better] = src
            weak = conf < self.flat.match_threshold
            colors[weak] = NO_COLOR
            source[weak] = SOURCE_UNRESOLVED
            if not shot.keyframes or fi.masks:
                self._reference_fill(seg, fi, colors, source)
            self._small_from_neighbours(seg, colors, source, self._owners(fi.frame, seg))
        source[0] = SOURCE_KEYFRAME  # label 0 = lines, not a region
        unresolved = colors == NO_COLOR
        unresolved[0] = False
        colors[unresolved] = parse_hex(self.flat.unresolved_color)
        colors[0] = colors[1] if n > 1 else parse_hex(self.flat.unresolved_color)
        image = render(seg, colors, fi.lineart, self.flat.lines, self.flat.colored_lines)
        counts = np.bincount(source[1:], minlength=len(SOURCE_NAMES))
        info: dict[str, Any] = {
            "regions": int(seg.count),
            "unresolved": int(unresolved.sum()),
            "sources": {name: int(k) for name, k in zip(SOURCE_NAMES, counts, strict=True) if k},
        }
        return FrameResult(frame=fi.frame, image=image, info=info)

    def _small_from_neighbours(
        self, seg: Segmentation, colors: np.ndarray, source: np.ndarray, owner: np.ndarray | None = None
    ) -> None:
        """Small regions (under min_region px) left unresolved take their most common neighbour's color.

        Tiny enclosures (pockets where lines meet, 1-px holes) are kept as regions but often do not exist
        in the previous frame; the color around them beats the unresolved color. With owners (masks), a
        neighbour of the same owner comes first.
        """
        small = (colors == NO_COLOR) & (seg.areas < max(1, self.flat.min_region))
        small[0] = False
        if not small.any():
            return
        nb = neighbour_regions(seg, small, owner=owner)
        take = small & (nb > 0)
        take[take] &= colors[nb[take]] != NO_COLOR
        colors[take] = colors[nb[take]]
        source[take] = SOURCE_NEIGHBOUR

    def _reference_fill(
        self, seg: Segmentation, fi: FrameInput, colors: np.ndarray, source: np.ndarray
    ) -> None:
        """Best-effort colors for unresolved regions from references (masks, background, palette rank)."""
        shot = self._require_shot()
        todo = colors == NO_COLOR
        todo[0] = False
        if not todo.any():
            return
        areas = seg.areas.astype(np.float64)
        covered = np.zeros(seg.count + 1, bool)
        for name, mask in sorted(fi.masks.items()):
            palette = self._palettes.get(name)
            if palette is None or len(palette) == 0:
                continue
            inside = np.bincount(seg.labels[mask], minlength=seg.count + 1) / np.maximum(areas, 1)
            mine = todo & (inside > 0.5)
            covered |= inside > 0.5
            _rank_fill(colors, source, mine, areas, palette)
            todo &= ~mine
        if shot.background is not None and todo.any():
            outside = todo & ~covered
            bg, _ = dominant_colors(seg.labels, seg.count, shot.background, valid=seg.labels > 0)
            take = outside & (bg != NO_COLOR)
            colors[take] = bg[take]
            source[take] = SOURCE_REFERENCE
            todo &= ~take
        if todo.any() and not fi.masks and not shot.keyframes and shot.characters:
            # No keyframe, no mask, no background: the first character's palette by region size.
            palette = self._palettes.get(shot.characters[0].name)
            if palette is not None and len(palette):
                _rank_fill(colors, source, todo, areas, palette)

    # -- chains ------------------------------------------------------------------------------------------

    def _chain_state(self, key: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(colors, confidence) per region of `frame`, propagated from keyframe `key` frame by frame."""
        shot = self._require_shot()
        frames = shot.frames
        a, b = self._position(key), self._position(frame)
        step = 1 if b > a else -1
        # Nearest cached state on the path key -> frame (the keyframe itself is always computable).
        start = a
        for p in range(b, a, -step):
            if (key, frames[p]) in self._states:
                start = p
                break
        if start == b:
            return self._states[(key, frame)]
        if start == a and (key, key) in self._states:
            state = self._states[(key, key)]
        elif start == a:
            seg = self._segmentation(key)
            kf = shot.load_keyframe(key)
            colors, _ = dominant_colors(seg.labels, seg.count, kf, valid=seg.labels > 0)
            state = (colors, np.ones(seg.count + 1, np.float32))
        else:
            state = self._states[(key, frames[start])]
        prev_seg = self._segmentation(frames[start])
        for p in range(start + step, b + step, step):
            seg = self._segmentation(frames[p])
            scale = flow_scale(seg.labels.shape)
            flow = flow_between(seg_flow_image(seg, scale), seg_flow_image(prev_seg, scale))
            owners = self._owner_pair(frames[p], seg, frames[p - step], prev_seg)
            colors, conf = propagate(seg, prev_seg, state[0], flow, scale, owners)
            # A region inherits at most the confidence of where its color came from (weak links stay weak).
            colors[conf < self.flat.match_threshold] = NO_COLOR
            state = (colors, conf)
            self._states[(key, frames[p])] = state
            prev_seg = seg
        self._prune(key, frame)
        return state

    def _prune(self, key: int, frame: int) -> None:
        # Frames run in order: a forward chain only needs its newest state, a backward chain the states
        # between `frame` and its keyframe (a few KB each). Anything dropped is recomputed if asked again.
        for state_key in [s for s in self._states if s[0] == key and s[1] < frame]:
            del self._states[state_key]

    # -- masks -------------------------------------------------------------------------------------------

    def _owners(self, frame: int, seg: Segmentation) -> np.ndarray | None:
        """Owner per region of `frame` (0 = background, i + 1 = `self._masked[i]`); None without masks.

        A region belongs to whoever covers most of its pixels (ties: background, then name order). Cached
        on the segmentation (a pure function of the frame's line art and masks)."""
        if not self._masked:
            return None
        if "owner" not in seg.cache:
            masks = self._batch_masks.get(frame)
            if masks is None:
                try:
                    masks = self._require_shot().load_masks(frame)
                except ColorizeError:  # a chain frame outside the range run may lack its masks
                    masks = {}
            owner = None
            if all(name in masks for name in self._masked):
                n = seg.count + 1
                cover = np.zeros((len(self._masked) + 1, n), np.int64)
                anyone = np.zeros(seg.labels.shape, np.uint8)
                for i, name in enumerate(self._masked):
                    mask = masks[name]
                    if mask.shape != seg.labels.shape:
                        break
                    m8 = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
                    cover[i + 1] = _label_counts(seg, m8)
                    cv2.bitwise_or(anyone, m8, dst=anyone)
                else:
                    cover[0] = _label_counts(seg, cv2.compare(anyone, 0, cv2.CMP_EQ))
                    owner = cover.argmax(axis=0).astype(np.int16)
            seg.cache["owner"] = owner
        return seg.cache["owner"]

    def _owner_pair(
        self, frame: int, seg: Segmentation, prev_frame: int, prev_seg: Segmentation
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(owners of `frame`, owners of `prev_frame`) when both frames have every mask, else None."""
        cur, prev = self._owners(frame, seg), self._owners(prev_frame, prev_seg)
        return None if cur is None or prev is None else (cur, prev)

    def _segmentation(self, frame: int, lineart: np.ndarray | None = None) -> Segmentation:
        seg = self._segs.get(frame)
        if seg is not None:
            self._segs.move_to_end(frame)
            return seg
        pending = self._pending.pop(frame, None)
        if pending is not None:
            seg = pending.result()
        else:
            if lineart is None:
                lineart = self._batch_lineart.get(frame)
            if lineart is None:
                lineart = self._require_shot().load_lineart(frame)
            seg = segment(lineart, self.flat.gap_close, self.flat.min_region, self.flat.line_threshold)
        self._segs[frame] = seg
        while len(self._segs) > _SEG_CACHE:
            self._segs.popitem(last=False)
        return seg

    def _position(self, frame: int) -> int:
        frames = self._require_shot().frames
        i = int(np.searchsorted(frames, frame))
        if i >= len(frames) or frames[i] != frame:
            raise ValueError(f"frame {frame} is not in the shot")
        return i

    def _require_shot(self) -> ShotContext:
        if self._shot is None:
            raise RuntimeError("FlatEngine.prepare(shot) must be called before colorize()")
        return self._shot


def _label_counts(seg: Segmentation, mask: np.ndarray) -> np.ndarray:
    """Pixels per label (count + 1 entries) where the uint8 `mask` is non-zero."""
    n = seg.count + 1
    labels16 = seg.labels16
    if labels16 is None:
        return np.bincount(seg.labels[mask > 0], minlength=n)
    return cv2.calcHist([labels16], [0], mask, [n], [0, n]).ravel().astype(np.int64)


def _rank_fill(
    colors: np.ndarray, source: np.ndarray, which: np.ndarray, areas: np.ndarray, palette: np.ndarray
) -> None:
    """Largest regions take the most frequent reference colors (cycling): a crude but stable guess."""
    ids = np.nonzero(which)[0]
    if len(ids) == 0:
        return
    order = ids[np.lexsort((ids, -areas[ids]))]
    colors[order] = palette[np.arange(len(order)) % len(palette)]
    source[order] = SOURCE_REFERENCE


def depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    """The line-art frames (their line art, masks and keyframes) the output of `frame` is made from.

    The frames from the nearest keyframe at or before `frame` (else the shot's first frame) to the nearest
    keyframe at or after it (else the shot's last frame), inclusive: the chains this engine may walk. A
    keyframe depends on itself only. Known without reading pixels; `frames` is the whole sorted sequence.
    """
    i = bisect.bisect_left(frames, frame)
    if i == len(frames) or frames[i] != frame:
        raise ValueError(f"frame {frame} is not in the shot")
    if frame in keyframes:
        return (frame,)
    k = bisect.bisect_left(keyframes, frame)
    start = bisect.bisect_left(frames, keyframes[k - 1]) if k > 0 else 0
    end = bisect.bisect_left(frames, keyframes[k]) if k < len(keyframes) else len(frames) - 1
    return tuple(frames[start : end + 1])
