"""Which frames a run touches: the shot's timing (frame -> drawing: strict, holds, or a timesheet), the
`--frames` selection, the colored keyframes by the drawing they show, and the drawings each selected
output is made from (the engine's `depends_on` rule); with strict timing, the gaps in the line art. Parts
of `colorize.shot.plan_shot`; problems that still leave a plan are appended to `problems`, the others
raised.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from colorize.engines import DependsOn
from colorize.errors import ColorizeError, InputDataError, ManifestError, MissingInputError, UsageError
from colorize.manifest import Manifest
from colorize.repeats import Digests
from colorize.sequences import Pattern, frame_range_text, gaps, list_frames, parse_frame_range, parse_pattern
from colorize.settings import Settings
from colorize.timing import Timing, read_timesheet


def shot_timing(
    manifest: Manifest,
    settings: Settings,
    lineart: Pattern,
    line_paths: dict[int, Path],
    manifest_path: Path,
    problems: list[ColorizeError],
) -> tuple[Timing, dict[int, Path]]:
    """The shot's timing (frame -> drawing) and the line art of the drawings it shows."""
    drawings = sorted(line_paths)
    end = manifest.timing_end
    if manifest.timesheet:
        if settings.timing == "hold" or end is not None:
            key = "timing_end" if end is not None else "timing: hold"
            raise ManifestError(
                [f"{manifest_path}: {key} and timesheet: the timesheet says what each frame shows; keep one"]
            )
        timing = read_timesheet(manifest_path.parent / manifest.timesheet, manifest.timesheet_layer)
        missing = [d for d in timing.drawings if d not in line_paths]
        if missing:
            shown = ", ".join(f"{d} (frame {timing.first_frame(d)})" for d in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise MissingInputError(
                f"{lineart.path(missing[0])}: drawings {shown}{more} of {timing.source} are missing from "
                f"lineart {manifest.lineart!r}"
            )
        if not timing.drawings:
            raise InputDataError(f"{manifest_path}: {timing.source} shows no drawing (every frame is blank)")
        return timing, {d: line_paths[d] for d in timing.drawings}
    if manifest.timesheet_layer is not None:
        problems.append(ManifestError([f"{manifest_path}: timesheet_layer: needs `timesheet`"]))
    if settings.timing == "hold":
        if end is not None and end < drawings[-1]:
            raise ManifestError(
                [f"{manifest_path}: timing_end: {end} is before the last line-art frame {drawings[-1]}"]
            )
        return Timing.holds(drawings, end), line_paths
    if end is not None:
        problems.append(
            ManifestError([f"{manifest_path}: timing_end: needs `timing: hold` (the shot ends on a hold)"])
        )
    return Timing.strict(drawings), line_paths


def report_gaps(
    lineart: Pattern,
    line_paths: dict[int, Path],
    selected: list[int],
    dependencies: dict[int, tuple[int, ...]],
    chunk: bool,
    problems: list[ColorizeError],
) -> None:
    """Strict timing: one problem per gap in the line art, however long (a 500-frame hole is one problem,
    not 500). A `--frames` chunk is refused only for the gaps among the frames it reads."""
    all_frames = sorted(line_paths)
    reads = {d for deps in dependencies.values() for d in deps} | set(selected)
    low, high = (min(reads), max(reads)) if reads else (0, -1)
    for _, run in itertools.groupby(enumerate(gaps(all_frames)), key=lambda item: item[1] - item[0]):
        hole = [frame for _, frame in run]
        if chunk and not (low < hole[0] < high):
            continue
        which = f"frame {hole[0]} is" if len(hole) == 1 else f"frames {frame_range_text(hole)} are"
        problems.append(
            MissingInputError(
                f"{lineart.path(hole[0])}: {which} missing from lineart sequence {frame_range_text(all_frames)} "
                "(`timing: hold` treats gaps as holds)"
            )
        )


def selection(frames: str | None, timing: Timing) -> list[int]:
    """The frames `--frames` asks for (all of the shot's frames without it)."""
    all_frames = timing.frames
    if frames is None:  # an empty --frames "" (an unset farm variable) selects nothing, not the shot
        return list(all_frames)
    wanted = parse_frame_range(frames)
    outside = [f for f in wanted if f not in timing.exposures]
    if outside:
        what = "lineart sequence" if timing.kind == "strict" else f"{timing.kind} timing"
        raise UsageError(
            f"--frames {frames}: frames {frame_range_text(outside)} are not in {what} "
            f"{frame_range_text(all_frames)}"
        )
    return wanted


def keyframe_files(manifest: Manifest, manifest_path: Path, problems: list[ColorizeError]) -> dict[int, Path]:
    """The colored keyframe files by frame number ({frame: path})."""
    if not manifest.keyframes:
        return {}
    keys = parse_pattern(manifest.keyframes, manifest_path.parent)
    if not keys.is_sequence:
        problems.append(
            ManifestError([f"{manifest_path}: keyframes: {manifest.keyframes!r} needs a frame number (####)"])
        )
        return {}
    try:
        return list_frames(keys, "keyframes")
    except ColorizeError as error:
        problems.append(error)
        return {}


def keyframes_by_drawing(
    found: dict[int, Path], timing: Timing, digests: Digests, problems: list[ColorizeError]
) -> tuple[dict[int, Path], dict[int, int]]:
    """The colored keyframes by the drawing they show ({drawing: path}), and the frame each is named by
    ({drawing: frame}). A keyframe is a finished frame: its number is a frame number. Byte-identical keys
    on exact repeats of one drawing (`colorize.repeats` folded them) are one key: the first."""
    known = digests.known()
    paths: dict[int, Path] = {}
    frame_of: dict[int, int] = {}
    for f, path in sorted(found.items()):
        if f not in timing.exposures:
            what = "lineart frame" if timing.kind == "strict" else "frame in the shot's timing:"
            problems.append(InputDataError(f"{path}: keyframe {f} has no {what} {f}"))
            continue
        d = timing.drawing(f)
        if d is None:
            problems.append(InputDataError(f"{path}: keyframe {f}: frame {f} is blank in {timing.source}"))
        elif d in paths and path in known and known[path] == known.get(paths[d]):
            continue  # the same key on a copy of the drawing
        elif d in paths:
            problems.append(
                InputDataError(f"{path}: keyframes {frame_of[d]} and {f} both show drawing {d}; keep one")
            )
        else:
            paths[d], frame_of[d] = path, f
    return paths, frame_of


def dependencies_of(
    rule: DependsOn,
    selected: list[int],
    timing: Timing,
    keyframe_paths: dict[int, Path],
    settings: Settings,
) -> dict[int, tuple[int, ...]]:
    """Selected frame -> the drawings its output is made from (the engine's rule over the drawings; a
    blank frame: none). Frames between the same keyframes (or anchors) share one tuple: long shots stay
    small in memory."""
    drawings = timing.drawings
    key_drawings = sorted(keyframe_paths)
    shared: dict[tuple[int, ...], tuple[int, ...]] = {}
    by_drawing: dict[int, tuple[int, ...]] = {}
    dependencies: dict[int, tuple[int, ...]] = {}
    for f in selected:
        d = timing.drawing(f)
        if d is None:
            dependencies[f] = ()
            continue
        if d not in by_drawing:
            deps = rule(d, drawings, key_drawings, settings)
            by_drawing[d] = shared.setdefault(deps, deps)
        dependencies[f] = by_drawing[d]
    return dependencies
