"""Layers (index, paint, line) written with the output, and TGA output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from colorize_cli.app import app
from conftest import SAMPLE, tree_bytes
from PIL import Image
from typer.testing import CliRunner

from colorize import images
from colorize.colormodel import load_palette

runner = CliRunner()
FRAMES = "1001-1003"
LAYERS = "layers: {index: layers/i.####.png, paint: layers/p.####.tga, line: layers/l.####.tif}\n"


def invoke(*args: str) -> str:
    result = runner.invoke(app, [*args, "--progress", "none"] if args[0] == "shot" else list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def painted(tmp_path_factory) -> Path:
    """The sample shot with a palette from its keyframe and all three layers, frames 1001-1003 colored."""
    shot = tmp_path_factory.mktemp("layers") / "shot"
    shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color"))
    invoke("palette", "extract", str(shot / "keys" / "sh001.1001.png"), "--out", str(shot / "pal.yaml"))
    with (shot / "refs.yaml").open("a") as f:
        f.write("palette: pal.yaml\n" + LAYERS)
    invoke("shot", str(shot), "--frames", FRAMES)
    return shot


def over(line: np.ndarray, paint: np.ndarray) -> np.ndarray:
    """Straight-alpha `line` over straight-alpha `paint`, as a compositor does (float 0-255)."""
    line, paint = line.astype(np.float64), paint.astype(np.float64)
    la, pa = line[..., 3:4] / 255, paint[..., 3:4] / 255
    out_a = la + pa * (1 - la)
    rgb = (line[..., :3] * la + paint[..., :3] * pa * (1 - la)) / np.maximum(out_a, 1e-9)
    return np.dstack([rgb, out_a * 255])


def test_line_over_paint_is_the_output_and_paint_is_palette_of_index(painted):
    palette = load_palette(painted / "pal.yaml")
    by_id = {int(i): palette.rgba[k] for k, i in enumerate(palette.ids)}
    for f in (1001, 1002, 1003):
        out = images.read_rgba(painted / "color" / f"sh001.{f}.png")
        paint = np.asarray(Image.open(painted / "layers" / f"p.{f}.tga"))
        line = images.read_rgba(painted / "layers" / f"l.{f}.tif")
        index = np.asarray(Image.open(painted / "layers" / f"i.{f}.png"))
        assert paint.shape[2] == 4 and line.shape[2] == 4 and index.dtype == np.uint16 and index.ndim == 2
        assert np.abs(np.round(over(line, paint)) - out).max() <= 1
        painted_px = paint[..., 3] > 0
        assert ((index == 0) == ~painted_px).all()
        assert painted_px.any() and (line[..., 3] > 0).any()
        expect = np.zeros_like(paint)
        for i, rgba in by_id.items():
            expect[index == i] = rgba
        assert (expect[painted_px] == paint[painted_px]).all()
        # On model: the output's pixels off the lines are palette colours.
        off = line[..., 3] == 0
        assert palette.slips(out[off]).min() >= 0 and (palette.index(out)[off] != 65535).all()


def test_chunks_equal_the_whole_run_for_every_layer(painted, tmp_path):
    whole = tree_bytes(painted / "layers") | tree_bytes(painted / "color")
    chunked = tmp_path / "shot"
    shutil.copytree(painted, chunked, ignore=shutil.ignore_patterns("color", "layers"))
    for frames in ("1001", "1002-1003"):
        invoke("shot", str(chunked), "--frames", frames)
    assert tree_bytes(chunked / "layers") | tree_bytes(chunked / "color") == whole


def test_a_frame_is_done_only_when_every_layer_file_is_fresh(painted, tmp_path):
    shot = tmp_path / "shot"
    shutil.copytree(painted, shot)
    assert "done         3" in invoke("status", str(shot), "--frames", FRAMES)
    (shot / "layers" / "p.1002.tga").unlink()
    (shot / "layers" / ".l.1003.tif.colorize").unlink()  # a TIFF's record (sidecar) lost
    status = invoke("status", str(shot), "--frames", FRAMES)
    assert "layer paint missing" in status and "layer line: no provenance record" in status
    events = runner.invoke(
        app, ["shot", str(shot), "--frames", FRAMES, "--json", "--progress", "none"]
    ).stdout
    assert events.count('"frame_done"') == 2 and events.count('"frame_skipped"') == 1
    assert tree_bytes(shot / "layers") == tree_bytes(painted / "layers")


def test_the_index_layer_needs_a_palette_and_paint_needs_alpha(tmp_path):
    shot = tmp_path / "shot"
    shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color"))
    with (shot / "refs.yaml").open("a") as f:
        f.write("layers: {index: layers/i.####.png, paint: layers/p.####.jpg}\n")
    result = runner.invoke(app, ["check", str(shot)])
    assert result.exit_code == 65
    assert "layers.index: 'layers/i.####.png': the index layer needs a palette" in result.output
    assert "layers.paint: 'layers/p.####.jpg': .jpg cannot hold alpha" in result.output


def test_layers_without_a_palette_leave_the_output_as_it_was(tmp_path):
    plain, layered = tmp_path / "plain", tmp_path / "layered"
    for shot in (plain, layered):
        shutil.copytree(SAMPLE, shot, ignore=shutil.ignore_patterns("color"))
    with (layered / "refs.yaml").open("a") as f:
        f.write("layers: {paint: paint/p.####.png, line: line/l.####.png}\n")
    for shot in (plain, layered):
        invoke("shot", str(shot), "--frames", "1002")
    assert tree_bytes(plain / "color") == tree_bytes(layered / "color")
    out = images.read_rgba(layered / "color" / "sh001.1002.png")
    paint, line = (images.read_rgba(layered / d / f"{d[0]}.1002.png") for d in ("paint", "line"))
    assert np.abs(np.round(over(line, paint)) - out).max() <= 1


@pytest.mark.parametrize("channels", [4, 3])
def test_tga_is_rle_straight_alpha_bottom_left_and_carries_the_record(tmp_path, channels):
    rng = np.random.default_rng(0)
    image = np.repeat(rng.integers(0, 256, (6, 1, 4), dtype=np.uint8), 9, axis=1)[..., :channels].copy()
    if channels == 4:
        image[0, 0] = [200, 100, 50, 64]  # a translucent pixel keeps its colour (straight, not premultiplied)
    path = tmp_path / "f.0001.tga"
    images.write_image(path, image, metadata='{"schema":1}')
    data = path.read_bytes()
    assert data[2] == 10  # RLE true colour
    assert data[16] == 8 * channels and data[17] & 0x0F == (8 if channels == 4 else 0)
    assert data[17] & 0x20 == 0  # origin bottom-left
    assert data.endswith(b"TRUEVISION-XFILE.\0")
    with Image.open(path) as im:
        assert im.mode == ("RGBA" if channels == 4 else "RGB")
        assert (np.asarray(im) == image).all()
    assert images.read_metadata(path) == '{"schema":1}'
    path.write_bytes(data[:-30])  # truncated: no record, so a rerun makes it again
    assert images.read_metadata(path) is None
