"""Exact repeats: a drawing whose files are byte-identical copies of an earlier drawing's is that drawing.

Studios export every frame (holds as duplicate files), and cycles repeat drawings exactly. Such a copy is
folded into the drawing it copies (`Timing.folded`), so the frame -> drawing map is the one source of
"which frames show the same drawing" for every engine: the drawing is colored once per run, every frame
that shows it is written from that one result (byte-identical), its events say `held_from`, and chunks
cut anywhere color it the same way.

Two drawings are the same only when everything the engine reads for them is: the line-art file and each
character's mask file of that drawing (byte for byte; files with the same pixels saved differently are
not folded, the flat engine still recognises them by their ink). A keyframe on one of the copies is the
drawing's keyframe (as a keyframe on a held frame is): the painter colored that drawing, and every frame
that shows it takes the paint. Copies keyed with *different* keyframes are kept apart: each such key
starts a drawing of its own, and the unkeyed copies after it show it (a key holds until the next one).

Cost: only files whose size equals another line-art file's are looked at (a stat per file otherwise);
of those (uncompressed TGA frames all have one size), a few small blocks spread over the file are
compared first, and only files that still look alike are read whole, once: their digests (`file_digest`,
sha256) are kept in a cache that the freshness records reuse, so no file is hashed twice in a run.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from colorize.errors import IOFailure, MissingInputError
from colorize.sequences import Pattern
from colorize.timing import Timing


def file_digest(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: file not found") from None
    except OSError as error:
        raise IOFailure(f"{path}: cannot read ({error.strerror or error})") from None
    return digest.hexdigest()


class Digests:
    """File digests, each file read once (shared by the plan's repeat folding and the freshness records)."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def of(self, path: Path) -> str:
        digest = self._known.get(path)
        if digest is None:
            digest = self._known[path] = file_digest(path)
        return digest

    def known(self) -> dict[Path, str]:
        return dict(self._known)


def fold_repeats(
    timing: Timing,
    line_paths: Mapping[int, Path],
    masks: Sequence[Pattern],
    keyframes: Mapping[int, Path],
    digests: Digests,
) -> Timing:
    """`timing` with every exact repeat shown as the drawing it copies (see the module docstring).

    `line_paths`: drawing -> line art; `masks`: the characters' mask sequences (read at the drawing's
    number); `keyframes`: frame -> keyframe file (a frame the timing does not show is ignored here). A file
    that cannot be read is never folded (validation reports it)."""
    drawings = sorted(timing.drawings, key=timing.first_frame)
    sizes: dict[int, list[int]] = defaultdict(list)
    for d in drawings:
        try:
            sizes[line_paths[d].stat().st_size].append(d)
        except OSError:
            continue
    key_of: dict[int, Path] = {}
    for f, path in sorted(keyframes.items()):
        shown = timing.exposures.get(f)
        if shown is not None:
            key_of.setdefault(shown, path)
    canonical: dict[int, int] = {}
    for same_size in sizes.values():
        if len(same_size) < 2:
            continue
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        alike: dict[bytes, list[int]] = defaultdict(list)
        for d in same_size:  # (in order of first showing)
            alike[_sampled(line_paths[d])].append(d)
        for d in (d for group in alike.values() if len(group) > 1 for d in group):
            content = _content(d, line_paths[d], masks, digests)
            if content is not None:
                groups[content].append(d)
        for group in groups.values():
            canonical.update(_fold_group(group, key_of, digests))
    return timing.folded(canonical) if canonical else timing


SAMPLES, BLOCK = 16, 4096  # blocks compared before a whole file is read


def _sampled(path: Path) -> bytes:
    """A few blocks spread over the file (different drawings of one size differ in some), for a first
    comparison; a file that cannot be read gets a value of its own (never folded)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            blocks = []
            for i in range(SAMPLES):
                f.seek(max(0, (size - BLOCK) * i // (SAMPLES - 1)))
                blocks.append(f.read(BLOCK))
    except OSError:
        return str(path).encode()
    return hashlib.sha256(b"".join(blocks)).digest()


def _content(d: int, line: Path, masks: Sequence[Pattern], digests: Digests) -> tuple[str, ...] | None:
    """The digests of everything per-drawing the engine reads but the keyframe; None if a file is unreadable."""
    try:
        return (digests.of(line), *(digests.of(m.path(d)) for m in masks))
    except (MissingInputError, IOFailure):
        return None


def _fold_group(group: list[int], key_of: Mapping[int, Path], digests: Digests) -> dict[int, int]:
    """Copy -> the drawing it shows, for drawings of identical content (in order of first showing): an
    unkeyed copy shows the current drawing; a keyed one too unless the current drawing has another key."""
    folded: dict[int, int] = {}
    current, current_key = group[0], _key_digest(group[0], key_of, digests)
    for d in group[1:]:
        key = _key_digest(d, key_of, digests)
        if key is None or current_key is None or key == current_key:
            folded[d] = current
            current_key = current_key or key
        else:
            current, current_key = d, key
    return folded


def _key_digest(d: int, key_of: Mapping[int, Path], digests: Digests) -> str | None:
    path = key_of.get(d)
    if path is None:
        return None
    try:
        return digests.of(path)
    except (MissingInputError, IOFailure):
        return f"unreadable {path}"  # (never equal to another key's digest: not folded)
