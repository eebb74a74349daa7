"""The generated drawings' finished frames (keyframes, evaluation truth) are made by construction: trace
lines in their role's colour, main lines in ink over their own side's fill, never through colorize."""

from __future__ import annotations

import numpy as np
import pytest
from synth import PALETTE, finished, make_frame, make_overlap_frame, transparent_background

BLUE = (30, 60, 255)  # the generator's blue pencil
LIGHT_SHADOW = {5: 6, 4: 9}  # body -> body shadow, hair -> hair shadow (the blue line's role: shadow)


@pytest.fixture(scope="module")
def frame():
    return make_frame(90, 160, shift=(7.0, 3.0), angle=4.0, dots=6)


def _color_class(rgb: np.ndarray) -> np.ndarray:
    """The PALETTE class of each N×3 colour (-1: none)."""
    eq = (rgb[:, None, :] == PALETTE[None]).all(-1)
    return np.where(eq.any(1), eq.argmax(1), -1)


def test_finished_never_runs_colorize(frame, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the truth went through the code under test")

    import colorize.regions.render as render_mod
    import colorize.regions.segment as segment_mod

    monkeypatch.setattr(render_mod, "render", boom)
    monkeypatch.setattr(segment_mod, "segment", boom)
    assert finished(frame).shape == (90, 160, 3)


def test_trace_lines_take_their_roles_colour_not_the_rasterisers_shape(frame):
    truth = finished(frame)
    core = (frame.lineart[..., :3] == BLUE).all(-1)  # pixels drawn wholly in blue pencil
    assert core.sum() > 50
    got = _color_class(truth[core])
    assert set(got) <= {6, 9} and {6, 9} <= set(got)  # every one in a shadow colour, both pairs present
    # Where the rasteriser put the light shape under the line, the truth still paints the pair's shadow.
    classes = _shape_classes(frame)[core]
    light = np.isin(classes, list(LIGHT_SHADOW))
    assert light.sum() > 10
    assert all(got[i] == LIGHT_SHADOW[c] for i, c in zip(np.flatnonzero(light), classes[light], strict=True))


def _shape_classes(frame) -> np.ndarray:
    """The class the rasteriser put under each pixel: its shape's own colour (read off the line)."""
    own = frame.paint == frame.regions
    lookup = np.zeros(int(frame.regions.max()) + 1, np.int64)
    lookup[frame.regions[own]] = _color_class(frame.color[own])
    return lookup[frame.regions]


def test_main_lines_are_ink_over_their_own_sides_fill(frame):
    truth = finished(frame).astype(int)
    paper = frame.lineart[..., :3].min(-1) == 255
    assert np.array_equal(truth[paper], frame.color[paper])  # off the lines: the shape's colour
    solid = (frame.lineart[..., :3] == 0).all(-1)
    assert solid.sum() > 100 and (truth[solid] == 0).all()  # wholly covered: ink
    # A rim half covered by a black line: half the fill of the shape on its uncovered side.
    rim = (frame.lineart[..., :3] == 128).all(-1) & ~frame.unscored  # half covered: ink 127
    assert rim.sum() > 100
    side = frame.color[rim].astype(int)
    assert (np.abs(truth[rim] - side * 128 / 255) <= 0.5).all()
    assert not (side == 255).all(-1).any()  # the fill of a shape, never paper


def test_unscored_pixels_are_the_blends_only_and_few(frame):
    touched = frame.lineart[..., :3].min(-1) < 255
    assert frame.unscored.any() and not (frame.unscored & ~touched).any()
    assert frame.unscored.sum() < 0.05 * touched.sum()
    # Each is a blend: a blue rim over the light shape (two paints), or black and blue pencil both.
    rgb = frame.lineart[frame.unscored][:, :3].astype(int)
    assert (rgb[:, 2] - rgb[:, 0] > 20).all()  # every one has blue pencil in it


def test_transparent_paint_keeps_the_lines_coverage_as_alpha():
    f = make_overlap_frame(60, 100, 0.3)
    truth = finished(f, transparent_background(f.color))
    bg_rim = (f.color == PALETTE[0]).all(-1) & (f.ink > 0) & (f.ink < 1)
    assert bg_rim.any()
    assert np.array_equal(truth[bg_rim, 3], np.round(f.ink[bg_rim] * 255).astype(np.uint8))
    assert (truth[bg_rim, :3] == 0).all()  # black ink, straight alpha
