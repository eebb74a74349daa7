"""colorize.temporal: noise from (seed, frame), warp-chain anchors, optical-flow warp with occlusion."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from colorize.temporal import SHOT_KEY, anchor_at, chain_start, frame_noise, noise_seed, warp_previous


def test_noise_depends_only_on_seed_and_frame():
    a = frame_noise(7, 1001, (4, 8, 8))
    torch.manual_seed(123)  # the global RNG must not matter
    torch.randn(10)
    assert torch.equal(a, frame_noise(7, 1001, (4, 8, 8)))
    assert not torch.equal(a, frame_noise(7, 1002, (4, 8, 8)))
    assert not torch.equal(a, frame_noise(8, 1001, (4, 8, 8)))
    assert not torch.equal(a, frame_noise(7, SHOT_KEY, (4, 8, 8)))
    assert noise_seed(7, 1001) == noise_seed(7, 1001) < 2**63


def test_anchors_every_k_frames_and_keyframes():
    frames = list(range(1001, 1021))
    keys = [1011]
    anchors = [f for i, f in enumerate(frames) if anchor_at(i, f, keys, 4)]
    assert anchors == [1001, 1005, 1009, 1011, 1013, 1017]
    assert chain_start(1001, frames, keys, 4) == 1001
    assert chain_start(1004, frames, keys, 4) == 1001
    assert chain_start(1010, frames, keys, 4) == 1009
    assert chain_start(1012, frames, keys, 4) == 1011


def _drawing(dx: int) -> np.ndarray:
    art = np.full((96, 128, 4), 255, np.uint8)
    cv2.circle(art, (50 + dx, 48), 22, (0, 0, 0, 255), 2)
    cv2.rectangle(art, (85 + dx, 20), (115 + dx, 70), (0, 0, 0, 255), 2)
    return art


def test_warp_follows_the_line_art_and_flags_occlusions():
    from colorize.regions.segment import ink_u8

    prev_art, cur_art = _drawing(0), _drawing(4)
    prev_rgb = np.full((96, 128, 3), 200, np.uint8)
    cv2.circle(prev_rgb, (50, 48), 21, (255, 0, 0), -1)  # a filled red disc inside the drawn circle
    warped, occluded = warp_previous(prev_rgb, ink_u8(cur_art), ink_u8(prev_art))
    again, _ = warp_previous(prev_rgb, ink_u8(cur_art), ink_u8(prev_art))
    assert np.array_equal(warped, again)  # deterministic
    assert warped.shape == prev_rgb.shape and occluded.shape == (96, 128)
    # The disc moved with the drawing: its new center is red, where it left is not.
    assert tuple(warped[48, 54]) == (255, 0, 0)
    red_now = (warped[..., 0] > 200) & (warped[..., 1] < 60)
    red_before = (prev_rgb[..., 0] > 200) & (prev_rgb[..., 1] < 60)
    xs_now, xs_before = np.nonzero(red_now)[1].mean(), np.nonzero(red_before)[1].mean()
    assert 2.0 < xs_now - xs_before < 6.0
    assert occluded.mean() < 0.2
