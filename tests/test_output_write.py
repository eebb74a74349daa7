"""The write path: compression levels, the provenance record in the frame, RGBA and 16-bit passed through."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from colorize import images
from colorize.engines.base import EngineBase, FrameResult
from colorize.events import Events
from colorize.runner import run_shot
from colorize.shot import plan_shot
from colorize.validate import validate_plan


def picture(dtype=np.uint8, channels=3) -> np.ndarray:
    rng = np.random.default_rng(0)
    top = 255 if dtype == np.uint8 else 65535
    image = np.zeros((48, 64, channels), dtype)
    image[8:30, 10:50] = rng.integers(0, top, channels, endpoint=True)
    image[::7] = rng.integers(0, top, (1, 64, channels), endpoint=True)
    return image


def test_compression_level_changes_size_not_pixels(tmp_path):
    image = picture()
    image[30:] = np.random.default_rng(1).integers(0, 256, image[30:].shape)
    sizes = {}
    for level in (0, 1, 9):
        path = tmp_path / f"c{level}.png"
        images.write_image(path, image, compression=level)
        assert np.array_equal(np.asarray(Image.open(path)), image)
        sizes[level] = path.stat().st_size
    assert sizes[0] > sizes[1] >= sizes[9]


@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 4), (np.uint16, 3), (np.uint16, 4)])
def test_rgba_and_16_bit_are_written_as_they_are(tmp_path, dtype, channels):
    image = picture(dtype, channels)
    path = tmp_path / "f.png"
    images.write_image(path, image, metadata='{"x": 1}')
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    back = cv2.cvtColor(back, cv2.COLOR_BGRA2RGBA if channels == 4 else cv2.COLOR_BGR2RGB)
    assert back.dtype == dtype and np.array_equal(back, image)
    assert images.read_metadata(path) == '{"x": 1}'


def test_record_is_a_png_text_chunk_and_a_cut_file_has_none(tmp_path):
    path = tmp_path / "f.png"
    images.write_image(path, picture(), metadata="made from this")
    assert Image.open(path).text == {"colorize": "made from this"}
    assert images.read_metadata(path) == "made from this"
    path.write_bytes(path.read_bytes()[:-1])
    assert images.read_metadata(path) is None
    images.write_image(path, picture())
    assert images.read_metadata(path) is None


def test_other_formats_keep_the_record_in_a_sidecar_that_never_outlives_its_frame(tmp_path):
    path = tmp_path / "f.tif"
    images.write_image(path, picture(), metadata="first")
    assert images.read_metadata(path) == "first" and (tmp_path / ".f.tif.colorize").is_file()
    images.write_image(path, picture())  # replaced by a frame without a record: the old one goes
    assert images.read_metadata(path) is None and not (tmp_path / ".f.tif.colorize").exists()


class Sixteen(EngineBase):
    name = "sixteen"

    def prepare(self, shot):
        pass

    def colorize(self, batch):
        out = []
        for fi in batch:
            rgba = fi.lineart.astype(np.uint16) * 257
            out.append(FrameResult(fi.frame, rgba, {"unresolved": 0}))
        return out


def test_runner_writes_engine_results_at_the_output_depth(shot):
    # A 16-bit RGBA result is written at `output_depth`: 16 bits exactly, or rounded to 8 (the default).
    expected = images.read_rgba(shot / "lineart" / "sh001.1002.png").astype(np.uint16) * 257
    for depth, out in ((16, shot / "c16"), (8, shot / "c8")):
        plan = plan_shot(
            shot / "refs.yaml", frames="1001-1002", out_dir=out, overrides={"output_depth": depth}
        )
        size = validate_plan(plan, deep=False)
        summary = run_shot(plan, Sixteen(), Events(json_stream=io.StringIO()), size=size)
        assert summary.exit_code == 0 and summary.done == 2
        back = cv2.cvtColor(
            cv2.imread(str(out / "sh001.1002.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA
        )
        if depth == 16:
            assert back.dtype == np.uint16 and np.array_equal(back, expected)
        else:
            assert back.dtype == np.uint8 and np.array_equal(back, (expected // 257).astype(np.uint8))
