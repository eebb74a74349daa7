"""Region kinds (`colorize.regions.kinds`) with truth by construction: a character part joined to the sky
for one frame (a gap in its outline) must not stay sky-colored afterwards, and sky seen through a loop
of a character stays sky."""

from __future__ import annotations

import cv2
import numpy as np
from synth import painted_at, run_flat

from colorize.regions.kinds import background_only, open_regions
from colorize.regions.palette import dominant_colors
from colorize.regions.segment import segment

H, W = 160, 240
SKY, LIGHT_SKY, GROUND, INK = (110, 150, 230), (150, 185, 240), (90, 150, 60), (20, 20, 20)
SHIRT, FACE = (200, 40, 50), (245, 215, 190)


def _frame(dy: int, gap: bool = False, loop: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(line art RGBA, truth RGB): sky over ground (a horizon line), a face over a shirt, `dy` px down;
    `gap`: a break in the shirt's outline (the shirt joins the sky); `loop`: a hole in the shirt through
    which the sky shows (a lighter tone of it, as the gradient has near the horizon)."""
    color = np.empty((H, W, 3), np.uint8)
    color[:110], color[110:] = SKY, GROUND
    color[80:110] = LIGHT_SKY  # the sky's gradient: lighter near the horizon
    lines = np.zeros((H, W), np.uint8)
    cv2.line(lines, (0, 110), (W - 1, 110), 255, 2)
    shirt = (80, 40 + dy, 150, 100 + dy)
    cv2.rectangle(color, shirt[:2], shirt[2:], SHIRT, -1)
    cv2.rectangle(lines, shirt[:2], shirt[2:], 255, 2)
    cv2.circle(color, (115, 25 + dy), 14, FACE, -1)
    cv2.circle(lines, (115, 25 + dy), 14, 255, 2)
    if loop:
        cv2.rectangle(color, (100, 60 + dy), (130, 80 + dy), LIGHT_SKY, -1)
        cv2.rectangle(lines, (100, 60 + dy), (130, 80 + dy), 255, 2)
    if gap:
        lines[shirt[1] - 2 : shirt[1] + 3, 95:130] = 0  # the top of the outline is missing
    color = np.where(lines[..., None] > 0, np.array(INK, np.uint8), color)
    line_rgb = np.where(lines[..., None] > 0, np.array(INK, np.uint8), np.uint8(255))
    return np.dstack([line_rgb, np.full((H, W), 255, np.uint8)]), np.ascontiguousarray(color)


def test_background_only_colors_are_the_open_regions_and_the_sky_seen_through_a_loop():
    line, color = _frame(0, loop=True)
    seg = segment(line, 2, 8, 0.4)
    colors, _ = dominant_colors(seg.labels, seg.count, color, valid=(seg.labels > 0) & (seg.ink == 0))
    assert open_regions(seg).sum() == 2  # sky and ground: three frame edges each
    packed = {tuple(int(v) for v in (c >> 16 & 255, c >> 8 & 255, c & 255)) for c in colors.tolist()}
    assert {SHIRT, FACE, LIGHT_SKY, SKY, GROUND} <= packed
    only = {(c >> 16 & 255, c >> 8 & 255, c & 255) for c in background_only(seg, colors, color).tolist()}
    # The loop is enclosed, but its pixels are the sky's (its lighter tone, which the open sky has too).
    assert only == {SKY, GROUND, LIGHT_SKY}


def test_a_part_joined_to_the_sky_for_one_frame_takes_its_own_color_back():
    # The shirt moves down 3 px a frame; in frame 2 a gap in its outline joins it to the sky (it is
    # painted sky there: most of that region is sky, joins left uncut). From frame 3 on it is closed again.
    frames = [_frame(3 * i, gap=i == 2) for i in range(6)]
    results = run_flat(frames, cut_joins=False)
    for f in (3, 4, 5):
        line = frames[f][0]
        shirt = painted_at(results[f], line, (90, 70 + 3 * f))
        assert shirt == SHIRT, f"frame {f}: the shirt is painted {shirt}"
        assert results[f].info["low_confidence"] >= 1  # the shirt's color is a second opinion: marked
        assert painted_at(results[f], line, (20, 20)) == SKY


def test_a_part_joined_to_the_sky_is_cut_out_of_it_where_the_drawing_before_had_it():
    # The same gap, joins cut (the default): in frame 2 the region that takes in the shirt and the sky
    # whole is cut where they were, so the shirt keeps its color there and after, carried confidently.
    # Measured pixel by pixel against the truth (the line art's own regions join them in frame 2).
    frames = [_frame(3 * i, gap=i == 2) for i in range(6)]
    results = run_flat(frames)
    for f in range(1, 6):
        image, truth = results[f].image[..., :3], frames[f][1]
        off = frames[f][0][..., 0] == 255  # off the lines, above the horizon (the shirt's bottom crosses
        off[108:] = False  # it in frame 5: a new sliver below it, unresolved either way)
        for name, color in (("shirt", SHIRT), ("face", FACE), ("sky", SKY)):
            where = off & np.all(truth == color, axis=-1)
            right = np.all(image[where] == color, axis=-1).mean()
            assert right > 0.97, f"frame {f}: {right:.0%} of the {name} painted right"
        assert results[f].info["low_confidence"] == 0  # carried region to region: nothing to look at
    assert results[2].info["regions"] == results[1].info["regions"]  # sky, shirt, face, ground again
    # A chunk that starts after the cut paints the same bytes (the cut is judged from the keyframe on).
    for whole, chunk in zip(results[3:], run_flat(frames, only=[3, 4, 5]), strict=True):
        assert np.array_equal(whole.image, chunk.image)


def test_sky_seen_through_a_loop_stays_sky():
    frames = [_frame(3 * i, loop=True) for i in range(4)]
    results = run_flat(frames)
    for f in range(1, 4):
        assert painted_at(results[f], frames[f][0], (115, 70 + 3 * f)) == LIGHT_SKY
        assert painted_at(results[f], frames[f][0], (90, 50 + 3 * f)) == SHIRT
