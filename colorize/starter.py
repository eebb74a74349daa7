"""`colorize init`: guess a starter refs.yaml from the files of a shot folder."""

from __future__ import annotations

from pathlib import Path

import fileseq
import yaml

from colorize.errors import MissingInputError, OutputError
from colorize.images import IMAGE_EXTS
from colorize.sequences import PAD_STYLE

LINE_DIRS = ("lineart", "line", "lines", "sketch", "sketches", "ink")
KEY_DIRS = ("keys", "keyframes", "key", "color_keys")


def _sequences(folder: Path) -> list[str]:
    """Frame-sequence patterns (relative to the folder's parent use) found in `folder`, longest first."""
    if not folder.is_dir():
        return []
    found = fileseq.findSequencesOnDisk(str(folder), pad_style=PAD_STYLE)
    seqs = [s for s in found if s.extension().lower() in IMAGE_EXTS and len(s.frameSet() or ()) > 1]
    seqs.sort(key=lambda s: -len(s.frameSet() or ()))
    return [s.basename() + "#" * s.zfill() + s.extension() for s in seqs]


def _single_keyed(folder: Path) -> list[str]:
    """Like _sequences, but also accepts a sequence of one frame (a single colored keyframe)."""
    if not folder.is_dir():
        return []
    found = fileseq.findSequencesOnDisk(str(folder), pad_style=PAD_STYLE)
    return [
        s.basename() + "#" * s.zfill() + s.extension()
        for s in found
        if s.extension().lower() in IMAGE_EXTS and s.frameSet() and s.zfill()
    ]


def starter_manifest(shot_dir: Path) -> dict:
    """The manifest `colorize init` would write, as a dict."""
    if not shot_dir.is_dir():
        raise MissingInputError(f"{shot_dir}: shot folder not found")
    lineart = None
    for name in (*LINE_DIRS, "."):
        seqs = _sequences(shot_dir / name)
        if seqs:
            lineart = seqs[0] if name == "." else f"{name}/{seqs[0]}"
            break
    if lineart is None:
        raise MissingInputError(
            f"{shot_dir}: no numbered line-art sequence found (looked in {', '.join(LINE_DIRS)} and the folder)"
        )
    manifest: dict = {"version": 1, "lineart": lineart, "output": "color/" + Path(lineart).name}
    for name in KEY_DIRS:
        seqs = _single_keyed(shot_dir / name)
        if seqs:
            manifest["keyframes"] = f"{name}/{seqs[0]}"
            break
    refs = shot_dir / "refs"
    ref_files = (
        {p.stem: p for p in sorted(refs.glob("*")) if p.suffix.lower() in IMAGE_EXTS} if refs.is_dir() else {}
    )
    characters: dict = {}
    masks = shot_dir / "masks"
    names = sorted(p.name for p in masks.iterdir() if p.is_dir()) if masks.is_dir() else []
    names += [n for n in ref_files if n not in names and n not in ("bg", "background")]
    for name in names:
        entry: dict = {
            "reference": f"refs/{ref_files[name].name}" if name in ref_files else f"refs/{name}.png"
        }
        seqs = _single_keyed(masks / name)
        if seqs:
            entry["mask"] = f"masks/{name}/{seqs[0]}"
        characters[name] = entry
    if characters:
        manifest["characters"] = characters
    for bg in ("bg", "background"):
        if bg in ref_files:
            manifest["background"] = {"reference": f"refs/{ref_files[bg].name}"}
    manifest.update({"engine": "auto", "preset": "default", "seed": 0})
    return manifest


def write_starter_manifest(shot_dir: Path, force: bool = False) -> Path:
    path = shot_dir / "refs.yaml"
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists (use --force to replace it)")
    manifest = starter_manifest(shot_dir)
    text = "# Written by `colorize init`; check it with `colorize check`.\n" + yaml.safe_dump(
        manifest, sort_keys=False
    )
    path.write_text(text, encoding="utf-8")
    return path
