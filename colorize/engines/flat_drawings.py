"""The flat engine's drawings: per frame its segmentation (made once: by the runner's readers, in a worker
thread, or when first asked for), its signature, its regions as the chains color them (cut where lines
were lost: `engines.flat_joins`), the correspondences between two drawings and the keyframes decoded. Each
is kept in a small cache (segmentations and keyframes by count, correspondences by bytes), so the chains
ask for them freely; what was dropped is made again when asked.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from colorize import images
from colorize.engines.base import FrameInput, ShotContext
from colorize.engines.flat_joins import Cut, Walked, walk
from colorize.engines.flat_joins import step as cut_step
from colorize.engines.flat_state import FlowCache, Key, decode_key
from colorize.flow import COARSE_WORK, Correspondence, Motion, correspondence, flow_image, flow_scale
from colorize.regions.lines import LineRoles, LineWork, classify
from colorize.regions.match import Signature, signature
from colorize.regions.propagate import vote_pixels
from colorize.regions.segment import Segmentation, line_layers, segment_ink
from colorize.settings import Settings

SEG_CACHE = 6  # full-size segmentations kept (current, previous, a reuse source, keyframes, slack)
KEY_CACHE = 4  # keyframes kept decoded (a span needs two)
FLOW_CACHE_BYTES = 256 << 20  # reduced-size flows kept between drawings (a few MB each at 1080p)


class Drawings:
    """The drawings of one shot as the flat engine sees them (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.flat = settings.flat
        self.roles = LineRoles.from_settings(settings.trace_lines)
        self.shot: ShotContext | None = None
        self._segs: OrderedDict[int, Segmentation] = OrderedDict()
        self._keys: OrderedDict[int, Key] = OrderedDict()
        self._sigs: dict[int, Signature] = {}
        # The regions of the span's frames as chains color them (`engines.flat_joins`): the walk from the
        # span's first keyframe (`_walk_key`), and the cut segmentations made last (frame: (raw, cut)).
        self._walked: dict[int, Walked] = {}
        self._walk_key: int | None = None
        self._cut_segs: OrderedDict[int, tuple[Segmentation, Segmentation]] = OrderedDict()
        self._flows = FlowCache(FLOW_CACHE_BYTES)
        self.batch_lineart: dict[int, np.ndarray] = {}  # the batch's line art (read by the runner)
        self._batch_segs: dict[int, Segmentation] = {}  # made ahead by the runner's readers
        self._pending: dict[int, Future[Segmentation]] = {}  # segmentations running in the worker

    def reset(self, shot: ShotContext) -> None:
        """Forget everything: a new shot."""
        self.shot = shot
        self._segs.clear()
        self._keys.clear()
        self._sigs.clear()
        self._walked.clear()
        self._walk_key = None
        self._cut_segs.clear()
        self._flows.clear()

    def begin_batch(self, batch: list[FrameInput]) -> None:
        """The batch's line art, and the segmentations that came made with it (`FrameInput.prepared`)."""
        self.batch_lineart = {fi.frame: fi.lineart for fi in batch}
        self._batch_segs = {fi.frame: fi.prepared for fi in batch if isinstance(fi.prepared, Segmentation)}

    def end_batch(self) -> None:
        """Drop the batch's line art; cancel segmentations still waiting in the worker."""
        self.batch_lineart = {}
        self._batch_segs = {}
        for future in self._pending.values():
            future.cancel()
        self._pending = {}

    def forget_signatures(self, lo: int, hi: int) -> None:
        """Drop the signatures of frames outside shot positions lo..hi (tens of KB each: memory stays flat
        in long shots; what is dropped is recomputed if asked again)."""
        for frame in list(self._sigs):
            if not lo <= self.position(frame) <= hi:
                del self._sigs[frame]

    def segment(self, lineart: np.ndarray) -> Segmentation:
        """Segmentation and what else depends on the line art alone (runs in the worker thread, so the
        main thread finds it done): the drawing's signature, whether it has transparency, its colored
        lines, the labels with the lines filled in (the paint layer's index) and its coarse flow image."""
        f = self.flat
        lineart8 = images.to_uint8(lineart)
        ink, colored, alpha = line_layers(lineart8)
        seg = segment_ink(ink, f.gap_close, f.min_region, f.line_threshold, f.close_breaks)
        seg.cache["signature"] = signature(ink)
        seg.cache["alpha"] = alpha  # = images.has_transparency(lineart)
        if f.lines == "keep" and f.colored_lines == "fill":
            seg.cache["colored"] = colored
        if f.colored_lines == "fill":
            seg.cache["linework"] = self.linework(lineart8, seg, seg.labels, colored)
        _ = seg.filled16
        if seg.labels16 is not None:
            vote_pixels(seg)
        self.flow_image(seg)
        return seg

    def linework(
        self, lineart8: np.ndarray, seg: Segmentation, labels: np.ndarray, colored: np.ndarray | None = None
    ) -> LineWork:
        """The roles of the frame's colored lines (`regions.lines.classify`) among `labels`: the
        segmentation's own, or a cut of them (the lines' roles depend on the regions they part)."""
        if colored is None:
            colored = line_layers(lineart8, seg.ink)[1]
        return classify(
            lineart8,
            seg.ink,
            colored,
            seg.cache["alpha"],
            labels,
            self.roles,
            self.flat.line_threshold,
            int(seg.areas[0]),
        )

    def prefetch(self, pool: ThreadPoolExecutor, fi: FrameInput) -> None:
        """Start the frame's segmentation in `pool`'s worker unless it is made or under way."""
        if fi.frame not in self._segs and fi.frame not in self._pending and fi.frame not in self._batch_segs:
            self._pending[fi.frame] = pool.submit(self.segment, fi.lineart)

    def segmentation(self, frame: int, lineart: np.ndarray | None = None) -> Segmentation:
        """The frame's segmentation as `segment` makes it: kept, made ahead, or made now (from `lineart`,
        the batch's line art, or the shot's loader)."""
        seg = self._segs.get(frame)
        if seg is not None:
            self._segs.move_to_end(frame)
            return seg
        pending = self._pending.pop(frame, None)
        if frame in self._batch_segs:
            seg = self._batch_segs[frame]
        elif pending is not None:
            seg = pending.result()
        else:
            if lineart is None:
                lineart = self.batch_lineart.get(frame)
            if lineart is None:
                lineart = self._shot().load_lineart(frame)
            seg = self.segment(lineart)
        self._segs[frame] = seg
        self._sigs[frame] = seg.cache["signature"]
        while len(self._segs) > SEG_CACHE:
            self._segs.popitem(last=False)
        return seg

    def signature(self, frame: int) -> Signature:
        """The drawing's signature (`regions.match.signature`: what repeats and similar drawings are found by)."""
        if frame not in self._sigs:
            self._sigs[frame] = self.segmentation(frame).cache["signature"]
        return self._sigs[frame]

    def regions(self, frame: int, lineart: np.ndarray | None = None) -> Segmentation:
        """The frame's regions as the chains color them: its segmentation with the joins of lost lines cut
        (`engines.flat_joins`; the last few cut segmentations are kept)."""
        seg = self.segmentation(frame, lineart)
        cut = self.cut(frame)
        if cut is None:
            return seg
        hit = self._cut_segs.get(frame)
        if hit is not None and hit[0] is seg:
            self._cut_segs.move_to_end(frame)
            return hit[1]
        out = cut.apply(seg)
        if "linework" in seg.cache:  # the colored lines' roles depend on the regions they part
            if lineart is None:
                lineart = self.batch_lineart.get(frame)
            if lineart is None:
                lineart = self._shot().load_lineart(frame)
            lineart8 = images.to_uint8(lineart)
            out.cache["linework"] = self.linework(lineart8, seg, out.labels)
        self._cut_segs[frame] = (seg, out)
        while len(self._cut_segs) > SEG_CACHE:
            self._cut_segs.popitem(last=False)
        return out

    def cut(self, frame: int) -> Cut | None:
        """The cut of `frame`'s segmentation (None: as segmented), from the walk forward from the span's
        first keyframe (`flat_joins.walk`)."""
        if not self.flat.cut_joins:
            return None
        k0, k1 = self.span(frame)
        if k0 is None or frame == k0:
            return None
        if self._walk_key != k0:
            self._walked.clear()
            self._walk_key = k0
        if frame not in self._walked:
            frames = list(self._shot().frames[self.position(k0) : self.position(frame) + 1])
            keys = {self.signature(k).digest: self.key(k).colors for k in (k1, k0) if k is not None}
            walk(frames, self._walked, lambda f: self.signature(f).digest, keys, self.advance)
        return self._walked[frame].cut

    def advance(self, frame: int, before: Walked) -> tuple[Cut | None, np.ndarray]:
        """One step of the walk: `frame` cut against the regions of the frame walked before it."""
        prev = self.position(frame) - 1
        src = self._shot().frames[prev]
        return cut_step(
            self.segmentation(frame),
            self.regions(src),
            before.colors,
            self.correspond(frame, src)[0],
            self.flat.min_region,
        )

    def correspond(self, frame: int, src: int) -> tuple[Correspondence, Motion | None]:
        """`flow.correspondence` from `frame`'s drawing into `src`'s. Kept by the two drawings' digests in
        an LRU of reduced-size flows (FLOW_CACHE_BYTES): the walk (`cut`), the chain steps and the
        look-ups in the keyframe (second opinion, texture) ask for the same pairs, the walk of a span with a
        keyframe at each end well ahead of the forward chain."""
        cache_key = (self.signature(frame).digest, self.signature(src).digest)
        hit = self._flows.get(cache_key)
        if hit is not None:
            return hit
        seg, src_seg = self.segmentation(frame), self.segmentation(src)
        found = correspondence(seg.ink, src_seg.ink, images=self.flow_images(seg, src_seg))
        self._flows.put(cache_key, found)
        return found

    def flow_images(self, target: Segmentation, source: Segmentation) -> dict:
        """The coarse flow images of two frames (each frame's is computed once, in the segmentation
        worker: it is a target once and a source once)."""
        scale = flow_scale(target.labels.shape, COARSE_WORK)
        return {scale: (self.flow_image(target), self.flow_image(source))}

    @staticmethod
    def flow_image(seg: Segmentation) -> np.ndarray:
        """The drawing's coarse flow image (`flow.flow_image` at COARSE_WORK), kept on the segmentation."""
        scale = flow_scale(seg.labels.shape, COARSE_WORK)
        if ("flow_image", scale) not in seg.cache:
            seg.cache[("flow_image", scale)] = flow_image(seg.ink, scale)
        return seg.cache[("flow_image", scale)]

    def key(self, frame: int, image: np.ndarray | None = None) -> Key:
        """The keyframe decoded (`flat_state.decode_key`, snapped to the colour model), from `image` or the
        shot's loader."""
        key = self._keys.get(frame)
        if key is not None:
            self._keys.move_to_end(frame)
            return key
        if image is None:
            image = self._shot().load_keyframe(frame)
        key = decode_key(self.segmentation(frame), image, self._shot().palette)
        self._keys[frame] = key
        while len(self._keys) > KEY_CACHE:
            self._keys.popitem(last=False)
        return key

    def span(self, frame: int) -> tuple[int | None, int | None]:
        """The keyframes bounding `frame`'s span: the last one <= frame and the first one >= frame."""
        keys = self._shot().keyframes
        i, j = bisect.bisect_right(keys, frame), bisect.bisect_left(keys, frame)
        return (keys[i - 1] if i else None), (keys[j] if j < len(keys) else None)

    def position(self, frame: int) -> int:
        """The frame's index in the shot's sorted frames (a ValueError when it is not one of them)."""
        frames = self._shot().frames
        i = int(np.searchsorted(frames, frame))
        if i >= len(frames) or frames[i] != frame:
            raise ValueError(f"frame {frame} is not in the shot")
        return i

    def _shot(self) -> ShotContext:
        if self.shot is None:
            raise RuntimeError("FlatEngine.prepare(shot) must be called before colorize()")
        return self.shot
