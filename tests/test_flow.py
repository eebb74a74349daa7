"""colorize.flow: global motion, correspondence through large moves, the plain flow."""

from __future__ import annotations

import cv2
import numpy as np
from synth import make_frame

from colorize import flow
from colorize.regions.segment import ink_u8

H, W = 180, 320


def _label_agreement(a, b, maps) -> float:
    """Share of b's region pixels (off the lines) whose mapped position in a has the same region."""
    landed = cv2.remap(a.regions.astype(np.float32), maps, None, cv2.INTER_NEAREST)
    inside = b.lineart[..., :3].min(axis=-1) == 255
    return float((landed == b.regions)[inside].mean())


def test_global_motion_recovers_a_move_and_turn():
    a = make_frame(H, W, dots=6)
    b = make_frame(H, W, shift=(0.12 * W, 0.05 * H), angle=5.0, dots=6)
    motion = flow.global_motion(ink_u8(b.lineart), ink_u8(a.lineart))
    # b(x) = a(A x): A is the inverse of the drawing's move about the center.
    m = cv2.getRotationMatrix2D((W / 2, H / 2), 5.0, 1.0)
    m[:, 2] += (0.12 * W, 0.05 * H)
    expected = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1]], float)
    assert np.abs(corners @ motion.affine.T - corners @ expected.T).max() < 2.0
    assert motion.score > motion.identity_score + 0.3


def test_correspondence_follows_large_motion_and_small_motion_stays_cheap():
    a = make_frame(H, W, dots=6)
    far = make_frame(H, W, shift=(0.15 * W, 0.06 * H), angle=6.0, dots=6)
    where, motion = flow.correspondence(ink_u8(far.lineart), ink_u8(a.lineart), work=512)
    assert motion is not None and _label_agreement(a, far, where.full()) > 0.99
    near = make_frame(H, W, shift=(1.0, 0.5), dots=6)
    where, motion = flow.correspondence(ink_u8(near.lineart), ink_u8(a.lineart), work=512)
    assert motion is None and _label_agreement(a, near, where.full()) > 0.99


def test_plain_flow_and_occlusion_mask_are_consistent():
    a = make_frame(H, W, dots=6)
    b = make_frame(H, W, shift=(3.0, 1.0), dots=6)
    ia, ib = ink_u8(a.lineart), ink_u8(b.lineart)
    backward, forward = flow.line_flow(ib, ia), flow.line_flow(ia, ib)
    assert np.median(backward[..., 0]) < -2.0  # b(x) = a(x - 3): the flow points back
    assert flow.occlusion_mask(backward, forward, 1.5).mean() < 0.1


def test_a_correspondence_reads_the_same_map_in_full_on_a_grid_and_at_points():
    """The reduced-size flow read three ways gives one map: `sampled(step)` and `at(xs, ys)` equal `full()`
    at those pixels, for an odd-sized frame and a flow at about a third of its size (non-integer ratios).
    OpenCV's remap/warpAffine place sample positions on a 1/32-pixel lattice, so the reads may differ from
    `full()` by the flow's change over 1/64 of a (reduced) pixel along each axis, and by no more."""
    h, w = 181, 323
    rng = np.random.default_rng(0)
    coarse = rng.normal(0, 3, (12, 20, 2)).astype(np.float32)
    small = cv2.resize(coarse, (w // 3, h // 3), interpolation=cv2.INTER_CUBIC)
    gx = np.abs(np.diff(small, axis=1)).max()
    gy = np.abs(np.diff(small, axis=0)).max()
    tol = (gx + gy) / 64 * max(w / small.shape[1], h / small.shape[0]) + 1e-4
    where = flow.Correspondence(small, (h, w))
    full = where.full()
    assert full.shape == (h, w, 2)
    for step in (1, 2, 3):
        np.testing.assert_allclose(where.sampled(step), full[::step, ::step], atol=tol, rtol=0)
    ys, xs = rng.integers(0, h, 5000), rng.integers(0, w, 5000)
    np.testing.assert_allclose(where.at(xs, ys), full[ys, xs], atol=tol, rtol=0)
    assert where.at(np.zeros(0, int), np.zeros(0, int)).shape == (0, 2)
