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


def test_16bit_color_is_read_at_full_depth(tmp_path):
    import cv2

    rgba = np.zeros((6, 7, 4), np.uint16)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 1000, 40000, 65535, 30000
    cv2.imwrite(str(tmp_path / "c16.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(tmp_path / "c16.tif"), cv2.cvtColor(rgba[..., :3], cv2.COLOR_RGB2BGR))
    full = images.read_image(tmp_path / "c16.png")
    assert full.dtype == np.uint16 and full[0, 0].tolist() == [1000, 40000, 65535, 30000]
    assert images.read_image(tmp_path / "c16.tif")[0, 0].tolist() == [1000, 40000, 65535, 65535]
    # 8-bit readers round (Pillow alone would truncate these files to their high byte).
    assert images.read_rgba(tmp_path / "c16.png")[0, 0].tolist() == [4, 156, 255, 117]


def test_over_white_and_output_conversion():
    rgba = np.array([[[200, 0, 0, 255], [0, 0, 0, 0], [0, 0, 200, 128]]], np.uint8)
    assert images.over_white(rgba).tolist() == [[[200, 0, 0], [255, 255, 255], [127, 127, 227]]]
    wide = images.to_uint16(rgba)
    assert wide.dtype == np.uint16 and wide[0, 0, 0] == 200 * 257
    # The same blend at 16 bits (within the rounding of 8 bits).
    assert np.abs(images.to_uint8(images.over_white(wide)).astype(int) - images.over_white(rgba)).max() <= 1
    assert np.array_equal(images.to_uint8(wide), rgba)
    assert images.output_array(rgba, "off", 8).shape == (1, 3, 3)
    on = images.output_array(rgba[..., :3], "on", 16)
    assert on.dtype == np.uint16 and on.shape == (1, 3, 4) and (on[..., 3] == 65535).all()
    assert images.output_array(rgba, "auto", 8) is rgba


def test_alpha_and_16bit_outputs_round_trip(tmp_path):
    rgba = np.array([[[200, 10, 0, 255], [1, 2, 3, 0]]], np.uint8)
    images.write_image(tmp_path / "a.png", rgba)
    assert images.read_rgba(tmp_path / "a.png").tolist() == rgba.tolist()
    images.write_image(tmp_path / "b.png", images.to_uint16(rgba))
    assert np.array_equal(images.read_image(tmp_path / "b.png"), images.to_uint16(rgba))
    clear = np.zeros((16, 16, 4), np.uint16)  # transparent, 16 bits: JPEG gets white, 8 bits
    images.write_image(tmp_path / "c.jpg", clear)
    assert images.read_rgb(tmp_path / "c.jpg").min() > 250


def test_writing_over_a_folder_is_an_output_error_not_an_io_failure(tmp_path):
    from colorize.errors import OutputError

    (tmp_path / "f.0001.png").mkdir()  # a folder where an output frame (or `plan --save` file) goes
    with pytest.raises(OutputError, match="f.0001.png: cannot write"):
        images.write_atomic(tmp_path / "f.0001.png", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["f.0001.png"]  # no temporary left behind
