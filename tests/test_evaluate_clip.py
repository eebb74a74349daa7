"""Metrics for clips without region maps: PSNR off the lines and the background-colour check."""

from __future__ import annotations

import math

import numpy as np
from synth import finished, make_frame

from colorize.evaluate import evaluate_case, table
from colorize.evaluate_cases import write_case
from colorize.evaluate_clip import (
    background_colors,
    background_owned,
    longest_run,
    off_lines,
    painted_background,
    quantized,
)
from colorize.metrics import psnr

SKY, RED, GREEN = (120, 160, 220), (200, 30, 30), (30, 160, 40)


def _rgba(h: int, w: int, color=(255, 255, 255)) -> np.ndarray:
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3], img[..., 3] = color, 255
    return img


def test_off_lines_drops_the_lines_dilated_by_one_pixel():
    line = _rgba(9, 9)
    line[4, 4, :3] = 0  # one line pixel: it and its 8 neighbours are on the lines
    line[0, 8, :3] = 200  # faint ink counts too
    off = off_lines(line)
    assert not off[3:6, 3:6].any() and not off[0:2, 7:9].any()
    assert off.sum() == 81 - 9 - 4


def test_psnr_where_counts_only_the_given_pixels():
    a, b = _rgba(4, 4), _rgba(4, 4)
    b[0, :, :3] = 0  # differs on row 0 only
    b[1:, :, :3] = 255 - 51  # and by 51 on the other rows
    where = np.zeros((4, 4), bool)
    assert math.isnan(psnr(a, b, where))
    where[1:] = True
    assert abs(psnr(a, b, where) - 20 * math.log10(5)) < 1e-9  # MSE 51² -> 20·log10(255/51)
    assert psnr(a, a, where) == math.inf


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """20×20 keyframe: sky over the left 14 columns (open to three frame edges), a red character in a
    closed box, a small sky-coloured patch inside the character, a green strip on the right edge only."""
    key = _rgba(20, 20, SKY)
    ids = np.ones((20, 20), np.int64)  # 1: sky
    ids[5:15, 5:12], key[5:15, 5:12, :3] = 2, RED  # the character
    ids[6:8, 6:8], key[6:8, 6:8, :3] = 3, SKY  # a patch of the character painted like the sky
    ids[:, 16:], key[:, 16:, :3] = 4, GREEN  # a strip open to 3 edges, 20 % of the frame
    ids[:, 15] = 0  # a line column between the sky and the strip
    return key, ids


def test_background_colors_are_the_keyframes_open_region_colors_found_nowhere_else():
    key, ids = _scene()
    sky = quantized(key)[0, 0]
    green = quantized(key)[0, 19]
    # The strip (80 px = 20 %) is large and open: its green is background; the sky is not, because the
    # character's patch has it too.
    assert set(background_colors(key, ids).tolist()) == {green}
    ids[6:8, 6:8] = 2  # the patch is part of the character region; its colour is still the sky's
    assert set(background_colors(key, ids).tolist()) == {green}
    key[6:8, 6:8, :3] = RED  # now the sky's colour is only in open regions
    assert set(background_colors(key, ids).tolist()) == {sky, green}
    # Regions under `area` of the frame are no background (the sky is 57.5 %, the strip 20 %).
    assert set(background_colors(key, ids, area=0.5).tolist()) == {sky}
    assert set(background_colors(key, ids, area=0.6).tolist()) == set()


def test_a_large_region_open_to_one_edge_only_is_no_background():
    key = _rgba(10, 10, SKY)
    ids = np.ones((10, 10), np.int64)
    ids[9, :] = ids[:, 0] = ids[:, 9] = 0  # lines close it on three sides: open to the top edge only
    assert background_colors(key, ids).size == 0
    ids[:, 9] = 1  # now open to the right edge as well
    assert background_colors(key, ids).tolist() == [quantized(key)[0, 0]]


