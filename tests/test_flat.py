"""FlatEngine end to end on generated shots: keyframe fill, propagation, determinism, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from synth import PALETTE, make_frame, make_overlap_frame

from colorize.engines.base import Character, FrameInput, ShotContext
from colorize.engines.flat import FlatEngine
from colorize.settings import FlatSettings, Settings

H, W = 180, 320


def _shot_frames(n: int = 5) -> list:
    return [make_frame(H, W, shift=(2.0 * i, 1.0 * i), angle=0.4 * i, dots=6) for i in range(n)]


def _context(frames: list, keyframes: tuple[int, ...], settings: Settings, **kw) -> ShotContext:
    return ShotContext(
        frames=tuple(range(len(frames))),
        keyframes=keyframes,
        size=(H, W),
        characters=kw.get("characters", ()),
        background=kw.get("background"),
        settings=settings,
        load_lineart=lambda f: frames[f].lineart,
        load_keyframe=lambda f: frames[f].color,
        load_masks=lambda f: {},
    )


def _run(frames, keyframes, settings, which, batch=2, **kw):
    engine = FlatEngine(settings)
    engine.prepare(_context(frames, keyframes, settings, **kw))
    inputs = [
        FrameInput(f, frames[f].lineart, kw.get("masks", {}), frames[f].color if f in keyframes else None)
        for f in which
    ]
    out = []
    for i in range(0, len(inputs), batch):
        out += engine.colorize(inputs[i : i + batch])
    return out


def _paper(frame) -> np.ndarray:
    # Pixels well away from lines, where the fill must equal the ground truth exactly.
    return frame.lineart[..., :3].min(axis=-1) == 255


def _accuracy(result, frame) -> float:
    m = _paper(frame)
    return float((result.image[m] == frame.color[m]).all(axis=-1).mean())


@pytest.fixture(scope="module")
def frames():
    return _shot_frames()


def test_keyframe_fill_is_exact(frames):
    (res,) = _run(frames, (0,), Settings(), [0])
    assert res.info["unresolved"] == 0
    assert _accuracy(res, frames[0]) > 0.999


def test_forward_propagation(frames):
    results = _run(frames, (0,), Settings(), range(5))
    for res in results[1:]:
        assert _accuracy(res, frames[res.frame]) > 0.995, res.info
        assert res.info["unresolved"] == 0, res.info
        # Tiny pockets where anti-aliased lines meet are regions too (min_region keeps line-drawn
        # enclosures); those the flow cannot match take their neighbour's color.
        src = res.info["sources"]
        assert src.get("forward", 0) + src.get("neighbour", 0) == res.info["regions"], res.info
        assert src.get("forward", 0) >= 0.7 * res.info["regions"], res.info


def test_backward_propagation_from_later_keyframe(frames):
    results = _run(frames, (4,), Settings(), range(4))
    for res in results:
        assert _accuracy(res, frames[res.frame]) > 0.995, res.info
        assert "backward" in res.info["sources"]


def test_chunks_give_identical_bytes(frames):
    whole = _run(frames, (0, 4), Settings(), range(5), batch=3)
    parts = _run(frames, (0, 4), Settings(), [2, 3], batch=1) + _run(frames, (0, 4), Settings(), [1], batch=1)
    by_frame = {r.frame: r.image for r in whole}
    for res in parts:
        assert np.array_equal(res.image, by_frame[res.frame])


def test_unresolved_color_and_count(frames):
    settings = Settings(flat=FlatSettings(unresolved_color="#00ff00"))
    # No keyframe, no references: every region is unresolved and painted the visible color.
    (res,) = _run(frames, (), settings, [1])
    assert res.info["unresolved"] == res.info["regions"] > 0
    m = _paper(frames[1])
    assert (res.image[m] == (0, 255, 0)).all()


def test_lines_fill_and_keep(frames):
    keep = _run(frames, (0,), Settings(), [0])[0].image
    fill = _run(frames, (0,), Settings(flat=FlatSettings(lines="fill")), [0])[0].image
    black = frames[0].lineart[..., :3].max(axis=-1) == 0
    assert black.any()
    assert (keep[black] == 0).all()
    assert (fill[black].max(axis=-1) > 0).mean() > 0.95  # painted with region colors


def test_reference_palette_inside_mask(frames):
    ref = np.zeros((50, 50, 3), np.uint8)
    ref[:] = (10, 200, 30)
    mask = (frames[1].color != PALETTE[0]).any(axis=-1)  # the character: everything but the background
    char = Character(name="hero", reference=ref, has_mask=True)
    bg = np.full((H, W, 3), (90, 90, 200), np.uint8)
    (res,) = _run(frames, (), Settings(), [1], characters=(char,), background=bg, masks={"hero": mask})
    assert res.info["unresolved"] == 0
    paper = _paper(frames[1])
    assert (res.image[paper & mask] == (10, 200, 30)).all(axis=-1).mean() > 0.9
    assert (res.image[paper & ~mask] == (90, 90, 200)).all(axis=-1).mean() > 0.9


# -- character masks: colors stay with their owner ------------------------------------------------------

OH, OW, ON = 120, 200, 16


@pytest.fixture(scope="module")
def overlap():
    # "cat" (thin tail, round body) walks in front of "post" (body over two dark legs); visible masks.
    return [make_overlap_frame(OH, OW, i / (ON - 1), tail=5) for i in range(ON)]


def _run_masked(frames, which, batch=4, masks=True):
    chars = tuple(Character(n, np.full((8, 8, 3), 128, np.uint8), masks) for n in ("post", "cat"))
    ctx = ShotContext(
        frames=tuple(range(len(frames))),
        keyframes=(0,),
        size=(OH, OW),
        characters=chars,
        background=None,
        settings=Settings(),
        load_lineart=lambda f: frames[f].lineart,
        load_keyframe=lambda f: frames[f].color,
        load_masks=lambda f: frames[f].masks if masks else {},
    )
    engine = FlatEngine(Settings())
    engine.prepare(ctx)
    inputs = [
        FrameInput(
            f, frames[f].lineart, frames[f].masks if masks else {}, frames[f].color if f == 0 else None
        )
        for f in which
    ]
    return [r for i in range(0, len(inputs), batch) for r in engine.colorize(inputs[i : i + batch])]


def _packed(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]


def _foreign(res, frame) -> int:
    """Paper pixels of one character painted in a color only the other character has."""
    post, cat = _packed(PALETTE[[5, 6]]), _packed(PALETTE[[4, 7, 1]])
    paper = _paper(frame)
    img = _packed(res.image)
    return int(np.isin(img[paper & frame.masks["post"]], cat).sum()) + int(
        np.isin(img[paper & frame.masks["cat"]], post).sum()
    )


def test_masks_keep_colors_with_their_owner(overlap):
    results = _run_masked(overlap, range(ON))
    for res in results:
        frame = overlap[res.frame]
        assert _foreign(res, frame) == 0, res.frame
        front = _paper(frame) & frame.masks["cat"]
        assert (res.image[front] == frame.color[front]).all(axis=-1).mean() > 0.97, res.frame
    # The same shot without masks: the flow drags the tail onto the legs behind it (what masks prevent).
    assert sum(_foreign(r, overlap[r.frame]) for r in _run_masked(overlap, range(ON), masks=False)) > 50


def test_masked_chunks_give_identical_bytes(overlap):
    whole = {r.frame: r.image for r in _run_masked(overlap, range(ON), batch=5)}
    for res in _run_masked(overlap, range(9, 13), batch=3):
        assert np.array_equal(res.image, whole[res.frame]), res.frame
