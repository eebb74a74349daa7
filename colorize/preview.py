"""Preview of a rendered shot: an H.264 mp4 (imageio-ffmpeg) and a contact sheet PNG.

With a QA folder (`colorize shot --qa DIR`), each frame of the mp4 shows the result beside its QA overlay
and the contact sheet shows the frames with most unresolved / low-confidence regions.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from colorize import images
from colorize.errors import InputDataError, MissingInputError, OutputError
from colorize.qa import QA_JSON, badness, contact_sheet, grid_sheet
from colorize.sequences import find_sequence, list_frames
from colorize.shot import ShotPlan

PREVIEW_NAMES = ("preview.mp4", "contact_sheet.png")


def rendered_frames(out_dir: Path) -> dict[int, Path]:
    """The frames of a rendered shot folder, {frame: path} in frame order (the longest numbered image
    sequence there, else in its subfolders)."""
    out_dir = Path(out_dir)
    frames = find_sequence(out_dir, images.IMAGE_EXTS)
    if not frames:
        subs = [find_sequence(p, images.IMAGE_EXTS) for p in sorted(out_dir.iterdir()) if p.is_dir()]
        frames = max(subs, key=len, default={})
    if not frames:
        raise MissingInputError(f"{out_dir}: no rendered numbered frames")
    return frames


def _qa_frames(qa_dir: Path) -> dict[int, dict]:
    index = Path(qa_dir) / QA_JSON
    if not index.is_file():
        raise MissingInputError(f"{index}: not found (make a QA folder with `colorize shot --qa DIR`)")
    try:
        return {int(f): v for f, v in json.loads(index.read_text())["frames"].items()}
    except (ValueError, KeyError, TypeError):
        raise InputDataError(f"{index}: not a QA index written by colorize") from None


def write_preview(
    out_dir: Path,
    fps: float = 24.0,
    max_width: int = 1280,
    sheet_frames: int = 12,
    qa_dir: Path | None = None,
) -> list[Path]:
    """Write OUT_DIR/preview.mp4 and OUT_DIR/contact_sheet.png; returns their paths."""
    import imageio.v2 as imageio  # lazy: only the preview needs ffmpeg

    out_dir = Path(out_dir)
    frames = rendered_frames(out_dir)
    qa = _qa_frames(qa_dir) if qa_dir is not None else {}
    order = list(frames)
    h, w = images.image_size(frames[order[0]])
    width = 2 * w if qa else w
    scale = min(1.0, max_width / width)
    # H.264 in yuv420p needs even sizes.
    size = (max(2, int(width * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
    if qa:
        ranked = sorted((f for f in order if f in qa), key=lambda f: (tuple(-x for x in badness(qa[f])), f))
        picks = set(ranked[:sheet_frames])
    else:
        idx = np.linspace(0, len(order) - 1, min(sheet_frames, len(order))).round().astype(int)
        picks = {order[i] for i in idx}
    mp4 = out_dir / PREVIEW_NAMES[0]
    sheet_imgs: list[np.ndarray] = []
    sheet_names: list[str] = []
    try:
        writer = imageio.get_writer(str(mp4), fps=fps, codec="libx264", quality=7, macro_block_size=2)
    except Exception as error:  # noqa: BLE001 - ffmpeg missing or folder unwritable: one line, no traceback
        raise OutputError(f"{mp4}: cannot start the video writer ({error})") from None
    with writer:
        for f in order:
            rgb = images.read_rgb(frames[f])
            if rgb.shape[:2] != (h, w):
                raise InputDataError(f"{frames[f]}: size {rgb.shape[1]}x{rgb.shape[0]} differs from {w}x{h}")
            overlay = qa.get(f, {}).get("overlay")
            if qa_dir is not None and qa:
                side = images.read_rgb(Path(qa_dir) / overlay)[:h] if overlay else np.full_like(rgb, 128)
                side = (
                    cv2.resize(side, (w, h), interpolation=cv2.INTER_AREA)
                    if side.shape[:2] != (h, w)
                    else side
                )
                rgb = np.concatenate([rgb, side], axis=1)
            writer.append_data(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            if f in picks:
                sheet_imgs.append(rgb)
                u, low = badness(qa.get(f, {}))
                sheet_names.append(f"{frames[f].name}" + (f" ({u} unresolved, {low} low)" if qa else ""))
    sheet = out_dir / PREVIEW_NAMES[1]
    images.write_image(
        sheet, grid_sheet(sheet_imgs, sheet_names, cols=2 if qa else 4, tile=640 if qa else 320)
    )
    return [mp4, sheet]


KEYS_SHEET = "keys_sheet.png"


def write_keys_sheet(plan: ShotPlan, tile: int = 360) -> Path:
    """A contact sheet of a shot's keys for review (`colorize preview DIR --keys`): the references on the
    first row, then each keyframe beside its line art, whose it is in the caption (`colorize keys` or a
    painter). Written beside the manifest as keys_sheet.png; returns its path."""
    from colorize.keyframes import keyframe_pattern, written_by_keys

    pattern = keyframe_pattern(plan)
    keys = list_frames(pattern, "keyframes") if pattern.folder.is_dir() else {}
    if not keys:
        raise MissingInputError(
            f"{pattern.folder / pattern.text.split('/')[-1]}: no keyframes (run `colorize keys`)"
        )
    refs = [(c.name, c.reference) for c in plan.characters]
    refs += [("background", plan.background)] if plan.background else []
    rows: list[list[np.ndarray | None]] = [[images.read_rgb(path) for _, path in refs]] if refs else []
    labels = [f"references: {', '.join(name for name, _ in refs)}"] if refs else []
    for frame, path in sorted(keys.items()):
        if frame not in plan.lineart_paths:
            continue
        rows.append([images.read_rgba(plan.lineart_paths[frame]), images.read_rgba(path)])
        whose = "colorize keys" if written_by_keys(path) else "painter"
        labels.append(f"key {frame} ({whose}): line art | key")
    sheet = contact_sheet(rows, labels, tile=tile)
    out = plan.manifest_path.parent / KEYS_SHEET
    images.write_image(out, sheet)
    return out
