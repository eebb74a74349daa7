"""Preview of a rendered shot: an H.264 mp4 (imageio-ffmpeg) and a contact sheet PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from colorize.errors import InputDataError, MissingInputError, OutputError
from colorize.evaluate import contact_sheet, read_image, write_png

PREVIEW_NAMES = ("preview.mp4", "contact_sheet.png")


def rendered_frames(out_dir: Path) -> list[Path]:
    """The frame PNGs of a rendered shot folder (its own preview files excluded), in name order."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise MissingInputError(f"{out_dir}: folder not found")
    frames = sorted(p for p in out_dir.glob("*.png") if p.name not in PREVIEW_NAMES)
    if not frames:
        frames = sorted(p for p in out_dir.glob("*/*.png") if p.name not in PREVIEW_NAMES)
    if not frames:
        raise MissingInputError(f"{out_dir}: no rendered PNG frames")
    return frames


def write_preview(
    out_dir: Path, fps: float = 24.0, max_width: int = 1280, sheet_frames: int = 12
) -> list[Path]:
    """Write OUT_DIR/preview.mp4 and OUT_DIR/contact_sheet.png; returns their paths."""
    import imageio.v2 as imageio  # lazy: only the preview needs ffmpeg

    out_dir = Path(out_dir)
    frames = rendered_frames(out_dir)
    first = read_image(frames[0])
    h, w = first.shape[:2]
    scale = min(1.0, max_width / w)
    # H.264 in yuv420p needs even sizes.
    size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
    mp4 = out_dir / PREVIEW_NAMES[0]
    picks = set(np.linspace(0, len(frames) - 1, min(sheet_frames, len(frames))).round().astype(int).tolist())
    sheet_imgs: list[np.ndarray] = []
    sheet_names: list[str] = []
    try:
        writer = imageio.get_writer(str(mp4), fps=fps, codec="libx264", quality=7, macro_block_size=2)
    except Exception as error:  # noqa: BLE001 - ffmpeg missing or folder unwritable: one line, no traceback
        raise OutputError(f"{mp4}: cannot start the video writer ({error})") from None
    with writer:
        for i, path in enumerate(frames):
            rgba = read_image(path)
            if rgba.shape[:2] != (h, w):
                raise InputDataError(f"{path}: size {rgba.shape[1]}x{rgba.shape[0]} differs from {w}x{h}")
            rgb = np.ascontiguousarray(rgba[..., :3])
            writer.append_data(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            if i in picks:
                sheet_imgs.append(rgb)
                sheet_names.append(path.name)
    cols = 4
    rows = [
        sheet_imgs[i : i + cols] + [None] * (cols - len(sheet_imgs[i : i + cols]))
        for i in range(0, len(sheet_imgs), cols)
    ]
    captions = [", ".join(sheet_names[i : i + cols]) for i in range(0, len(sheet_names), cols)]
    sheet = out_dir / PREVIEW_NAMES[1]
    write_png(sheet, contact_sheet(rows, captions, tile=320))
    return [mp4, sheet]
