"""Evaluation metrics, contact sheets, preview and the real-data protocols (skipped without the data)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize.evaluate import contact_sheet, psnr, region_accuracy, segmentation_recovery, ssim
from colorize.settings import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "realdata"


def test_metrics_on_toy_images():
    ids = np.zeros((20, 20), np.int64)
    ids[:, :10], ids[:, 11:] = 1, 2
    gt = np.zeros((20, 20, 3), np.uint8)
    gt[ids == 1] = (255, 0, 0)
    gt[ids == 2] = (0, 255, 0)
    res = gt.copy()
    assert region_accuracy(res, gt, ids)[0] == 1.0
    assert psnr(res, gt) == float("inf") and abs(ssim(res, gt) - 1) < 1e-9
    res[ids == 2] = (0, 0, 255)
    acc, wrong = region_accuracy(res, gt, ids)
    assert acc == 0.5 and wrong[0, 15] and not wrong[0, 5]
    assert segmentation_recovery(ids, ids) == (2, 2)
    sheet = contact_sheet([[gt, None, res]], ["row"], tile=40)
    assert sheet.shape[1] == 3 * 44 and sheet.dtype == np.uint8


def test_preview_writes_mp4_and_sheet(tmp_path):
    from colorize.preview import write_preview

    for i in range(3):
        img = np.full((64, 96, 3), 40 * i, np.uint8)
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), img)
    mp4, sheet = write_preview(tmp_path, fps=4)
    assert mp4.stat().st_size > 0 and cv2.imread(str(sheet)) is not None


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "pbc0242").is_dir(), reason=f"{REAL / 'pbc0242'} not present")
def test_pbc0242_segmentation_and_propagation(tmp_path):
    from colorize.evaluate import eval_pbc
    from colorize.settings import FlatSettings

    report = eval_pbc(REAL / "pbc0242", tmp_path, Settings(flat=FlatSettings(min_region=1)))
    recovered = report.figures["a_regions_recovered"]
    rec, total = (int(v) for v in recovered.split()[0].split("/"))
    assert rec / total >= 0.95
    assert float(report.figures["b_propagated_region_accuracy_regions_ge12px"].split()[0]) >= 95
