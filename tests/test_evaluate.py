"""Evaluation: metrics (SSIM against scikit-image), cases through the real runner, preview, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synth import finished, make_frame, region_map

from colorize import images
from colorize.evaluate import evaluate_case
from colorize.evaluate_cases import region_truth, write_case
from colorize.metrics import alpha_iou, pixel_accuracy, psnr, region_accuracy, segmentation_recovery, ssim
from colorize.qa import contact_sheet

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "realdata"


def test_metrics_on_toy_images():
    ids = np.zeros((20, 20), np.int64)
    ids[:, :10], ids[:, 11:] = 1, 2
    gt = np.zeros((20, 20, 4), np.uint8)
    gt[ids == 1] = (255, 0, 0, 255)
    gt[ids == 2] = (0, 255, 0, 255)
    res = gt.copy()
    assert region_accuracy(res, gt, ids)[0] == 1.0 and pixel_accuracy(res, gt, ids > 0) == 1.0
    assert psnr(res, gt) == float("inf") and alpha_iou(res, gt) == 1.0
    res[ids == 2] = (0, 0, 255, 255)
    acc, wrong = region_accuracy(res, gt, ids)
    assert acc == 0.5 and wrong[0, 15] and not wrong[0, 5]
    assert pixel_accuracy(res, gt, ids > 0) == pytest.approx(10 / 19)
    # A region that should be transparent but came out opaque is wrong, whatever its RGB.
    clear = gt.copy()
    clear[ids == 2] = (7, 7, 7, 0)
    res = gt.copy()
    res[ids == 2, 3] = 255
    assert region_accuracy(res, clear, ids)[0] == 0.5 and alpha_iou(res, clear) == pytest.approx(10 / 19)
    res[ids == 2] = (99, 1, 1, 0)  # transparent with another RGB: right
    assert region_accuracy(res, clear, ids)[0] == 1.0 and pixel_accuracy(res, clear, ids > 0) == 1.0
    assert segmentation_recovery(ids, ids) == (2, 2)
    # Unscored pixels (a truth no engine paints) count in no figure.
    res = gt.copy()
    res[0, 5] = (9, 9, 9, 0)
    scored = np.ones(ids.shape, bool)
    assert psnr(res, gt) < 40 and alpha_iou(res, gt) < 1
    scored[0, 5] = False
    assert psnr(res, gt, scored) == float("inf") and alpha_iou(res, gt, scored) == 1.0
    sheet = contact_sheet([[gt, None, res[..., :3]]], ["row"], tile=40)
    assert sheet.shape[1] == 3 * 44 and sheet.dtype == np.uint8


def test_region_truth_takes_colors_from_the_regions_and_lines_from_the_line_art():
    # Two truth regions (left red, right blue) parted by an old line at column 10 (id 0); the new drawing
    # has its black line at column 12 and a red trace line at column 5: by construction the old line's
    # pixels are the nearest region's color, the new line is black, the trace line shows the paint.
    ids = np.ones((8, 20), np.int64)
    ids[:, 11:] = 2
    ids[:, 10] = 0
    paint = np.zeros((8, 20, 4), np.uint8)
    paint[..., 3] = 255
    paint[ids == 1, :3] = (200, 0, 0)
    paint[ids == 2, :3] = (0, 0, 200)
    paint[ids == 0, :3] = 0  # the old line: black in the finished frame
    line = np.zeros((8, 20, 4), np.uint8)
    line[:, 12, 3] = 255
    line[:, 5] = (255, 0, 0, 255)
    out = region_truth(paint, ids, line)
    assert (out[:, 12, :3] == 0).all()
    assert (out[:, 5, :3] == (200, 0, 0)).all() and (out[:, 5, 3] == 255).all()
    assert (out[:, :10, :3] == (200, 0, 0)).all() and (out[:, 13:, :3] == (0, 0, 200)).all()
    assert (out[:, 10, :3] != 0).any(axis=-1).all()  # no old line left: a region's color, red or blue
    assert {tuple(c) for c in out[:, 10, :3]} <= {(200, 0, 0), (0, 0, 200)}
    # Opaque line art on white paper: the lines multiply (a gray line over blue darkens it by half).
    opaque = np.full((8, 20, 4), 255, np.uint8)
    opaque[:, 12, :3] = 128
    assert (region_truth(paint, ids, opaque)[:, 12, :3] == (0, 0, 100)).all()


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 64, 3), np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    gray = [np.asarray(x @ [0.299, 0.587, 0.114]) for x in (a, b)]
    ref = structural_similarity(
        *gray, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert abs(ssim(a, b) - ref) < 2e-3 and abs(ssim(a, a) - 1) < 1e-9


def _case(tmp_path: Path, motion: list[tuple[float, float, float]], keys=(0,), size=(90, 160)) -> Path:
    h, w = size
    frames = [make_frame(h, w, shift=(dx, dy), angle=a, dots=4) for dx, dy, a in motion]
    return write_case(
        tmp_path / "case",
        [f.lineart for f in frames],
        {k: finished(frames[k]) for k in keys},
        {i: finished(f) for i, f in enumerate(frames)},
        {i: region_map(f) for i, f in enumerate(frames)},
        "test case",
    )


def test_case_runs_through_the_runner_with_baseline_and_chunks(tmp_path):
    # A drawing moving far and turning, then holding: repeats byte-identical, chunks equal whole runs.
    motion = [(0, 0, 0), (12, 4, 3), (24, 8, 6), (36, 12, 9), (36, 12, 9)]
    case = _case(tmp_path, motion)
    # A truth patch no engine could paint, marked unscored: it counts in no figure.
    gt = images.read_image(case / "gt" / "f.0003.png")
    gt[10:60, 20:120, :3] = (255, 0, 255)
    images.write_image(case / "gt" / "f.0003.png", gt)
    unscored = np.zeros(gt.shape[:2], np.uint8)
    unscored[10:60, 20:120] = 255
    (case / "unscored").mkdir()
    images.write_image(case / "unscored" / "f.0003.png", unscored)
    report = evaluate_case(case, tmp_path / "out", chunks=2)
    f = report.figures
    row = next(r for r in report.frames if r["frame"] == 3)
    assert row["engine_psnr"] > 20 and row["engine_region_acc"] >= 0.95
    assert f["frames"] == 5 and f["scored"] == 4
    assert f["repeats"] == 1 and f["repeats_not_identical"] == 0
    assert f["chunks_identical"] is True
    assert f["engine_region_acc"] > f["baseline_region_acc"]
    assert f["engine_region_acc"] >= 0.95 and f["unresolved"] == 0
    assert (tmp_path / "out" / "engine" / "f.0005.png").is_file() and report.sheets[0].is_file()


def test_preview_orders_frames_by_number_and_shows_qa(tmp_path):
    from colorize.preview import write_preview
    from colorize.qa import QAWriter

    out = tmp_path / "color"
    out.mkdir()
    for f in (9998, 9999, 10000):
        images.write_image(out / f"s.{f}.png", np.full((64, 96, 3), f % 7 * 30, np.uint8))
    qa = QAWriter(tmp_path / "qa")
    for f in (9998, 9999, 10000):
        bad = 3 if f == 10000 else 0
        qa.add(f, out / f"s.{f}.png", np.full((70, 96, 3), 200, np.uint8), {"unresolved": bad, "regions": 5})
    written = qa.finish()
    assert [p.name for p in written] == ["qa.json", "worst_frames.png"]
    index = json.loads((tmp_path / "qa" / "qa.json").read_text())
    assert index["frames"]["10000"]["unresolved"] == 3
    assert index["check_first"] == [10000]  # the frames a painter must look at, worst first
    mp4, sheet = write_preview(out, fps=4, qa_dir=tmp_path / "qa")
    assert mp4.stat().st_size > 0
    assert images.read_rgb(sheet).shape[1] > 2 * 96  # frames beside their overlays


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "pbc0242").is_dir(), reason=f"{REAL / 'pbc0242'} not present")
def test_pbc0242_large_move(tmp_path):
    from colorize.evaluate_cases import eval_pbc

    figures, report = eval_pbc(REAL / "pbc0242", tmp_path, shift=(40.0, 0.0), angle=3.0)
    rec, total = (int(v) for v in figures["regions_recovered"].split()[0].split("/"))
    assert rec / total >= 0.95
    assert report.figures["engine_region_acc"] >= 0.97
    assert report.figures["engine_alpha_iou"] >= 0.98  # the transparent background stays transparent


def test_a_palette_case_scores_the_index_layer_ids(tmp_path):
    from colorize.colormodel import extract, palette_yaml
    from colorize.evaluate import table
    from colorize.metrics import palette_id_accuracy

    frames = [make_frame(90, 160, shift=(dx, dy), angle=a, dots=4) for dx, dy, a in [(0, 0, 0), (8, 3, 2)]]
    key = finished(frames[0])
    case = write_case(
        tmp_path / "case",
        [f.lineart for f in frames],
        {0: key},
        {i: finished(f) for i, f in enumerate(frames)},
        {i: region_map(f) for i, f in enumerate(frames)},
        "palette case",
        palette=palette_yaml(extract([images.to_uint8(key)]), ["key"]),
    )
    report = evaluate_case(case, tmp_path / "out")
    f = report.figures
    # Flat colours, one palette colour each: a region's id is right exactly where its colour is.
    assert f["engine_palette_id_acc"] == f["engine_region_acc"] >= 0.9
    assert "| palette ids |" in table(
        [report]
    ) and f"{report.figures['engine_palette_id_acc']:.3f} |" in table([report])
    ids = np.array([[1, 1, 2, 2]] * 4)
    truth = np.array([[5, 5, 6, 6]] * 4, np.uint16)
    assert palette_id_accuracy(truth, truth, ids, min_area=1) == 1.0
    wrong = truth.copy()
    wrong[:, 2:] = 5
    assert palette_id_accuracy(wrong, truth, ids, min_area=1) == 0.5


def test_flag_counts_are_recall_and_precision_over_regions():
    from colorize.metrics import flag_counts

    ids = np.zeros((10, 40), np.int64)
    for r in range(4):  # four regions of 10x10
        ids[:, 10 * r : 10 * r + 10] = r + 1
    wrong = (ids == 1) | (ids == 2)
    flagged = (ids == 2) | (ids == 3)
    flagged[:, 10:14] = False  # 60 % of region 2 still flagged: it counts
    assert flag_counts(wrong, flagged, ids, 12) == {"wrong": 2, "wrong_flagged": 1, "flagged": 2}
    flagged[:, 10:16] = False  # 40 %: no longer
    assert flag_counts(wrong, flagged, ids, 12) == {"wrong": 2, "wrong_flagged": 0, "flagged": 1}
