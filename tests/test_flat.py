"""FlatEngine end to end on generated shots: keyframe fill, propagation, determinism, fallbacks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from synth import (
    PALETTE,
    alpha_lines,
    deep_color,
    finished,
    make_frame,
    make_overlap_frame,
    shaded,
    shading,
    transparent_background,
)

from colorize import images
from colorize.engines.base import Character, FrameInput, ShotContext
from colorize.engines.flat import FlatEngine, depends_on
from colorize.events import Events
from colorize.regions.segment import segment
from colorize.runner import run_shot
from colorize.settings import FlatSettings, Settings
from colorize.shot import plan_shot
from colorize.validate import validate_plan

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


def test_each_frame_says_its_own_engine_time(frames):
    results = _run(frames, (0,), Settings(), range(3), batch=3)
    assert all(r.seconds is not None and r.seconds > 0 for r in results)


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
    # The palette's colors inside the mask are guesses (flagged for QA); the plate's, under a uniform
    # plate, are evidence (not flagged).
    assert 0 < res.info["low_confidence"] < res.info["sources"]["reference"]


def test_a_reference_that_paints_the_drawing_colors_it_by_position(frames):
    # No keyframe; the character's reference is the finished frame of drawing 0 (a colour key of the cut),
    # its background transparent. Frames 0-2 (drawing 0 moved and turned) take its colors region by region
    # and its transparency; a model sheet (another drawing, the same size) stays a palette guess.
    cel = finished(frames[0], transparent_background(frames[0].color))
    char = Character("hero", images.over_white(cel), False, None, cel[..., 3].copy())
    results = _run(frames, (), Settings(), [0, 1, 2], characters=(char,))
    for f, res in zip((0, 1, 2), results, strict=True):
        paper = _paper(frames[f])
        truth = transparent_background(frames[f].color)[paper]
        got = res.image[paper]
        same = (got[:, 3] == truth[:, 3]) & ((got[:, :3] == truth[:, :3]).all(axis=-1) | (truth[:, 3] == 0))
        right = same.mean()
        assert right > 0.97, f"frame {f}: {right:.1%} of the paper painted as the reference paints it"
        assert res.image.shape[2] == 4
        # Evidence, not guesses: only enclosures of a few pixels (too few to tell) are flagged.
        assert res.info["low_confidence"] <= 0.3 * res.info["regions"]
    sheet = Character(
        "hero", np.ascontiguousarray(finished(frames[0])[:, ::-1]), False
    )  # facing the other way
    (res,) = _run(frames, (), Settings(), [1], characters=(sheet,))
    assert res.info["sources"]["reference"] == res.info["regions"]
    fs = Settings().flat  # every guess flagged (but specks, under min_region px)
    seg = segment(frames[1].lineart, fs.gap_close, fs.min_region, fs.line_threshold, fs.close_breaks)
    assert res.info["low_confidence"] == int((seg.areas[1:] >= fs.min_region).sum())


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


# -- reused drawings, large motion, painted keyframes, alpha, spans ---------------------------------------


def _shot(
    lines: list[np.ndarray], keys: dict[int, np.ndarray], settings: Settings, which=None, batch=3, qa=False
):
    """Run the engine over an in-memory shot (frames 0..n-1) with RGBA keyframes `keys`."""
    ctx = ShotContext(
        frames=tuple(range(len(lines))),
        keyframes=tuple(sorted(keys)),
        size=lines[0].shape[:2],
        characters=(),
        background=None,
        settings=settings,
        load_lineart=lambda f: lines[f],
        load_keyframe=lambda f: keys[f],
        load_masks=lambda f: {},
        qa=qa,
    )
    engine = FlatEngine(settings)
    engine.prepare(ctx)
    which = list(range(len(lines))) if which is None else which
    inputs = [FrameInput(f, lines[f], {}, keys.get(f)) for f in which]
    return [r for i in range(0, len(inputs), batch) for r in engine.colorize(inputs[i : i + batch])]


def _opaque(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


SH, SW = 90, 160


def test_repeated_drawings_are_byte_identical_and_never_drift():
    # Four drawings ping-pong (0 1 2 3 2 1 0 1 ...) from one keyframe, as in a laughing loop.
    drawings = [make_frame(SH, SW, shift=(3.0 * i, 1.0 * i), angle=1.5 * i, dots=4) for i in range(4)]
    order = [0, 1, 2, 3, 2, 1] * 3
    lines = [drawings[d].lineart for d in order]
    results = _shot(lines, {0: _opaque(finished(drawings[0]))}, Settings())
    first: dict[int, np.ndarray] = {}
    for d, res in zip(order, results, strict=True):
        if d in first:
            assert np.array_equal(res.image, first[d]), res.frame
            assert res.info["unresolved"] == 0
        else:
            first[d] = res.image
    assert results[6].info["sources"] == {"keyframe": results[0].info["regions"]}  # drawing 0 again
    assert "reused" in results[4].info["sources"]
    chunk = _shot(lines, {0: _opaque(finished(drawings[0]))}, Settings(), which=list(range(9, 14)), batch=2)
    for res in chunk:
        assert np.array_equal(res.image, results[res.frame].image), res.frame


def test_near_repeat_reuses_the_most_similar_drawing():
    # A cycle drawn again 1 px off: frames of the second cycle come from the first cycle's drawings.
    poses = [(0.0, 0.0, 0.0), (8.0, 2.0, 3.0), (16.0, 0.0, 6.0)]
    lines = [make_frame(SH, SW, shift=(x, y), angle=a, dots=4).lineart for x, y, a in poses]
    lines += [make_frame(SH, SW, shift=(x + 1, y), angle=a, dots=4).lineart for x, y, a in poses[1:]]
    key = _opaque(finished(make_frame(SH, SW, dots=4)))
    results = _shot(lines, {0: key}, Settings())
    assert "reused" in results[3].info["sources"] and "reused" in results[4].info["sources"]
    for res, (x, y, a) in zip(results[3:], poses[1:], strict=True):
        truth = make_frame(SH, SW, shift=(x + 1, y), angle=a, dots=4)
        assert _accuracy(res, truth) > 0.99


def test_large_move_and_rotation():
    # 10 % of the width and 4 degrees between two frames.
    a, b = make_frame(H, W, dots=6), make_frame(H, W, shift=(0.1 * W, 0.03 * H), angle=4.0, dots=6)
    _, res = _shot([a.lineart, b.lineart], {0: _opaque(finished(a))}, Settings())
    assert _accuracy(res, b) > 0.99 and res.info["unresolved"] == 0


def test_keyframe_frame_keeps_the_painted_keyframe_and_texture_follows():
    a = make_frame(SH, SW, dots=4)
    b = make_frame(SH, SW, shift=(6.0, 2.0), angle=2.0, dots=4)
    key = _opaque(finished(a, shaded(a.color, shading(SH, SW))))
    truth_b = finished(b, shaded(b.color, shading(SH, SW, (6.0, 2.0), 2.0)))
    paper = _paper(a)
    for fill in ("auto", "texture"):
        r0, r1 = _shot([a.lineart, b.lineart], {0: key}, Settings(flat=FlatSettings(fill=fill)))
        assert np.array_equal(r0.image[paper], key[..., :3][paper])  # pixel-exact off the lines
        err = np.abs(r1.image.astype(int) - truth_b)[_paper(b)].mean()
        assert err < 3.0, (fill, err)
    f0, f1 = _shot([a.lineart, b.lineart], {0: key}, Settings(flat=FlatSettings(fill="flat")))
    labels = segment(a.lineart).labels
    for region in range(1, labels.max() + 1):  # one color per region
        assert len(np.unique(f0.image[paper & (labels == region)], axis=0)) <= 1
    assert np.abs(f1.image.astype(int) - truth_b)[_paper(b)].mean() > 4.0


def test_transparent_cels_stay_transparent():
    a = make_frame(SH, SW, dots=4)
    b = make_frame(SH, SW, shift=(5.0, 1.0), angle=1.0, dots=4)
    la, lb = alpha_lines(a.lineart), alpha_lines(b.lineart)
    key = finished(a, transparent_background(a.color))
    assert key.shape[2] == 4 and (key[..., 3] == 0).any()
    r0, r1 = _shot([la, lb], {0: key}, Settings())
    assert r1.image.shape == (SH, SW, 4)
    background = (b.color == PALETTE[0]).all(axis=-1) & (lb[..., 3] == 0)
    assert (r1.image[background, 3] == 0).mean() > 0.99
    assert (r1.image[lb[..., 3] == 255, 3] == 255).all()  # lines keep their alpha
    assert (r1.image[~background & (lb[..., 3] == 0), 3] == 255).mean() > 0.99
    # What the runner writes for output_alpha off / output_depth 16 (images.output_array, every engine).
    off = images.output_array(r1.image, "off", 8)
    assert off.shape == (SH, SW, 3) and (off[background] == 255).all()
    deep = images.output_array(r1.image, "auto", 16)
    assert deep.dtype == np.uint16 and np.array_equal(deep, r1.image.astype(np.uint16) * 257)


def test_a_frame_depends_only_on_its_span():
    # Keyframes 0 and 4: frame 2 must not change when frames outside 0..4 change, whatever the chunk.
    frames = [make_frame(SH, SW, shift=(2.0 * i, 1.0 * i), angle=0.5 * i, dots=4) for i in range(8)]
    lines = [f.lineart for f in frames]
    keys = {0: _opaque(finished(frames[0])), 4: _opaque(finished(frames[4]))}
    whole = _shot(lines, keys, Settings())
    other = list(lines)
    other[6] = make_frame(SH, SW, shift=(-9.0, 4.0), angle=-5.0, dots=9).lineart
    for which in ([2], [1, 2, 3], list(range(8))):
        res = next(r for r in _shot(other, keys, Settings(), which=which) if r.frame == 2)
        assert np.array_equal(res.image, whole[2].image), which
    # After the last keyframe only the forward chain counts: frame 5 ignores frame 6 (depends_on: 4..5).
    assert np.array_equal(_shot(other, keys, Settings(), which=[5])[0].image, whole[5].image)
    assert depends_on(5, range(8), [0, 4], Settings()) == (4, 5)


def test_qa_overlay_marks_unresolved_regions():
    frames = _shot_frames(2)
    settings = Settings(flat=FlatSettings(unresolved_color="#00ff00"))
    (res,) = _shot([f.lineart for f in frames], {}, settings, which=[1], qa=True)
    assert res.info["unresolved"] == res.info["regions"]
    qa = res.qa
    assert qa is not None and qa.shape[1] == W and qa.shape[0] > H  # the frame and a legend band
    paper = _paper(frames[1])
    assert (qa[:H][paper] == (255, 0, 255)).all(axis=-1).mean() > 0.95  # unresolved: solid magenta


# -- 16-bit sources, 16-bit output -------------------------------------------------------------------------


def _deep_key(frame) -> np.ndarray:
    """A 16-bit RGBA keyframe of `frame`: its colors differ from 8-bit ones (and from each other, shape by
    shape) in the low byte; lines composited at 16 bits."""
    key = finished(frame, deep_color(frame))
    return np.dstack([key, np.full(key.shape[:2], 65535, np.uint16)])


@pytest.mark.parametrize("fill", ["flat", "auto", "texture"])
def test_16_bit_keyframe_colors_come_out_exactly(fill):
    a = make_frame(SH, SW, dots=4)
    b = make_frame(SH, SW, shift=(6.0, 2.0), angle=2.0, dots=4)
    key16 = _deep_key(a)
    settings = Settings(flat=FlatSettings(fill=fill))
    k16, p16 = _shot([a.lineart, b.lineart], {0: key16}, settings)
    k8, p8 = _shot([a.lineart, b.lineart], {0: images.to_uint8(key16)}, settings)
    assert k16.image.dtype == p16.image.dtype == np.uint16
    pa, pb = _paper(a), _paper(b)
    # The same decisions as from the keyframe rounded to 8 bits ...
    assert np.array_equal(images.to_uint8(k16.image)[pa], k8.image[pa])
    assert np.array_equal(images.to_uint8(p16.image)[pb], p8.image[pb])
    # ... in the keyframe's own 16-bit colors: its frame pixel-exact off the lines (flat fill: wherever
    # it is at 8 bits), and each region of the next frame in the exact color of the shape it came from
    # (stripes of one 8-bit color keep their own low bytes).
    exact = (k16.image[pa] == key16[pa][:, :3]).all(-1)
    exact8 = (k8.image[pa] == images.to_uint8(key16)[pa][:, :3]).all(-1)
    assert exact.all() if fill != "flat" else np.array_equal(exact, exact8)
    right8 = (p8.image[pb] == b.color[pb]).all(-1)
    assert right8.mean() > 0.99
    assert np.array_equal((p16.image[pb] == deep_color(b)[pb]).all(-1), right8)


@pytest.mark.parametrize("in_alpha", [False, True])
def test_16_bit_lines_are_composited_at_16_bits(in_alpha):
    # A soft line whose strength varies in the low byte, over a 16-bit color: the exact "over", to within
    # rounding; at 8 bits the same line is off by up to a whole 8-bit step and more.
    h, w = 40, 64
    ramp = np.array([3000, 20000, 50000, 65535, 50000, 20000, 3001], np.int64)
    ink = np.zeros((h, w), np.int64)
    ink[17:24] = np.minimum(ramp[:, None] + np.arange(w) % 7 * 37, 65535)
    color = np.array([0x1234, 0x56F0, 0x9ABC])
    key = np.dstack([np.broadcast_to(color, (h, w, 3)), np.full((h, w), 65535)]).astype(np.uint16)
    if in_alpha:  # the line's color in RGB, its strength in alpha
        line = np.array([0x2000, 0x1111, 0x0A0A])
        lineart = np.dstack([np.broadcast_to(line, (h, w, 3)), ink]).astype(np.uint16)
    else:  # black on white paper
        line = np.zeros(3)
        lineart = np.dstack([65535 - ink] * 3 + [np.full((h, w), 65535)]).astype(np.uint16)
    strength = ink[..., None] / 65535
    expected = line * strength + color * (1 - strength)
    (deep,) = _shot([lineart], {0: key}, Settings())
    (flat,) = _shot([images.to_uint8(lineart)], {0: images.to_uint8(key)}, Settings())
    assert deep.image.dtype == np.uint16
    assert np.abs(deep.image[..., :3] - expected).max() <= 0.51
    assert np.abs(images.to_uint16(flat.image)[..., :3] - expected).max() > 100


MANIFEST16 = """version: 1
lineart: line/s.####.png
keyframes: keys/s.####.png
output: out/s.####.png
engine: flat
"""


def _deep_shot(root, line16: bool, key16: bool) -> list:
    """A 4-frame shot on disk, keyframe at frame 0 (its 16-bit version, or that rounded to 8 bits); the
    line art as 8-bit PNGs or the same values at 16 bits."""
    frames = [make_frame(SH, SW, shift=(3.0 * i, 1.0 * i), angle=0.8 * i, dots=4) for i in range(4)]
    (root / "line").mkdir(parents=True)
    (root / "keys").mkdir()
    for i, frame in enumerate(frames):
        lineart = images.to_uint16(frame.lineart) if line16 else frame.lineart
        images.write_image(root / "line" / f"s.{i:04d}.png", lineart)
    key = _deep_key(frames[0])
    images.write_image(root / "keys" / "s.0000.png", key if key16 else images.to_uint8(key))
    (root / "refs.yaml").write_text(MANIFEST16)
    return frames


def _run_deep(root, out: str, depth: int, frames: str | None = None) -> dict:
    plan = plan_shot(root / "refs.yaml", frames=frames, out_dir=root / out, overrides={"output_depth": depth})
    size = validate_plan(plan, deep=False)
    summary = run_shot(plan, lambda: FlatEngine(plan.settings), Events(json_stream=io.StringIO()), size=size)
    assert summary.exit_code == 0
    return {p.name: p.read_bytes() for p in sorted((root / out).iterdir())}


def _pixels(root, out: str) -> list[np.ndarray]:
    """The frames written (opaque: RGB), as read back at their depth."""
    rgba = [images.read_image(root / out / f"s.{i:04d}.png") for i in range(4)]
    assert not any(images.has_transparency(x) for x in rgba)
    return [x[..., :3] for x in rgba]


def test_16_bit_shot_through_the_runner(tmp_path):
    # 8-bit line art, a 16-bit keyframe: 16-bit files out whose colors are the keyframe's, to the bit.
    frames = _deep_shot(tmp_path / "deep", line16=False, key16=True)
    whole = _run_deep(tmp_path / "deep", "whole", 16)
    chunks = _run_deep(tmp_path / "deep", "chunks", 16, "0-1") | _run_deep(
        tmp_path / "deep", "chunks", 16, "2-3"
    )
    assert whole == chunks  # chunked runs are whole runs, byte for byte
    deep = _pixels(tmp_path / "deep", "whole")
    key16 = _deep_key(frames[0])
    assert all(d.dtype == np.uint16 for d in deep)
    assert np.array_equal(deep[0][_paper(frames[0])], key16[_paper(frames[0])][:, :3])
    # output_depth 8 reads the same files at 8 bits: what today's 8-bit keyframe gives, to the bit.
    _run_deep(tmp_path / "deep", "eight", 8)
    _deep_shot(tmp_path / "rounded", line16=False, key16=False)
    _run_deep(tmp_path / "rounded", "eight", 8)
    eight = _pixels(tmp_path / "deep", "eight")
    assert all(
        np.array_equal(e, r) for e, r in zip(eight, _pixels(tmp_path / "rounded", "eight"), strict=True)
    )
    for frame, d, e in zip(frames[1:], deep[1:], eight[1:], strict=True):
        paper = _paper(frame)
        assert np.array_equal(images.to_uint8(d)[paper], e[paper])
        right8 = (e[paper] == frame.color[paper]).all(-1)
        assert right8.mean() > 0.98
        assert np.array_equal((d[paper] == deep_color(frame)[paper]).all(-1), right8)


def test_8_bit_keyframe_at_16_bits_is_the_8_bit_result_widened(tmp_path):
    # All-8-bit inputs: exactly the 8-bit output × 257. 16-bit line art (the same values): the same colors
    # off the lines, lines composited at 16 bits (within one 8-bit step).
    _deep_shot(tmp_path / "a", line16=False, key16=False)
    _run_deep(tmp_path / "a", "eight", 8)
    _run_deep(tmp_path / "a", "deep", 16)
    eight, deep = _pixels(tmp_path / "a", "eight"), _pixels(tmp_path / "a", "deep")
    assert all(np.array_equal(d, images.to_uint16(e)) for d, e in zip(deep, eight, strict=True))
    frames = _deep_shot(tmp_path / "b", line16=True, key16=False)
    _run_deep(tmp_path / "b", "deep", 16)
    for frame, d, e in zip(frames, _pixels(tmp_path / "b", "deep"), eight, strict=True):
        paper = _paper(frame)
        assert d.dtype == np.uint16 and np.array_equal(d[paper], images.to_uint16(e)[paper])
        assert np.abs(d.astype(int) - images.to_uint16(e)).max() <= 257


def test_the_flow_cache_keeps_the_latest_correspondences_within_its_bytes():
    """Correspondences are kept by drawing pair until their flows pass the byte bound; the least recently
    used go first, a pair asked for again is kept, and the newest stays even when it alone is over."""
    from colorize.engines.flat_state import FlowCache
    from colorize.flow import Correspondence

    def found(n: int) -> tuple:
        return Correspondence(np.zeros((n, 10, 2), np.float32), (n, 10)), None  # n * 80 bytes

    cache = FlowCache(max_bytes=250)
    a, b, c = (b"a", b"0"), (b"b", b"0"), (b"c", b"0")
    cache.put(a, found(1))
    cache.put(b, found(1))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, found(2))  # 80 + 80 + 160 > 250: the least recent (b) goes
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    cache.put(b, found(4))  # 320 bytes alone: everything else goes, it stays
    assert cache.get(b) is not None and cache.get(a) is None and cache.get(c) is None
    cache.clear()
    assert cache.get(b) is None
