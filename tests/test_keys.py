"""Choosing key drawings from the line art alone (`colorize.keys`), on generated cel drawings."""

from __future__ import annotations

import numpy as np
import pytest
from synth import make_frame

from colorize.keys import ASKED, CHANGE, FIRST, GAP, choose_keys
from colorize.settings import Settings


@pytest.fixture(scope="module")
def drawings() -> list[np.ndarray]:
    """Frames 1-4: a drawing moving a little; 5-8: a new drawing (the same one upside down, so nothing of
    it lines up with the first); 9-10: the first two drawings again (exact repeats)."""
    a = [make_frame(180, 320, shift=(3 * i, 0)).lineart for i in range(4)]
    b = [np.ascontiguousarray(np.flipud(x)) for x in a]
    return [*a, *b, a[0], a[1]]


def _choose(drawings: list[np.ndarray], **keys: object):
    frames = list(range(1, len(drawings) + 1))
    return choose_keys(frames, lambda f: drawings[f - 1], Settings(keys=keys))


def test_first_frame_and_a_new_drawing_are_keys_repeats_are_not(drawings):
    choice = _choose(drawings)
    assert choice.frames == (1, 5)
    assert [k.reason for k in choice.keys] == [FIRST, CHANGE]
    assert choice.keys[1].carried is not None and choice.keys[1].carried < 0.7
    assert "key 1" in choice.keys[1].detail
    assert choice.drawings == 8
    # The small moves are carried; the repeat of key drawing 1 at frame 9 is not a key, nor what follows it.
    assert all(choice.carried[f] >= 0.7 for f in (2, 3, 4, 6, 7, 8, 9, 10))


def test_max_gap_takes_the_first_new_drawing_and_max_count_reports_the_rest(drawings):
    gap = _choose(drawings, max_gap=2)
    assert [(k.frame, k.reason) for k in gap.keys] == [(1, FIRST), (3, GAP), (5, CHANGE), (7, GAP)]
    # Frames 9 and 10 repeat earlier drawings: never keys, however long since the last key.
    few = _choose(drawings, max_count=1)
    assert few.frames == (1,) and [k.frame for k in few.over] == [5]


def test_named_frames_are_the_keys(drawings):
    choice = choose_keys(range(1, 11), lambda f: drawings[f - 1], Settings(), explicit=[7, 3, 3])
    assert choice.frames == (3, 7) and {k.reason for k in choice.keys} == {ASKED}


def test_the_choice_reads_only_line_art_and_is_deterministic(drawings):
    assert _choose(drawings).keys == _choose(drawings).keys
