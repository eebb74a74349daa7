"""The flat engine: cel "paint bucket" filling of line-enclosed regions, no model weights.

Spans. A frame f depends only on the line-art frames (with their masks and keyframes) from the previous
keyframe to the next keyframe, inclusive (without a keyframe on one side, from or to f itself): its
*span* (`depends_on`). Nothing else (not the frames a chunk happens to start at, not the output folder)
changes its bytes.

Color sources per region, in order:
1. a keyframe frame outputs the keyframe itself: its pixels off the lines, one color per region under
   the lines (`flat.fill: flat` paints every region flat instead); a frame with the same drawing (the same
   ink) as a keyframe of its span is rendered exactly as that keyframe;
2. chains: from the keyframe before f forward and from the keyframe after f backward, frame by frame
   through the span. At each step the frame's drawing is compared with the drawings already colored on
   the chain and with the span's keyframes (`regions.match.signature`): an exact repeat (hold, cycle,
   ping-pong) copies that frame's colors unchanged, so repeats never drift and come out byte-identical; a
   near repeat (a re-scan, a cycle redrawn) propagates from the most similar drawing, time-adjacent or
   not; otherwise from the previous frame. Propagation: global motion of the ink, flow on the residual
   (`colorize.flow.correspondence`), region votes (`regions.propagate`), then region-level matching where
   the votes are weak (`regions.match.match_regions`); a region that is not open background but took a
   color only the keyframe's background has is asked about in the keyframe itself (`regions.kinds`: a
   character part, or a pocket inside the character, takes a character's color back, at low
   confidence). The more confident chain wins per region;
3. a character's reference palette inside that character's mask, the background reference outside all
   masks (best effort);
4. small regions left over take a neighbour's color (`regions.fallback`); otherwise the visible
   `unresolved_color`, and the frame's `info["unresolved"]` counts those regions.

Painting (`flat.fill`): flat regions take one color; `texture` (and `auto` where the source region is not
flat: shading, texture) carries the keyframe's pixels into each region through a direct correspondence
with the keyframe, never across a line. Alpha (`output_alpha`): with `auto`, the output is RGBA when the
frame's line art or a keyframe of its span has transparency; transparent keyframe regions stay
transparent and lines keep their alpha.

Depth. Segmentation, matching and propagation work on 8-bit ink and 8-bit packed colors. With
`output_depth: 16` the runner hands the engine 16-bit files at 16 bits (`native_depth`); a frame whose
line art or span keyframes are 16-bit is painted and rendered at 16 bits: each region takes the exact
16-bit color of the keyframe region its color came from (`_colors16`), texture and the keyframe frame
carry the 16-bit keyframe pixels, and lines are composited from the 16-bit line art. A frame whose
inputs are all 8-bit is made at 8 bits, as without the setting (the writer widens it exactly).

Colour model (`palette`): keyframes are snapped to the palette as they are read (every pixel to its
nearest colour, CIELAB ΔE), region colors from anywhere else (references) are snapped too, and the frame is
made at 8 bits, so every painted pixel is a palette colour (unresolved regions keep `unresolved_color`).
Layers (`ShotContext.layers`): `paint` is the paint layer (lines painted over), `line` the main lines
(`regions.render.line_layer`).

Character masks (when the manifest gives them) make every region "owned" by the character covering most
of its pixels, or by the background; votes only count pixels of the same owner (see `regions.propagate`).

Memory: chain states (one color per region, a few KB) are kept for the span being worked on; full-size
segmentations, cuts, correspondences and decoded keyframes live in small caches (`engines.flat_drawings`)
and are recomputed (pure functions of the line art and the keyframes) when needed again.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from colorize import images
from colorize.colormodel import Palette
from colorize.engines.base import EngineBase, FrameInput, FrameResult, ShotContext
from colorize.engines.flat_drawings import Drawings
from colorize.engines.flat_joins import rejoin
from colorize.engines.flat_state import (
    BACKWARD,
    FORWARD,
    KEYFRAME,
    MATCHED,
    NEIGHBOUR,
    PROPAGATED,
    REFERENCE,
    REUSED,
    SOURCES,
    UNRESOLVED,
    Key,
    State,
)
from colorize.errors import ColorizeError
from colorize.flow import (
    IDENTITY,
    Correspondence,
    affine_map,
    global_motion,
)
from colorize.qa import qa_overlay
from colorize.regions.fallback import (
    from_neighbours,
    from_references,
    painted_colors,
    painted_lines,
    region_owners,
)
from colorize.regions.kinds import (
    BACKGROUND_SHARE,
    around_color,
    background_only,
    best_other,
    enclosed_parts,
    region_votes,
    seen_share,
    surroundings,
    suspects,
    tracked_holes,
)
from colorize.regions.lines import LineWork
from colorize.regions.lines import empty as no_linework
from colorize.regions.match import Signature, match_regions, quick_similarity, similarity
from colorize.regions.palette import NO_COLOR, on_model, parse_hex, reference_palette, widen
from colorize.regions.propagate import propagate
from colorize.regions.render import (
    carry_texture,
    fill_trace,
    keyframe_lines,
    line_layer,
    paint_layer,
    paint_layer16,
    paste_off_lines,
    render,
)
from colorize.regions.segment import Segmentation, ink_level
from colorize.settings import Settings

REUSE_MARGIN = 0.02  # a non-adjacent drawing is used when it is this much more similar than the previous
NEAR_REPEAT = 0.85  # ... and at least this similar (a repeat, not a scene that merely looks alike)
SIMILAR_CANDIDATES = 4  # drawings compared closely (shift-tolerant) per frame, picked by a quick correlation
LOW_CONFIDENCE = 0.75  # QA: confidences below this (but accepted) are marked
SOURCE_SHARE = 0.2  # a part kept off the background takes another color of its source with this vote share
NEIGHBOUR_SHARE = 2e-4  # unresolved regions under this share of the frame (0.02 %) take a neighbour's color


class FlatEngine(EngineBase):
    """Paint-bucket engine; see the module docstring."""

    name = "flat"
    native_depth = True  # with output_depth 16, frames come at their files' depth (see Depth above)

    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings
        self.flat = settings.flat
        self.qa = False  # also return a QA overlay per frame (FrameResult.qa): ShotContext.qa
        # When a dict (evaluation): per frame, the bit-packed H×W mask of the pixels of regions flagged
        # low-confidence or unresolved (what QA tells a painter to check).
        self.flags: dict[int, np.ndarray] | None = None
        self._shot: ShotContext | None = None
        self.drawings = Drawings(settings)  # segmentations, cuts, correspondences, keyframes (cached)
        self._states: dict[tuple[int, int], State] = {}
        self._batch_masks: dict[int, dict[str, np.ndarray]] = {}
        self._masked: tuple[str, ...] = ()  # characters with masks, in owner order (owner i + 1)
        self._palettes: dict[str, np.ndarray] = {}
        self._reference_inks: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name: (ink, line pixels)
        self.palette: Palette | None = None  # the colour model (ShotContext.palette)

    # -- interface ---------------------------------------------------------------------------------------

    def prepare(self, shot: ShotContext) -> None:
        """Reset caches; reference palettes of the characters."""
        self._shot = shot
        self.qa = shot.qa
        self.drawings.reset(shot)
        self._states.clear()
        self._palettes = {c.name: reference_palette(c.reference) for c in shot.characters}
        self._reference_inks = {}
        self.palette = shot.palette
        self._masked = tuple(sorted(c.name for c in shot.characters if c.has_mask))

    def preprocess(self, frame_input: FrameInput) -> FrameInput:
        """The frame with its segmentation (`Drawings.segment`) as `prepared`: the runner calls this in its reader
        threads, ahead of the batch, while the engine colors earlier frames. Thread-safe: a pure function
        of the line art and the settings."""
        return replace(frame_input, prepared=self.drawings.segment(frame_input.lineart))

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        """Color each frame of the batch (in order).

        Segmentations come made by `preprocess` (the runner); those of frames that come without (an engine
        driven directly) run in a worker thread, one after the other, while the frames before them
        propagate and render (OpenCV and large numpy operations release the GIL). Segmentation is a pure
        function of the line art, so results do not depend on the overlap.
        """
        self.drawings.begin_batch(batch)
        self._batch_masks = {fi.frame: fi.masks for fi in batch}
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flat-segment") as pool:
                for fi in batch[1:]:  # the first one the main thread makes, while the worker makes the next
                    self.drawings.prefetch(pool, fi)
                return [self._timed(fi) for fi in batch]
        finally:
            self.drawings.end_batch()
            self._batch_masks = {}

    # -- per frame ---------------------------------------------------------------------------------------

    def _timed(self, fi: FrameInput) -> FrameResult:
        """`_one`, with the main-thread seconds it took (the `frame` event's `seconds`: a keyframe takes a
        fraction of a propagated frame, so the batch's time split evenly would mislead)."""
        start = time.perf_counter()
        result = self._one(fi)
        result.seconds = time.perf_counter() - start
        return result

    def _one(self, fi: FrameInput) -> FrameResult:
        shot = self._require_shot()
        seg = self.drawings.regions(fi.frame, fi.lineart)
        lw: LineWork = seg.cache.get("linework") or no_linework(seg.labels.shape)
        k0, k1 = self.drawings.span(fi.frame)
        self._forget_other_spans(k0, k1)
        keys = [k for k in dict.fromkeys((k0, k1)) if k is not None]
        if fi.frame in shot.keyframes:
            self.drawings.key(
                fi.frame, fi.keyframe
            )  # this frame's keyframe as the batch brings it (not re-read)
        alpha = self._alpha(seg, keys)
        lineart = fi.lineart if self.palette is None else images.to_uint8(fi.lineart)
        deep = lineart.dtype == np.uint16 or any(self.drawings.key(k).image.dtype == np.uint16 for k in keys)
        digest = self.drawings.signature(fi.frame).digest
        same = [k for k in keys if self.drawings.signature(k).digest == digest]
        if fi.frame in shot.keyframes or same:
            # The keyframe itself, or the same drawing as a keyframe of the span: the keyframe's look.
            k = fi.frame if fi.frame in shot.keyframes else same[0]
            key = self.drawings.key(k)  # a keyframe frame's own keyframe is cached above
            colors, source = key.colors.copy(), np.full(seg.count + 1, KEYFRAME, np.int8)
            conf = np.ones(seg.count + 1, np.float32)
            paint, unfilled = self._paint(
                seg, lw, colors, [(np.ones(seg.count + 1, bool), key.state(k))], alpha, deep
            )
            key_paint = self._paint_source(key, alpha, paint.dtype)
            if self.flat.fill != "flat":
                paste_off_lines(paint, seg, key_paint)
            # The keyframe shows how its own drawing's coloured lines were painted: they take its pixels.
            taken = keyframe_lines(lw, fi.lineart, key.image)
            cv2.copyTo(key_paint, taken, paint)
            over = cv2.bitwise_or(lw.trace, taken)
            unfilled = cv2.subtract(unfilled, taken)
        else:
            colors, conf, source, winners = self._combine(fi.frame, k0, k1)
            owners = self._owners(fi.frame, seg)
            limit = self._neighbour_limit(seg)
            if shot.keyframes:  # small regions take the keys' colors around them (same owner) first
                source[from_neighbours(seg, colors, limit, owners, same_owner=True)] = NEIGHBOUR
            if not shot.keyframes or fi.masks:
                first = (
                    self._palettes.get(shot.characters[0].name)
                    if shot.characters and not shot.keyframes
                    else None
                )
                painted = self._painted(seg) if (colors[1:] == NO_COLOR).any() else None
                took = from_references(
                    seg, colors, conf, fi.masks, self._palettes, shot.background, first, painted
                )
                source[took] = REFERENCE
            source[from_neighbours(seg, colors, limit, owners)] = NEIGHBOUR
            paint, unfilled = self._paint(seg, lw, colors, winners, alpha, deep)
            self._texture(fi.frame, seg, paint, alpha, colors, winners)
            over = lw.trace
        source[0] = KEYFRAME  # label 0 = lines, not a region
        unresolved = colors == NO_COLOR
        unresolved[0] = False
        source[unresolved] = UNRESOLVED
        image = render(seg, paint, lineart, self.flat.lines, self.flat.colored_lines, over)
        layers = {}
        if "paint" in shot.layers:
            layers["paint"] = paint
        if "line" in shot.layers:
            layers["line"] = line_layer(
                seg, lineart, paint.dtype, self.flat.lines, self.flat.colored_lines, over
            )
        counts = np.bincount(source[1:], minlength=len(SOURCES))
        info: dict[str, Any] = {
            "regions": int(seg.count),
            "unresolved": int(unresolved.sum()),
            "sources": {name: int(k) for name, k in zip(SOURCES, counts, strict=True) if k},
        }
        if lw.count or lw.marks:
            info["trace_pixels"] = lw.count
            info["trace_unfilled"] = int(cv2.countNonZero(unfilled))
        chained = (source == FORWARD) | (source == BACKWARD) | (source == REUSED) | (source == MATCHED)
        low = chained & (conf < LOW_CONFIDENCE)
        low |= source == NEIGHBOUR
        low |= (source == REFERENCE) & (conf < LOW_CONFIDENCE)  # a palette guess is never confident
        # Specks (pockets where lines meet, under min_region px) are not worth a painter's look.
        low &= seg.areas >= max(1, self.flat.min_region)
        info["low_confidence"] = int(low.sum())
        if self.flags is not None:  # evaluation: which pixels a painter is told to look at
            flagged = (low | unresolved).view(np.uint8)
            flagged[0] = 0
            self.flags[fi.frame] = np.packbits(seg.per_pixel(flagged))
        qa = qa_overlay(image, seg, source, low, SOURCES, unfilled) if self.qa else None
        main = cv2.threshold(seg.ink, 0, 1, cv2.THRESH_BINARY)[1]  # 0/1: every line pixel ...
        if lw.count or cv2.countNonZero(over):
            main = cv2.subtract(main, over)  # ... but those painted over
        return FrameResult(
            frame=fi.frame, image=image, info=info, qa=qa, main_lines=main.view(bool), layers=layers
        )

    def _paint(
        self,
        seg: Segmentation,
        lw: LineWork,
        colors: np.ndarray,
        winners: list[tuple[np.ndarray, State]],
        alpha: bool,
        deep: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The flat paint layer: at 8 bits, or at 16 bits (`deep`) in the colors `_colors16` finds; trace
        lines filled by their roles (`fill_trace`). Also the trace pixels left unfilled (uint8 mask)."""
        finished = self._finish_colors(seg, colors)
        if not deep:
            return fill_trace(seg, lw, colors, NO_COLOR, finished, alpha, paint_layer)
        return fill_trace(seg, lw, colors, NO_COLOR, self._colors16(finished, winners), alpha, paint_layer16)

    def _finish_colors(self, seg: Segmentation, colors: np.ndarray) -> np.ndarray:
        """Colors to paint: unresolved regions in the visible color; lines (label 0) like region 1."""
        out = on_model(self.palette, colors) if self.palette is not None else colors.copy()
        out[out == NO_COLOR] = parse_hex(self.flat.unresolved_color)
        out[0] = out[1] if seg.count else parse_hex(self.flat.unresolved_color)
        return out

    def _colors16(self, finished: np.ndarray, winners: list[tuple[np.ndarray, State]]) -> np.ndarray:
        """The 16-bit colors (packed) of `finished` (8-bit, per region).

        A region whose color a chain (or the keyframe) gave takes the 16-bit color of the keyframe region
        it came from (`State.origin`), exactly. Others (a neighbour's color, a reference's) take the
        16-bit color of a region of this frame, else of the span's keyframes, with the same 8-bit color
        (the largest such keyframe region); colors with none (references, the unresolved color) widen.
        """
        out = np.zeros(len(finished), np.uint64)
        known = np.zeros(len(finished), bool)
        pool8, pool16 = [], []
        for won, state in winners:
            key = self.drawings.key(state.origin_key)
            origin = np.where(won, state.origin, 0)
            take = (origin > 0) & (key.colors[origin] == finished)
            take[0] = False
            out[take] = key.colors16[origin[take]]
            known |= take
            order = np.argsort(-key.seg.areas[1:], kind="stable") + 1
            pool8.append(key.colors[order])
            pool16.append(key.colors16[order])
        rest = np.flatnonzero(~known)
        if len(rest):
            # The first region with the same 8-bit color: this frame's, then the keyframes' by size.
            by8 = np.concatenate([finished[known], *pool8]).tolist()
            by16 = np.concatenate([out[known], *pool16]).tolist()
            same = dict(zip(reversed(by8), reversed(by16), strict=True))  # the first one wins
            wide = widen(finished[rest]).tolist()
            out[rest] = [same.get(c, w) for c, w in zip(finished[rest].tolist(), wide, strict=True)]
        return out

    def _combine(
        self, frame: int, k0: int | None, k1: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, State]]]:
        """Per region: color, confidence and source from the chains of the span's keyframes.

        Returns also, per chain, the regions it won and its state (for carrying texture)."""
        seg = self.drawings.regions(frame)
        n = seg.count + 1
        colors = np.full(n, NO_COLOR, np.int64)
        conf = np.zeros(n, np.float32)
        source = np.full(n, UNRESOLVED, np.int8)
        pos = self.drawings.position(frame)
        chains = []
        if k0 is not None:
            chains.append((pos - self.drawings.position(k0), 0, k0, k1, FORWARD))
        if k1 is not None:
            chains.append((self.drawings.position(k1) - pos, 1, k1, k0, BACKWARD))
        # The farther keyframe first, so ties (equal confidence) go to the nearer one, forward on equal distance.
        won = np.full(n, -1, np.int64)
        states = []
        for i, (_, _, key, other, direction) in enumerate(sorted(chains, reverse=True)):
            state = self._chain_state(key, other, frame)
            better = (state.colors != NO_COLOR) & (state.conf >= conf)
            colors[better] = state.colors[better]
            conf[better] = state.conf[better]
            how = state.how[better]
            source[better] = np.where(how == PROPAGATED, direction, how)
            won[better] = i
            states.append(state)
        weak = conf < self.flat.match_threshold
        colors[weak] = NO_COLOR
        source[weak] = UNRESOLVED
        winners = [((won == i) & ~weak, s) for i, s in enumerate(states)]
        return colors, conf, source, winners

    # -- chains ------------------------------------------------------------------------------------------

    def _chain_state(self, key: int, other: int | None, frame: int) -> State:
        """The state of `frame` on the chain from keyframe `key` (the span's other keyframe: `other`)."""
        frames = self._require_shot().frames
        a, b = self.drawings.position(key), self.drawings.position(frame)
        step = 1 if b > a else -1
        start = a
        for p in range(b, a, -step):
            if (key, frames[p]) in self._states:
                start = p
                break
        shown_before = self._require_shot().shown_before if step == 1 else {}
        for p in range(start + step, b + step, step):
            earlier = [frames[q] for q in range(p - step, a, -step)]  # chain frames before p, nearest first
            before = shown_before.get(frames[p])
            if before is not None and (before == key or before in earlier):  # nearest in time: first
                earlier = [before, *(q for q in earlier if q != before)]
            self._states[(key, frames[p])] = self._step(key, other, frames[p], earlier)
        return self._states[(key, frame)]

    def _source_state(self, key: int, q: int) -> State:
        keyframes = self._require_shot().keyframes
        return self.drawings.key(q).state(q) if q in keyframes else self._states[(key, q)]

    def _step(self, key: int, other: int | None, p: int, earlier: list[int]) -> State:
        """One chain step: the state of frame `p` from the best already colored drawing of the chain."""
        seg = self.drawings.regions(p)
        sig = self.drawings.signature(p)
        keys = [key] + ([other] if other is not None and other != key else [])
        # Exact repeats: the keyframes first, then the chain's frames, nearest first.
        for q in keys + earlier:
            if self.drawings.signature(q).digest == sig.digest:
                state = self._source_state(key, q)
                how = np.where(state.how == KEYFRAME, KEYFRAME, REUSED).astype(np.int8)
                return replace(state, how=how)
        adjacent = earlier[0] if earlier else key
        src = self._most_similar(sig, keys + earlier, adjacent, p)
        src_state = self._source_state(key, src)
        src_seg = self.drawings.regions(src)
        where, motion = self.drawings.correspond(p, src)
        owners = self._owner_pair(p, seg, src, src_seg)
        colors, votes, prev_label = propagate(
            seg, src_seg, src_state.colors, where, owners, None if motion is None else motion.affine
        )
        # A region inherits at most the confidence of where its color came from (weak links stay weak).
        conf = np.minimum(votes, np.where(prev_label > 0, src_state.conf[prev_label], votes))
        how = np.full(seg.count + 1, PROPAGATED if src == adjacent else REUSED, np.int8)
        # Where this step's votes are weak, match regions on position, size, shape and neighbours instead
        # (small regions are left to the neighbour fallback).
        weak = (votes < LOW_CONFIDENCE) & (seg.areas >= self._neighbour_limit(seg))
        weak[0] = False
        if weak.any():
            ok = conf >= LOW_CONFIDENCE
            ids, score, found = match_regions(
                seg,
                src_seg,
                np.where(src_state.conf >= self.flat.match_threshold, src_state.colors, NO_COLOR),
                IDENTITY if motion is None else motion.affine,
                weak,
                np.where(ok, colors, NO_COLOR),
                prev_label,
                where,
                owners,
            )
            score = np.minimum(score, src_state.conf[found])
            better = score > conf[ids]
            ids, score, found = ids[better], score[better], found[better]
            colors[ids], conf[ids], prev_label[ids] = src_state.colors[found], score, found
            how[ids] = MATCHED
        origin = np.where(prev_label > 0, src_state.origin[prev_label], 0)
        self._second_opinion(p, seg, (src_seg, src_state, where, owners), colors, conf, how, origin)
        colors[conf < self.flat.match_threshold] = NO_COLOR
        raw = self.drawings.segmentation(p)
        if seg is not raw:  # a cut frame: pieces left without a color rejoin
            low = np.float32(max(self.flat.match_threshold, LOW_CONFIDENCE - 1e-3))
            how[rejoin(seg, raw, colors, conf, origin, low)] = MATCHED
        return State(colors, conf, origin, how, src_state.origin_key)

    def _second_opinion(
        self,
        p: int,
        seg: Segmentation,
        src: tuple[Segmentation, State, Correspondence, tuple[np.ndarray, np.ndarray] | None],
        colors: np.ndarray,
        conf: np.ndarray,
        how: np.ndarray,
        origin: np.ndarray,
    ) -> None:
        """Regions that are not open background but took a background-only color of the chain's keyframe
        (`regions.kinds`); in place.

        The color stays where the keyframe shows that same background where the region is (a hole that
        opened: the fence through it where the keyframe has the fence), or where it was carried whole from
        a hole of the keyframe (sky through a loop). Otherwise, or when the region is a new pocket inside
        the character (`regions.kinds.enclosed_parts`), it is a character part: it takes the color, other
        than a background-only one, that SOURCE_SHARE or more of its pixels came from in the source
        drawing (the part was joined to the background through a gap in the lines there), else (a pocket)
        the color of the character around it, else the keyframe's most voted one (the part moved far),
        else the character around it, at low confidence (QA marks it); left as it is, at low confidence,
        when none has one."""
        src_seg, src_state, where, owners = src
        key = self.drawings.key(src_state.origin_key)
        if "background_only" not in key.seg.cache:
            key.seg.cache["background_only"] = background_only(
                key.seg, key.colors, images.to_uint8(key.image)
            )
        background = key.seg.cache["background_only"]
        limit = self._neighbour_limit(seg)
        ids = np.flatnonzero(suspects(seg, colors, background, limit))
        ids = ids[conf[ids] >= self.flat.match_threshold]
        if len(ids) == 0:
            return
        key_owners = self._owner_pair(p, seg, src_state.origin_key, key.seg)
        key_votes = region_votes(
            seg, key.seg, ids, self.drawings.correspond(p, src_state.origin_key)[0], key_owners
        )
        near_votes = region_votes(seg, src_seg, ids, where, owners)
        # Background the keyframe shows where the region is now, or a hole of the keyframe (sky through a
        # loop) the region's color was carried from as a whole, however far it moved: background.
        seen = seen_share(key_votes, key.colors, background, colors[ids]) >= BACKGROUND_SHARE
        character = ~seen & ~tracked_holes(seg, ids, key.seg, origin[ids])
        around_share, around_label = surroundings(seg, ids, colors, background)
        from_key = key.seg.areas[origin[ids]]
        inside = enclosed_parts(seg, ids, near_votes, src_seg, limit, from_key, around_share)
        # ... only where the color is a weak guess carried by propagation (region matching on shape and
        # position that picked a background region is evidence of its own)
        inside &= (conf[ids] < LOW_CONFIDENCE) & (how[ids] == PROPAGATED)
        keep = character | inside
        ids, key_votes, near_votes, inside = ids[keep], key_votes[keep], near_votes[keep], inside[keep]
        around_share, around_label = around_share[keep], around_label[keep]
        low = np.float32(max(self.flat.match_threshold, LOW_CONFIDENCE - 1e-3))
        conf[ids] = np.minimum(conf[ids], low)
        near = best_other(near_votes, src_state.colors, background)
        far = best_other(key_votes, key.colors, background)
        around = around_color(colors, around_share, around_label)
        took = np.zeros(len(ids), bool)
        # A part inside the character that was new in the source takes the color around it before a
        # far-away keyframe match; the others the keyframe's match first.
        for (got, share, label), least, kind in (
            (near, np.full(len(ids), SOURCE_SHARE), "source"),
            (around, np.where(inside, 0.0, np.inf), "around"),
            (far, np.zeros(len(ids)), "key"),
            (around, np.zeros(len(ids)), "around"),
        ):
            ok = ~took & (got != NO_COLOR) & (share >= least)
            t = ids[ok]
            colors[t], how[t] = got[ok], MATCHED
            conf[t] = np.clip(share[ok], self.flat.match_threshold, low)
            if kind == "key":
                origin[t] = label[ok]
            elif kind == "source":
                origin[t] = src_state.origin[label[ok]]
            else:
                origin[t] = origin[label[ok]]
            took |= ok

    def _most_similar(self, sig: Signature, candidates: list[int], adjacent: int, frame: int) -> int:
        """The drawing to propagate from: the most similar candidate when it is a near repeat (NEAR_REPEAT)
        and beats the adjacent frame by REUSE_MARGIN (ties: keyframes, then the nearest in time), else the
        adjacent frame."""
        if len(candidates) == 1:
            return adjacent
        # A quick unshifted correlation picks a few; the shift-tolerant similarity decides among them.
        quick = {q: quick_similarity(sig, self.drawings.signature(q)) for q in candidates}
        few = sorted(candidates, key=lambda q: -quick[q])[:SIMILAR_CANDIDATES]
        sims = {q: similarity(sig, self.drawings.signature(q)) for q in dict.fromkeys([adjacent, *few])}
        candidates = list(sims)
        keyframes = self._require_shot().keyframes
        pos = self.drawings.position(frame)
        best = max(candidates, key=lambda q: (sims[q], q in keyframes, -abs(self.drawings.position(q) - pos)))
        near = sims[best] >= NEAR_REPEAT and sims[best] > sims[adjacent] + REUSE_MARGIN
        return best if near else adjacent

    def _forget_other_spans(self, k0: int | None, k1: int | None) -> None:
        """Drop chain states and signatures of other spans (frames run in order; what is dropped is
        recomputed if asked again)."""
        lo = self.drawings.position(k0) if k0 is not None else 0
        hi = self.drawings.position(k1) if k1 is not None else len(self._require_shot().frames) - 1
        for state_key in list(self._states):
            if not lo <= self.drawings.position(state_key[1]) <= hi:
                del self._states[state_key]
        self.drawings.forget_signatures(lo, hi)  # signatures too

    # -- painting ----------------------------------------------------------------------------------------

    def _alpha(self, seg: Segmentation, keys: list[int]) -> bool:
        mode = self.settings.output_alpha
        if mode != "auto":
            return mode == "on"
        if bool(seg.cache.get("alpha")) or any(self.drawings.key(k).alpha for k in keys):
            return True
        # Without keyframes a painted frame given as a reference may paint the regions (`_painted`).
        shot = self._require_shot()
        return not shot.keyframes and any(
            c.reference_alpha is not None and c.reference.shape[:2] == seg.labels.shape
            for c in shot.characters
        )

    def _paint_source(self, key: Key, alpha: bool, dtype: np.dtype) -> np.ndarray:
        """The keyframe's pixels as the paint layer takes them: RGBA or over white, at the paint's depth."""
        image = key.image if alpha else images.over_white(key.image)
        return images.to_uint16(image) if dtype == np.uint16 else image

    def _texture(
        self,
        frame: int,
        seg: Segmentation,
        paint: np.ndarray,
        alpha: bool,
        colors: np.ndarray,
        winners: list[tuple[np.ndarray, State]],
    ) -> None:
        """Carry keyframe pixels into the regions whose source region is textured (per `flat.fill`)."""
        if self.flat.fill == "flat":
            return
        for won, state in winners:
            key = self.drawings.key(state.origin_key)
            origin = np.where(won & (colors != NO_COLOR), state.origin, 0)
            big = key.seg.areas[origin] >= max(4, self.flat.min_region)
            wanted = (origin > 0) & big & (True if self.flat.fill == "texture" else ~key.flat[origin])
            wanted[0] = False
            if not wanted.any():
                continue
            where = self.drawings.correspond(frame, state.origin_key)[0]
            source = self._paint_source(key, alpha, paint.dtype)
            carry_texture(paint, seg, wanted, origin, where.full(), key.seg, source)

    # -- masks -------------------------------------------------------------------------------------------

    def _owners(self, frame: int, seg: Segmentation) -> np.ndarray | None:
        """Owner per region of `frame` (`regions.fallback.region_owners`); None without masks. Cached on
        the segmentation (a pure function of the frame's line art and masks)."""
        if not self._masked:
            return None
        if "owner" not in seg.cache:
            masks = self._batch_masks.get(frame)
            if masks is None:
                try:
                    masks = self._require_shot().load_masks(frame)
                except ColorizeError:  # a chain frame outside the range run may lack its masks
                    masks = {}
            seg.cache["owner"] = region_owners(seg, masks, self._masked)
        return seg.cache["owner"]

    def _owner_pair(
        self, frame: int, seg: Segmentation, prev_frame: int, prev_seg: Segmentation
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(owners of `frame`, owners of `prev_frame`) when both frames have every mask, else None."""
        cur, prev = self._owners(frame, seg), self._owners(prev_frame, prev_seg)
        return None if cur is None or prev is None else (cur, prev)

    # -- fallbacks ---------------------------------------------------------------------------------------

    def _painted(self, seg: Segmentation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per character whose reference paints this very drawing (`regions.fallback.painted_colors`):
        (colors, share) per region. References of another size than the frame are model sheets: skipped."""
        out = {}
        threshold = ink_level(self.flat.line_threshold)
        for c in self._require_shot().characters:
            if c.reference.shape[:2] != seg.labels.shape:
                continue
            if c.name not in self._reference_inks:
                ink = painted_lines(c.reference)
                self._reference_inks[c.name] = (ink, ink > 0)
            ink, lines = self._reference_inks[c.name]
            where = affine_map(global_motion(seg.ink, ink).affine, seg.labels.shape)
            painting = (
                c.reference if c.reference_alpha is None else np.dstack([c.reference, c.reference_alpha])
            )
            got = painted_colors(seg, painting, lines, where, threshold)
            if got is not None:
                out[c.name] = got
        return out

    def _neighbour_limit(self, seg: Segmentation) -> int:
        """Regions under this many pixels take a neighbour's color when unresolved; larger weak ones are
        matched region to region (shape statistics need some pixels)."""
        return max(4 * max(1, self.flat.min_region), int(NEIGHBOUR_SHARE * seg.labels.size))

    # -- caches ------------------------------------------------------------------------------------------

    def _require_shot(self) -> ShotContext:
        if self._shot is None:
            raise RuntimeError("FlatEngine.prepare(shot) must be called before colorize()")
        return self._shot


def depends_on(
    frame: int, frames: Sequence[int], keyframes: Sequence[int], settings: Settings
) -> tuple[int, ...]:
    """The line-art frames (their line art, masks and keyframes) the output of `frame` is made from.

    The frames from the nearest keyframe at or before `frame` to the nearest keyframe at or after it,
    inclusive: the chains this engine walks. Without a keyframe on one side the span stops at `frame` on
    that side (no chain comes from there); a keyframe depends on itself only, and so does a frame of a shot
    without keyframes. Known without reading pixels; `frames` is the whole sorted sequence.
    """
    i = bisect.bisect_left(frames, frame)
    if i == len(frames) or frames[i] != frame:
        raise ValueError(f"frame {frame} is not in the shot")
    k = bisect.bisect_left(keyframes, frame)
    if k < len(keyframes) and keyframes[k] == frame:
        return (frame,)
    start = bisect.bisect_left(frames, keyframes[k - 1]) if k > 0 else i
    end = bisect.bisect_left(frames, keyframes[k]) if k < len(keyframes) else i
    return tuple(frames[start : end + 1])
