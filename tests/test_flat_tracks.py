"""Part tracks in the flat engine, with truth by construction: a character moves down from the sky over a
fence; a gap in its outline joins its shirt to the sky for a few frames (the shirt is painted sky there:
most of that region is sky). Once the outline closes again the shirt must not stay a background colour,
though the keyframe shows sky and fence where the shirt now is (it moved far): the frames before the gap
say what the part is. A loop that opens in the shirt (sky seen through it) stays sky."""

from __future__ import annotations

import cv2
import numpy as np
from synth import painted_at, run_flat

H, W = 200, 240
SKY, FENCE, GROUND, INK = (110, 150, 230), (70, 50, 40), (90, 150, 60), (20, 20, 20)
SHIRT, FACE, POCKET = (200, 40, 50), (245, 215, 190), (120, 20, 30)
BACKGROUND = {SKY, FENCE, GROUND}
STEP = 15  # px the character moves down a frame (far: the keyframe shows sky, then fence, where it is)


def _scene(
    h: int, rail: tuple[int, int], shirt: tuple[int, int, int, int], head: tuple[tuple[int, int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """(line mask, truth RGB) of `h` rows: sky, a fence rail from `rail[0]` to `rail[1]`, ground; a face
    (`head`: center, radius) over a shirt (`shirt`: x0, y0, x1, y1) in front, hiding the rail's lines."""
    color = np.empty((h, W, 3), np.uint8)
    color[: rail[0]], color[rail[0] : rail[1]], color[rail[1] :] = SKY, FENCE, GROUND
    lines = np.zeros((h, W), np.uint8)
    for y in rail:
        cv2.line(lines, (0, y), (W - 1, y), 255, 2)
    body = np.zeros((h, W), np.uint8)
    cv2.rectangle(body, shirt[:2], shirt[2:], 255, -1)
    cv2.circle(body, *head, 255, -1)
    lines[body > 0] = 0
    cv2.rectangle(color, shirt[:2], shirt[2:], SHIRT, -1)
    cv2.rectangle(lines, shirt[:2], shirt[2:], 255, 2)
    cv2.circle(color, *head, FACE, -1)
    cv2.circle(lines, *head, 255, 2)
    return lines, color


def _finished(lines: np.ndarray, color: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(line art RGBA, truth RGB) with the lines inked over both."""
    color = np.where(lines[..., None] > 0, np.array(INK, np.uint8), color)
    line_rgb = np.where(lines[..., None] > 0, np.array(INK, np.uint8), np.uint8(255))
    return np.dstack([line_rgb, np.full(lines.shape, 255, np.uint8)]), np.ascontiguousarray(color)


def _frame(dy: int, gap: bool = False, loop: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(line art RGBA, truth RGB): sky, a fence rail across the frame, ground; a face over a shirt with a
    pocket, `dy` px down, in front. `gap`: the top of the shirt's outline is missing (the shirt joins the
    sky); `loop`: a hole in the shirt shows the sky."""
    shirt = (70, 30 + dy, 160, 90 + dy)
    lines, color = _scene(H, (110, 140), shirt, ((115, 15 + dy), 14))
    pocket = (130, 60 + dy, 150, 80 + dy)
    cv2.rectangle(color, pocket[:2], pocket[2:], POCKET, -1)
    cv2.rectangle(lines, pocket[:2], pocket[2:], 255, 2)
    if loop:
        hole = (85, 55 + dy, 110, 80 + dy)
        cv2.rectangle(color, hole[:2], hole[2:], SKY, -1)
        cv2.rectangle(lines, hole[:2], hole[2:], 255, 2)
    if gap:
        lines[shirt[1] - 2 : shirt[1] + 3, 75:98] = 0  # the top of the outline is missing, left of the head
    return _finished(lines, color)


def test_a_part_joined_to_the_sky_for_a_few_frames_keeps_a_character_color_after_moving_far():
    gaps = (2, 3, 4)
    frames = [_frame(STEP * i, gap=i in gaps) for i in range(8)]
    results = run_flat(frames)
    assert painted_at(results[1], frames[1][0], (80, 40 + STEP)) == SHIRT  # before the gap: tracked
    for f in range(5, 8):
        line = frames[f][0]
        shirt = painted_at(results[f], line, (80, 40 + STEP * f))
        assert shirt not in BACKGROUND, f"frame {f}: the shirt is painted {shirt}, a background colour"
        assert shirt == SHIRT, f"frame {f}: the shirt is painted {shirt}"
        assert painted_at(results[f], line, (140, 70 + STEP * f)) == POCKET
        assert painted_at(results[f], line, (20, 20)) == SKY
        assert painted_at(results[f], line, (20, 125)) == FENCE
    assert results[5].info["low_confidence"] >= 1  # the shirt's colour is a second opinion: marked


def test_sky_seen_through_a_loop_stays_sky_after_moving_over_the_fence():
    # The loop is in the keyframe (sky through it); the character moves down until the keyframe shows the
    # fence where the loop now is: the loop is still the sky it was (its track says so).
    frames = [_frame(STEP * i, loop=True) for i in range(7)]
    results = run_flat(frames)
    for f in range(1, 7):
        line = frames[f][0]
        assert painted_at(results[f], line, (97, 67 + STEP * f)) == SKY, f"frame {f}"
        assert painted_at(results[f], line, (80, 40 + STEP * f)) == SHIRT, f"frame {f}"


def _rising(top: int, gap: bool) -> tuple[np.ndarray, np.ndarray]:
    """(line art RGBA, truth RGB): sky, a tall fence rail across the frame, ground; a face over a shirt
    whose top is at `top`, in front. `gap`: the bottom of the shirt's outline is missing (the shirt joins
    the fence: it is painted the fence there, most of that region is fence)."""
    shirt = (70, top, 160, top + 60)
    lines, color = _scene(220, (120, 200), shirt, ((115, top - 15), 14))
    if gap:
        lines[shirt[3] - 2 : shirt[3] + 3, 80:150] = 0
    return _finished(lines, color)


def test_a_part_joined_to_the_fence_keeps_a_character_color_where_the_keyframe_shows_sky():
    # The character rises 20 px a frame from the fence; in frames 1 and 2 the shirt's outline is open at
    # the bottom, onto the fence (painted the fence there). From frame 3 on it is closed, and where the
    # shirt now is the keyframe shows sky: the fence's colour there is a part that came from the fence,
    # not the fence seen through a hole.
    frames = [_rising(105 - 20 * i, gap=i in (1, 2)) for i in range(5)]
    results = run_flat(frames)
    for f in (3, 4):
        line = frames[f][0]
        shirt = painted_at(results[f], line, (80, 115 - 20 * f))
        assert shirt not in BACKGROUND, f"frame {f}: the shirt is painted {shirt}, a background colour"
        assert results[f].info["low_confidence"] >= 1  # a second opinion: marked for a painter
        assert painted_at(results[f], line, (20, 20)) == SKY
        assert painted_at(results[f], line, (20, 150)) == FENCE


def test_the_same_inputs_make_the_same_bytes():
    frames = [_frame(STEP * i, gap=i in (2, 3)) for i in range(6)]
    first, again = run_flat(frames), run_flat(frames)
    assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(first, again, strict=True))
