"""Timing: which drawing each output frame shows (the exposure sheet), as plain data.

Animation is timed on an exposure sheet: a drawing is shown for two or three frames ("on twos", "on
threes"), held for longer, repeated in a cycle. Line art is stored by drawing, and the timing says which
drawing each frame shows:

- `strict` (the default): one line-art file per frame, no gaps; frame f shows drawing f.
- `hold`: a missing frame number is a hold: it shows the last drawing before it. Frames run from the
  first line-art frame to the last one (or to `timing_end` when the shot ends on a hold).
- a timesheet (`timesheet: FILE.xdts` or a CSV of `frame,drawing` lines): the sheet decides the frames,
  the drawing each shows, and which are blank (an empty cel: `None`).

A drawing is named by its line-art number (the file `lineart` names with that number). The shot plan
builds one `Timing` per run; the engines color drawings, and the runner writes every frame that shows a
drawing from that drawing's one result.

XDTS (the Exchange Digital Time Sheet of CELSYS and TOEI ANIMATION, written by CLIP STUDIO PAINT and
OpenToonz), as those programs write it: the first line is the identifier `exchangeDigitalTimeSheet Save
Data`, the rest is JSON. `timeTables[0]` is the sheet (`duration`: its length in frames); its field with
`fieldId` 0 holds the cel tracks, each `{"trackNo": N, "frames": [{"frame": F, "data": [{"values": [V]}]}]}`
where frame numbers count from 0 and only the frames where the cel changes are listed (a cel holds until
the next entry). V is a drawing number (`"3"`; a letter suffix such as `"3a"` is not a number colorize can
name files by), `SYMBOL_NULL_CELL` (an empty cel), `SYMBOL_TICK_1` / `SYMBOL_TICK_2` (inbetween marks on
a held cel) or `SYMBOL_HYPHEN` (the cel goes on); a track whose last entry is not empty holds its drawing to
the end of the sheet. The layer names are `timeTableHeaders[fieldId 0].names`, indexed by `trackNo`.
Sheet frame 0 is output frame 1 (the numbers the sheet shows people).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from colorize.errors import InputDataError, read_text_file

TimingKind = Literal["strict", "hold", "timesheet"]

XDTS_IDENTIFIER = "exchangeDigitalTimeSheet Save Data"
XDTS_CELL_FIELD = 0
XDTS_EMPTY = "SYMBOL_NULL_CELL"
XDTS_CONTINUE = ("SYMBOL_TICK_1", "SYMBOL_TICK_2", "SYMBOL_HYPHEN")


@dataclass(frozen=True)
class Timing:
    """Output frame -> the drawing it shows (None: a blank frame), for every frame of the shot."""

    kind: TimingKind
    exposures: Mapping[int, int | None]  # every output frame, in frame order
    source: str = ""  # where it came from, for messages (`timesheet x.xdts layer A`)
    _first: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in sorted(self.exposures):
            d = self.exposures[f]
            if d is not None:
                self._first.setdefault(d, f)

    @classmethod
    def strict(cls, frames: Iterable[int]) -> Timing:
        """One drawing per frame: frame f shows drawing f."""
        return cls("strict", {f: f for f in sorted(frames)})

    @classmethod
    def holds(cls, drawings: Sequence[int], end: int | None = None) -> Timing:
        """Gaps are holds: every frame from the first drawing to the last (or `end`) shows the last drawing
        at or before it."""
        ordered = sorted(drawings)
        last = max(ordered[-1], end) if end is not None else ordered[-1]
        exposures: dict[int, int | None] = {}
        i = 0
        for f in range(ordered[0], last + 1):
            while i + 1 < len(ordered) and ordered[i + 1] <= f:
                i += 1
            exposures[f] = ordered[i]
        return cls("hold", exposures)

    def folded(self, canonical: Mapping[int, int]) -> Timing:
        """The same frames with drawing d shown as `canonical[d]` where given (exact repeats folded into
        the drawing they copy: `colorize.repeats`)."""
        exposures = {f: None if d is None else canonical.get(d, d) for f, d in self.exposures.items()}
        return Timing(self.kind, exposures, self.source)

    @property
    def frames(self) -> tuple[int, ...]:
        """Every output frame of the shot, sorted."""
        return tuple(sorted(self.exposures))

    @cached_property
    def shown_before(self) -> dict[int, int]:
        """{drawing: the drawing shown on the frame before its first frame}, where that is another drawing
        (blank frames skipped): after a folded repeat (A B A C) C follows A in time, not B."""
        before: dict[int, int] = {}
        seen: set[int] = set()
        last: int | None = None
        for f in self.frames:
            d = self.exposures[f]
            if d is None:
                continue
            if d not in seen and last is not None and last != d:
                before[d] = last
            seen.add(d)
            last = d
        return before

    @property
    def drawings(self) -> tuple[int, ...]:
        """The drawings the shot shows, sorted by number (the order engines color them in)."""
        return tuple(sorted(self._first))

    @cached_property
    def is_identity(self) -> bool:
        """Every frame shows its own drawing (strict timing without exact repeats, or a sheet that never
        holds)."""
        return all(d == f for f, d in self.exposures.items())

    def drawing(self, frame: int) -> int | None:
        return self.exposures[frame]

    def held_from(self, frame: int) -> int | None:
        """The first frame that shows `frame`'s drawing, when that is an earlier frame (a hold or repeat)."""
        d = self.exposures.get(frame)
        if d is None:
            return None
        first = self._first[d]
        return first if first != frame else None

    def first_frame(self, drawing: int) -> int:
        """The first frame that shows `drawing`."""
        return self._first[drawing]

    def frame_of_drawing(self, drawing: int) -> int | None:
        """A frame that shows `drawing` (its first), or None when the shot never shows it."""
        return self._first.get(drawing)


