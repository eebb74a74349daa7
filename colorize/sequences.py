"""Numbered frame sequences on disk: patterns (`####`, `@@@`, `%04d`), listing, frame ranges, chunks.

Every sequence operation goes through fileseq, the library the field uses: parsing patterns, formatting a
frame's file name, range text, gaps.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fileseq

from colorize.errors import InputDataError, MissingInputError, UsageError

# `####` means four digits (the Nuke/After Effects reading), not fileseq's default of four per `#`.
PAD_STYLE = fileseq.PAD_STYLE_HASH1


@dataclass(frozen=True)
class Pattern:
    """A frame-sequence pattern: `folder/name.####.ext`, or a single file when it has no padding."""

    text: str  # as written (for messages)
    folder: Path
    head: str
    tail: str
    width: int  # digits of zero padding; 0 = a single file, not a sequence

    @property
    def is_sequence(self) -> bool:
        return self.width > 0

    @functools.cached_property
    def _sequence(self) -> fileseq.FileSequence:
        # The file name only: the folder may hold characters fileseq would read as padding.
        padding = fileseq.getPaddingChars(self.width, pad_style=PAD_STYLE)
        return fileseq.FileSequence(self.head + padding + self.tail, pad_style=PAD_STYLE)

    def path(self, frame: int | None = None) -> Path:
        """The file of `frame` (a single-file pattern: its one file, whatever the frame)."""
        if not self.is_sequence:
            return self.folder / (self.head + self.tail)
        if frame is None:
            raise ValueError(f"pattern {self.text!r} is a sequence: path() needs a frame number")
        return self.folder / self._sequence.frame(frame)

    def with_folder(self, folder: Path) -> Pattern:
        """The same file names in another folder (`--out`)."""
        name = self.head + fileseq.getPaddingChars(self.width, pad_style=PAD_STYLE) + self.tail
        return Pattern(str(folder / name), folder, self.head, self.tail, self.width)


def parse_pattern(text: str, base: Path) -> Pattern:
    """Parse a pattern relative to `base` (the manifest's folder)."""
    seq = fileseq.FileSequence(text, pad_style=PAD_STYLE)
    folder = Path(seq.dirname() or ".")
    folder = folder if folder.is_absolute() else base / folder
    if seq.frameSet() is not None or not seq.padding():
        # No padding characters: a single file ("refs/hero.png" or "masks/hero.0001.png" taken literally).
        name = Path(text).name
        return Pattern(text, folder, name, "", 0)
    return Pattern(text, folder, seq.basename(), seq.extension(), seq.zfill())


def list_frames(pattern: Pattern, what: str) -> dict[int, Path]:
    """Frames of a sequence present on disk: {frame: path}. Duplicate frame numbers are an error."""
    if not pattern.folder.is_dir():
        raise MissingInputError(f"{pattern.folder}: folder of {what} sequence {pattern.text!r} not found")
    # fileseq groups the folder's names into sequences, one per padding: the same frame written with two
    # paddings lands in two groups (a duplicate), a frame of another width in its own (not padded).
    names = [entry.name for entry in pattern.folder.iterdir()]
    hits: dict[int, list[tuple[Path, bool]]] = {}
    for seq in fileseq.findSequencesInList(names, pad_style=PAD_STYLE):
        frames = seq.frameSet()
        if seq.basename() != pattern.head or seq.extension() != pattern.tail or frames is None:
            continue
        for number in frames:
            frame, file = int(number), seq.frame(number)
            hits.setdefault(frame, []).append((pattern.folder / file, pattern.path(frame).name == file))
    found: dict[int, Path] = {}
    for frame, entries in sorted(hits.items()):
        entries.sort()
        if len(entries) > 1:
            others = ", ".join(e.name for e, _ in entries[1:])
            raise InputDataError(
                f"{entries[0][0]}: frame {frame} appears twice in {what} sequence {pattern.text!r} "
                f"(also as {others}); keep one"
            )
        entry, padded = entries[0]
        if not padded:
            raise InputDataError(
                f"{entry}: frame {frame} is not padded to {pattern.width} digits as {what} pattern "
                f"{pattern.text!r} says; rename it or fix the pattern"
            )
        found[frame] = entry
    return found


def parse_frame_range(text: str) -> list[int]:
    """Frames of a fileseq range such as `1001-1048`, `1001-1048x2`, `1,3,5-7`; sorted, unique."""
    try:
        frames = fileseq.FrameSet(text.strip())
    except fileseq.MaxSizeException:
        raise UsageError(
            f"--frames {text!r}: too many frames (at most {fileseq.constants.MAX_FRAME_SIZE:,})"
        ) from None
    except (fileseq.ParseException, ValueError):
        raise UsageError(
            f"--frames {text!r}: not a frame range (examples: 1001-1048, 1001-1048x2, 1001,1005,1010-1012)"
        ) from None
    out = sorted({int(f) for f in frames})
    if not out:
        raise UsageError(f"--frames {text!r}: the range selects no frame")
    return out


def frame_range_text(frames: Sequence[int]) -> str:
    """Compact fileseq text for frame numbers (`1001-1024`, `1001-1010x3`); empty for none."""
    return str(fileseq.FrameSet(sorted(frames))) if len(frames) else ""


def gaps(frames: Sequence[int]) -> list[int]:
    """Frame numbers missing between the first and last frame (step 1)."""
    if not len(frames):
        return []
    missing = fileseq.FrameSet(sorted(frames)).invertedFrameRange()
    return [int(f) for f in fileseq.FrameSet(missing)] if missing else []


def find_sequence(folder: Path, extensions: tuple[str, ...]) -> dict[int, Path]:
    """The longest numbered frame sequence in `folder` with one of `extensions`: {frame: path}, in frame
    order (fileseq: frame 10000 of a `####` sequence comes after 9999). Empty when there is none."""
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: folder not found")
    found = [
        s
        for s in fileseq.findSequencesOnDisk(str(folder), pad_style=PAD_STYLE)
        if s.extension().lower() in extensions and s.frameSet() is not None
    ]
    if not found:
        return {}
    best = max(found, key=lambda s: (len(s.frameSet() or ()), s.basename()))
    return {int(f): Path(best.frame(f)) for f in best.frameSet() or ()}
