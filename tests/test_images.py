from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from colorize import images
from colorize.errors import InputDataError, MissingInputError


def test_formats_normalise_to_rgba(tmp_path):
    gray16 = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    Image.fromarray(np.full((8, 8), 100, np.uint8), "L").save(tmp_path / "g.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(tmp_path / "rgba.png")
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 7, 7, 7] + [0] * 762)
    pal.save(tmp_path / "p.png")
    a = images.read_rgba(tmp_path / "g16.png")
    assert a.shape == (32, 64, 4) and a.dtype == np.uint8
    assert a[-1, -1, 0] == round(int(gray16[-1, -1]) * 255 / 65535)
    assert images.read_rgba(tmp_path / "g.png")[0, 0].tolist() == [100, 100, 100, 255]
    assert images.read_rgba(tmp_path / "rgba.png")[0, 0, 3] == 0
    assert images.read_rgba(tmp_path / "p.png")[0, 0, :3].tolist() == [7, 7, 7]
    assert images.read_rgb(tmp_path / "rgba.png")[0, 0].tolist() == [255, 255, 255]


def test_bad_files_raise_one_line_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        tmp_path / "ok.png"
    )
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"empty\.png: empty file"):
        images.read_rgba(tmp_path / "empty.png")
    with pytest.raises(InputDataError, match=r"text\.png: not an image"):
        images.read_rgba(tmp_path / "text.png")
    with pytest.raises(InputDataError, match=r"trunc\.png: damaged or truncated"):
        images.read_rgba(tmp_path / "trunc.png")
    with pytest.raises(InputDataError, match=r"trunc\.png: damaged or truncated"):
        images.verify_image(tmp_path / "trunc.png")
    with pytest.raises(MissingInputError, match="not found"):
        images.read_rgba(tmp_path / "none.png")


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    img[1, 2] = (255, 0, 0)
    out = tmp_path / "f.0001.png"
    images.write_image(out, img)
    assert [p.name for p in tmp_path.iterdir()] == ["f.0001.png"]
    assert images.read_rgb(out).tolist() == img.tolist()


def test_stale_temps_of_other_outputs_are_kept(tmp_path):
    mine = tmp_path / "a.0001.png"
    theirs = tmp_path / "a.0002.png"
    stale = images.temp_path_for(mine)
    busy = images.temp_path_for(theirs)
    stale.write_bytes(b"partial")
    busy.write_bytes(b"being written by another chunk")
    assert images.remove_stale_temps([mine]) == [stale]
    assert busy.exists() and not stale.exists()