def read_timesheet(path: Path, layer: str | None) -> Timing:
    """The timing of a timesheet file: XDTS (`.xdts`, or a file that starts with the XDTS identifier) or
    CSV (`frame,drawing` lines; an empty drawing or `-` is a blank frame). `layer` picks the cel layer of
    an XDTS sheet with several. Raises MissingInputError (no file) or InputDataError (a bad sheet), one
    line naming the file."""
    text = read_text_file(path, "timesheet", encoding="utf-8-sig")
    if path.suffix.lower() == ".xdts" or text.lstrip().startswith(XDTS_IDENTIFIER):
        exposures, which = parse_xdts(text, layer, str(path))
        return Timing("timesheet", exposures, f"timesheet {path.name} layer {which}")
    if layer is not None:
        raise InputDataError(f"{path}: timesheet_layer {layer!r}: a CSV timesheet has one layer")
    return Timing("timesheet", parse_csv(text, str(path)), f"timesheet {path.name}")


def parse_csv(text: str, where: str) -> dict[int, int | None]:
    """`frame,drawing` per line (a header line, blank lines and `#` comments are skipped)."""
    exposures: dict[int, int | None] = {}
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if n == 1 and not cells[0].lstrip("-").isdigit():
            continue  # a header (`frame,drawing`)
        if len(cells) != 2 or not cells[0].isdigit():
            raise InputDataError(f"{where}:{n}: expected `frame,drawing`, got {','.join(row)!r}")
        frame = int(cells[0])
        drawing = cells[1]
        if frame in exposures:
            raise InputDataError(f"{where}:{n}: frame {frame} is given twice")
        if drawing in ("", "-"):
            exposures[frame] = None
        elif drawing.isdigit():
            exposures[frame] = int(drawing)
        else:
            raise InputDataError(
                f"{where}:{n}: frame {frame}: drawing {drawing!r} is not a number (or - for blank)"
            )
    if not exposures:
        raise InputDataError(f"{where}: timesheet has no frames")
    return exposures


def parse_xdts(text: str, layer: str | None, where: str) -> tuple[dict[int, int | None], str]:
    """The exposures of one cel layer of an XDTS sheet, and the layer's name."""
    body = text.lstrip()
    if body.startswith(XDTS_IDENTIFIER):
        body = body[len(XDTS_IDENTIFIER) :]
    else:
        raise InputDataError(f"{where}: not an XDTS timesheet (the first line must be {XDTS_IDENTIFIER!r})")
    try:
        data = json.loads(body)
        table = data["timeTables"][0]
        duration = int(table["duration"])
        cells = _xdts_field(table["fields"], "fields", where)
        names = [
            str(n).strip() for n in _xdts_field(table["timeTableHeaders"], "timeTableHeaders", where)["names"]
        ]
        tracks = {int(t["trackNo"]): t["frames"] for t in cells["tracks"] if t.get("frames")}
    except json.JSONDecodeError as error:
        raise InputDataError(f"{where}: malformed XDTS JSON (line {error.lineno + 1}: {error.msg})") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise InputDataError(f"{where}: not an XDTS timesheet (missing or wrong {error})") from None
    layers = {names[n] if n < len(names) else f"track {n}": n for n in sorted(tracks)}
    if not layers:
        raise InputDataError(f"{where}: the timesheet has no cel layer with drawings")
    if layer is None:
        if len(layers) > 1:
            raise InputDataError(
                f"{where}: the timesheet has {len(layers)} cel layers ({', '.join(layers)}); "
                "pick one with `timesheet_layer`"
            )
        layer = next(iter(layers))
    elif layer not in layers:
        raise InputDataError(
            f"{where}: timesheet_layer {layer!r} is not a cel layer of this sheet (layers: {', '.join(layers)})"
        )
    if duration < 1:
        raise InputDataError(f"{where}: timesheet duration {duration} (at least 1 frame expected)")
    return _xdts_track(tracks[layers[layer]], duration, f"{where}: layer {layer!r}"), layer


def _xdts_field(items: Any, what: str, where: str) -> Any:
    for item in items:
        if int(item.get("fieldId", -1)) == XDTS_CELL_FIELD:
            return item
    raise InputDataError(f"{where}: the XDTS sheet has no cel field (fieldId 0) in {what}")


def _xdts_track(entries: Any, duration: int, where: str) -> dict[int, int | None]:
    """Output frame (sheet frame + 1) -> drawing for one track; a cel holds until the next entry."""
    changes: list[tuple[int, str]] = []
    for entry in entries:
        values = entry["data"][0]["values"] if entry.get("data") else []
        changes.append((int(entry["frame"]), str(values[0]).strip() if values else XDTS_EMPTY))
    changes.sort(key=lambda c: c[0])
    current: int | None = None
    at: dict[int, int | None] = {}
    for frame, value in changes:  # negative frames (CLIP STUDIO writes them) set the cel before frame 0
        if value == XDTS_EMPTY:
            current = None
        elif value not in XDTS_CONTINUE:
            if not value.isdigit():
                raise InputDataError(
                    f"{where}: sheet frame {frame + 1}: drawing {value!r} is not a number colorize can name "
                    "line-art files by"
                )
            current = int(value)
        at[max(frame, 0)] = current
    exposures: dict[int, int | None] = {}
    current = None
    for frame in range(duration):
        if frame in at:
            current = at[frame]
        exposures[frame + 1] = current
    return exposures
