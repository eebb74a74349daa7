from __future__ import annotations

from pathlib import Path

import pytest

from colorize.errors import InputDataError, UsageError
from colorize.sequences import (
    frame_range_text,
    gaps,
    list_frames,
    parse_frame_range,
    parse_pattern,
)


@pytest.mark.parametrize("text", ["seq/sh.####.png", "seq/sh.%04d.png", "seq/sh.@@@@.png"])
def test_padding_styles_mean_four_digits(tmp_path, text):
    p = parse_pattern(text, tmp_path)
    assert p.is_sequence and p.width == 4
    assert p.path(12) == tmp_path / "seq" / "sh.0012.png"


def test_single_file_pattern(tmp_path):
    p = parse_pattern("masks/hero.png", tmp_path)
    assert not p.is_sequence
    assert p.path() == tmp_path / "masks" / "hero.png"


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


def test_list_frames_keeps_numbers_and_ignores_other_files(tmp_path):
    touch(tmp_path / "seq", "sh.1001.png", "sh.1002.png", "sh.10000.png", "other.1001.png", "sh.1001.jpg")
    found = list_frames(parse_pattern("seq/sh.####.png", tmp_path), "lineart")
    assert sorted(found) == [1001, 1002, 10000]


def test_duplicate_frame_with_other_padding_is_an_error(tmp_path):
    touch(tmp_path / "seq", "sh.1001.png", "sh.01001.png")
    with pytest.raises(InputDataError, match="frame 1001 appears twice"):
        list_frames(parse_pattern("seq/sh.####.png", tmp_path), "lineart")


def test_unpadded_file_is_an_error_naming_the_file(tmp_path):
    touch(tmp_path / "seq", "sh.0001.png", "sh.2.png")
    with pytest.raises(InputDataError, match=r"sh\.2\.png: frame 2 is not padded to 4 digits"):
        list_frames(parse_pattern("seq/sh.####.png", tmp_path), "lineart")


def test_frame_ranges():
    assert parse_frame_range("1001-1009x2") == [1001, 1003, 1005, 1007, 1009]
    assert parse_frame_range("5,1-3") == [1, 2, 3, 5]
    assert frame_range_text([1, 2, 3, 5]) == "1-3,5"
    assert gaps([1, 2, 5]) == [3, 4]
    for bad in ["10-x", "a", "1-"]:
        with pytest.raises(UsageError, match="not a frame range"):
            parse_frame_range(bad)
    with pytest.raises(UsageError, match="selects no frame"):
        parse_frame_range("")


def test_paths_follow_fileseq_padding(tmp_path):
    p = parse_pattern("seq/sh.####.png", tmp_path)
    assert p.path(10000).name == "sh.10000.png"  # more digits than the padding: no truncation
    assert p.path(-3).name == "sh.-003.png"  # as fileseq (and printf %04d) pad negative frames
    touch(tmp_path / "seq", "sh.-003.png", "sh.0004.png")
    assert list_frames(p, "lineart") == {
        -3: tmp_path / "seq" / "sh.-003.png",
        4: tmp_path / "seq" / "sh.0004.png",
    }
    assert p.with_folder(tmp_path / "out").path(7) == tmp_path / "out" / "sh.0007.png"
    with pytest.raises(ValueError, match="needs a frame number"):
        p.path()


def test_gaps():
    assert gaps([1001, 1002, 1005, 1009]) == [1003, 1004, 1006, 1007, 1008]
    assert gaps([7]) == [] and gaps([]) == []