def test_painted_background_counts_character_regions_painted_in_background_colors():
    key, ids = _scene()
    key[6:8, 6:8, :3] = RED
    ids[6:8, 6:8] = 2
    colors = background_colors(key, ids)
    assert painted_background(key, key, ids, colors, min_area=1) == 0
    out = key.copy()
    out[5:15, 5:12, :3] = SKY  # the character (70 px) painted like the sky
    assert painted_background(out, key, ids, colors, min_area=1) == 1
    assert painted_background(out, key, ids, colors, min_area=71) == 0  # too small to count
    out[5:9, 5:12, :3] = RED  # 28 of 70 px still red: most of it in the sky's colour
    assert painted_background(out, key, ids, colors, min_area=1) == 1
    out[5:10, 5:12, :3] = RED  # 35 of 70: not more than half
    assert painted_background(out, key, ids, colors, min_area=1) == 0
    # The truth itself painted like the background there: not a character region.
    out[5:15, 5:12, :3] = SKY
    assert painted_background(out, out, ids, colors, min_area=1) == 0


def test_a_region_whose_truth_is_a_lighter_tone_of_the_sky_is_no_character():
    # The sky is a gradient: lighter near the bottom. The lighter tone also shows through a gap in the
    # character (region 3), so it is not a background-only colour; but it is the sky's own (the open sky
    # has far more of it), and a region whose truth has it is background, whatever tone it is painted.
    key, ids = _scene()
    light = (170, 190, 230)
    key[12:, :5, :3] = light
    key[6:8, 6:8, :3] = light
    sky, tone, red = quantized(key)[0, 0], quantized(key)[19, 0], quantized(key)[10, 10]
    only, owned = background_colors(key, ids), background_owned(key, ids)
    assert sky in only and tone not in only
    assert sky in owned and tone in owned and red not in owned
    out = key.copy()
    out[6:8, 6:8, :3] = SKY  # the gap painted the sky's darker tone
    assert painted_background(out, key, ids, only, min_area=1) == 1  # judged on the truth's own codes
    assert painted_background(out, key, ids, only, min_area=1, truth_colors=owned) == 0
    out[5:15, 5:12, :3] = SKY  # the character itself painted like the sky still counts
    assert painted_background(out, key, ids, only, min_area=1, truth_colors=owned) == 1


def test_longest_run_of_consecutive_frames():
    assert longest_run([]) == 0
    assert longest_run([5]) == 1
    assert longest_run([9, 2, 3, 4, 7, 8, 3]) == 3


def test_a_clip_without_region_maps_is_scored_off_the_lines(tmp_path):
    # A held drawing: the engine paints every frame like the keyframe. The truth of frames 3 and 4 has the
    # background repainted (a colour nowhere in the keyframe), so there the background region is a
    # "character" in the truth painted in a background colour: a run of 2 frames, for both sides.
    frame = make_frame(72, 128, dots=4)
    key = finished(frame)
    corner = tuple(int(c) for c in key[0, 0, :3])
    bg = np.all(key[..., :3] == corner, axis=-1)
    assert bg.mean() > 0.05  # the drawing's background is a large open region
    truths = {i: key.copy() for i in range(5)}
    for i in (2, 3):
        truths[i][bg, :3] = (255, 0, 255)
    case = write_case(tmp_path / "case", [frame.lineart] * 5, {0: key}, truths, {}, "held drawing")
    report = evaluate_case(case, tmp_path / "out")
    f = report.figures
    assert f["scored"] == 4 and f["mapped"] == 0
    assert math.isnan(f["engine_region_acc"]) and "engine_region_acc" not in report.frames[0]
    assert [r["engine_background_regions"] > 0 for r in report.frames] == [False, True, True, False]
    assert f["engine_background_run"] == 2 and f["baseline_background_run"] == 2
    assert report.frames[0]["engine_psnr_off_lines"] == math.inf  # frame 2: exactly the keyframe's paint
    assert report.frames[1]["engine_psnr_off_lines"] < 20
    head, rule, row = (line.split("|") for line in table([report]).splitlines()[:3])
    assert len(head) == len(rule) == len(row)  # a Markdown table: as many columns in every line
    assert row[3].strip() == "–" and row[-2].strip() == "2 / 2"
