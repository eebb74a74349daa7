"""Diffusion preprocessing: mask merging, masks from line art, bleaching, sketch normalisation, cel finish."""

from __future__ import annotations

import cv2
import numpy as np

from colorize.engines.diffusion import preprocess as pp
from colorize.engines.diffusion.cel import cel_finish


def test_merge_masks_dilates_and_splits_without_overlap():
    a = np.zeros((40, 60), bool)
    b = np.zeros((40, 60), bool)
    a[10:30, 5:30] = True
    b[10:30, 25:50] = True  # overlaps a on columns 25..29
    merged = pp.merge_character_masks([a, b], dilation=3)
    assert merged.foreground.sum() > (a | b).sum()  # dilated
    assert not (merged.split[0] & merged.split[1]).any()
    assert np.array_equal(merged.split.any(axis=0), merged.foreground)
    assert merged.split[0][20, 27]  # overlap of the own masks: the first character (front) wins
    assert merged.split[1][20, 52] and merged.split[0][20, 3]  # margins: the nearest own mask


def test_lineart_foreground_is_what_the_outline_encloses():
    art = np.full((64, 96, 4), 255, np.uint8)
    cv2.circle(art, (48, 32), 20, (0, 0, 0, 255), 2)
    cv2.line(art, (40, 25), (56, 25), (0, 0, 0, 255), 2)  # an inner line: still inside
    fg = pp.lineart_foreground(art)
    assert fg[32, 48] and fg[20, 48] and fg[32, 29]  # inside, inner region, the outline itself
    assert not fg[2, 2] and not fg[32, 90]


def test_reference_foreground_is_what_is_not_the_flat_backdrop(tmp_path):
    ref = np.full((50, 50, 3), (30, 120, 200), np.uint8)  # a flat backdrop
    ref[15:35, 15:35] = (250, 20, 20)  # the character
    fg = pp.reference_foreground(ref)
    assert fg[25, 25] and not fg[2, 2] and fg.sum() == 400
    cv2.imwrite(str(tmp_path / "flat.png"), ref[..., ::-1])
    assert pp.heuristic_mask_warning(tmp_path / "flat.png", "hero") is None  # 16 %
    painted = np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "painted.png"), painted)
    warning = pp.heuristic_mask_warning(tmp_path / "painted.png", "hero")
    assert warning is not None and "painted.png" in warning and "characters.hero.reference_mask" in warning
    empty = np.full((50, 50, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "empty.png"), empty)
    assert "0%" in pp.heuristic_mask_warning(tmp_path / "empty.png", "hero")


def test_sketch_is_inverted_padded_to_64_and_cropped_back():
    ink = np.zeros((100, 150), np.float32)
    ink[50, :] = 1.0
    sketch = pp.sketch_plane(ink)
    assert sketch.shape == (128, 192) and sketch.dtype == np.float32
    assert float(sketch[50, 10]) == 1.0 and float(sketch[10, 10]) == -1.0  # lines bright, paper dark
    assert float(sketch[100:, :].max()) == -1.0 and float(sketch[:, 150:].max()) == -1.0  # padding is paper
    assert pp.padded_size(256, 384) == (256, 384)
    assert pp.crop(np.zeros((128, 192, 3)), (100, 150)).shape == (100, 150, 3)


def test_working_size_keeps_the_aspect_pads_to_64_and_comes_back_at_frame_size():
    g = pp.frame_geometry(1080, 1920, 768)
    assert (g.size, g.work, g.padded) == ((1080, 1920), (432, 768), (448, 768))
    assert pp.frame_geometry(1920, 1080, 768).work == (768, 432)  # portrait: the long side is the height
    small = pp.frame_geometry(256, 384, 768)  # smaller frames are enlarged too
    assert (small.work, small.padded) == ((512, 768), (512, 768))
    native = pp.frame_geometry(1080, 1920, 0)
    assert (native.work, native.padded) == ((1080, 1920), (1088, 1920))
    assert pp.working_size(100, 333, 64) == (19, 64)  # rounded half up, aspect kept

    # Into the working size and back: a model-sized result crops to `work` and resizes to the frame.
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, 960:] = 255
    work = g.to_work(frame)
    assert work.shape == (432, 768, 3) and work.dtype == np.uint8
    result = pp.pad_image(work, g.padded, fill=7)
    back = g.to_frame(result)
    assert back.shape == (1080, 1920, 3) and back.dtype == np.uint8
    assert back[:, :900].max() == 0 and back[:, 1020:].min() == 255  # padding cropped, edges clipped
    assert np.array_equal(native.to_frame(pp.pad_image(frame, native.padded)), frame)

    # Masks: soft when shrinking, nearest when enlarging; latent masks cover the working area only.
    mask = np.zeros((1080, 1920), bool)
    mask[:, :960] = True
    shrunk = pp.resize_mask(mask, g.work)
    assert shrunk.shape == (432, 768) and shrunk[:, :380].min() == 1.0 and shrunk[:, 390:].max() == 0.0
    grown = pp.resize_mask(mask[:256, 800:1184], small.work)  # 160 columns set -> 320 of 768
    assert set(np.unique(grown).tolist()) == {0.0, 1.0} and grown[:, :320].all() and not grown[:, 320:].any()
    latent = pp.latent_masks(mask[None], g, (56, 96))
    assert latent.shape == (1, 56, 96)
    assert float(latent[0, :50, :40].min()) == 1.0 and float(latent[0, 55:, :].max()) == 0.0  # pad rows


def test_cel_finish_gives_one_color_per_region():
    art = np.full((64, 64, 4), 255, np.uint8)
    cv2.line(art, (32, 0), (32, 63), (0, 0, 0, 255), 2)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = cel_finish(image, art)
    assert len(np.unique(out[:, :28].reshape(-1, 3), axis=0)) == 1
    assert len(np.unique(out[:, 36:].reshape(-1, 3), axis=0)) == 1
    assert np.array_equal(cel_finish(image, art), out)
