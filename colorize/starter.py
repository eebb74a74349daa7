"""`colorize init`: guess a starter refs.yaml from the files of a shot folder."""

from __future__ import annotations

import re
from pathlib import Path

import fileseq
import yaml

from colorize.errors import MissingInputError, OutputError
from colorize.images import IMAGE_EXTS
from colorize.sequences import PAD_STYLE

# Folder names line art goes by, compared without case, spaces, `_` or `-`: English names, and the
# Japanese studio words (douga 動画: clean inbetween drawings, genga 原画: key drawings, sen / senga 線画:
# line drawing, LO: layout).
LINE_DIRS = (
    "lineart",
    "line",
    "lines",
    "sketch",
    "sketches",
    "ink",
    "cel",
    "cels",
    "douga",
    "動画",
    "sen",
    "senga",
    "線画",
    "genga",
    "原画",
    "lo",
    "layout",
)
KEY_DIRS = ("keys", "keyframes", "key", "colorkeys", "colorkey", "color_keys")
READ_EXTS = (*IMAGE_EXTS, ".tga")  # what line art may be (Pillow reads TGA); outputs: IMAGE_EXTS


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _sequences(folder: Path, single: bool = True) -> list[fileseq.FileSequence]:
    """Numbered image sequences in `folder` (a one-frame shot counts: one numbered file), longest first."""
    if not folder.is_dir():
        return []
    found = fileseq.findSequencesOnDisk(str(folder), pad_style=PAD_STYLE)
    seqs = [
        s
        for s in found
        if s.extension().lower() in READ_EXTS and s.zfill() and len(_numbers(s)) >= (1 if single else 2)
    ]
    seqs.sort(key=lambda s: (-len(_numbers(s)), s.basename()))
    return seqs


def _numbers(seq: fileseq.FileSequence) -> list[int]:
    """The frame numbers of a sequence found on disk, sorted."""
    return sorted(int(f) for f in seq.frameSet() or ())


def _pattern(seq: fileseq.FileSequence) -> str:
    return seq.basename() + "#" * seq.zfill() + seq.extension()


def _subfolders(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Subfolders of `folder` whose names are one of `names` (any case, spaces, `_`, `-`), in that order."""
    if not folder.is_dir():
        return []
    wanted = {_norm(n): i for i, n in enumerate(names)}
    found = [p for p in folder.iterdir() if p.is_dir() and _norm(p.name) in wanted]
    return sorted(found, key=lambda p: (wanted[_norm(p.name)], p.name))


def _find_lineart(shot_dir: Path) -> tuple[str, fileseq.FileSequence]:
    """(pattern relative to the shot, its sequence) of the line art: a line-art folder's longest sequence
    (or that of its first cel-layer subfolder: `line/A/0001.png`), else the shot folder's own."""
    for folder in [*_subfolders(shot_dir, LINE_DIRS), shot_dir]:
        candidates = [folder] + (
            sorted(p for p in folder.iterdir() if p.is_dir()) if folder != shot_dir else []
        )
        for where in candidates:
            seqs = _sequences(where, single=where != shot_dir)
            if seqs:
                rel = where.relative_to(shot_dir).as_posix()
                return (_pattern(seqs[0]) if rel == "." else f"{rel}/{_pattern(seqs[0])}"), seqs[0]
    raise MissingInputError(
        f"{shot_dir}: no numbered line-art sequence found (looked in folders named {', '.join(LINE_DIRS[:8])}, "
        "…, and the folder)"
    )


def character_name(stem: str) -> str:
    """A valid character name from a file or folder name: `Hero Girl` -> `Hero_Girl`."""
    name = re.sub(r"[^0-9A-Za-z_-]+", "_", stem.strip()).strip("_")
    return name or "character"


def _timesheet(shot_dir: Path, lineart: str) -> dict:
    """`timesheet` (and `timesheet_layer`) keys for a timesheet beside the line art whose drawings the
    line art has; nothing when there is none (or it does not fit: `check` would refuse it)."""
    from colorize.errors import ColorizeError
    from colorize.sequences import list_frames, parse_pattern
    from colorize.timing import parse_xdts, read_timesheet

    sheets = sorted(shot_dir.glob("*.xdts")) + sorted(shot_dir.glob("*.XDTS"))
    if not sheets:
        return {}
    layer_hint = Path(lineart).parent.name
    try:
        drawings = set(list_frames(parse_pattern(lineart, shot_dir), "lineart"))
        layer = None
        try:
            parse_xdts(sheets[0].read_text(encoding="utf-8-sig"), None, sheets[0].name)
        except ColorizeError:
            layer = layer_hint  # several layers: the one named like the line-art folder (line/A -> A)
        timing = read_timesheet(sheets[0], layer)
    except ColorizeError:
        return {}
    if not set(timing.drawings) <= drawings:
        return {}
    keys: dict = {"timesheet": sheets[0].name}
    if layer is not None:
        keys["timesheet_layer"] = layer
    return keys


def starter_manifest(shot_dir: Path) -> dict:
    """The manifest `colorize init` would write, as a dict."""
    if not shot_dir.is_dir():
        raise MissingInputError(f"{shot_dir}: shot folder not found")
    lineart, seq = _find_lineart(shot_dir)
    out_ext = seq.extension() if seq.extension().lower() in IMAGE_EXTS else ".png"
    manifest: dict = {
        "version": 1,
        "lineart": lineart,
        "output": "color/" + Path(lineart).name.removesuffix(seq.extension()) + out_ext,
    }
    manifest.update(_timesheet(shot_dir, lineart))
    numbers = _numbers(seq)
    if "timesheet" not in manifest and len(numbers) != numbers[-1] - numbers[0] + 1:
        manifest["timing"] = "hold"  # numbers missing from the line art: held drawings
    for folder in _subfolders(shot_dir, KEY_DIRS):
        seqs = _sequences(folder)
        if seqs:
            manifest["keyframes"] = f"{folder.name}/{_pattern(seqs[0])}"
            break
    refs = shot_dir / "refs"
    ref_files = (
        {p.stem: p for p in sorted(refs.glob("*")) if p.suffix.lower() in READ_EXTS} if refs.is_dir() else {}
    )
    masks = shot_dir / "masks"
    mask_dirs = {p.name: p for p in sorted(masks.iterdir()) if p.is_dir()} if masks.is_dir() else {}
    characters: dict = {}
    for stem in [*mask_dirs, *(n for n in ref_files if n not in mask_dirs)]:
        if _norm(stem) in ("bg", "background"):
            continue
        name = character_name(stem)
        while name in characters:
            name += "_"
        ref = ref_files.get(stem)
        entry: dict = {"reference": f"refs/{ref.name}" if ref else f"refs/{stem}.png"}
        if stem in mask_dirs:
            seqs = _sequences(mask_dirs[stem])
            if seqs:
                entry["mask"] = f"masks/{stem}/{_pattern(seqs[0])}"
        characters[name] = entry
    if characters:
        manifest["characters"] = characters
    for stem, ref in ref_files.items():
        if _norm(stem) in ("bg", "background"):
            manifest["background"] = {"reference": f"refs/{ref.name}"}
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
