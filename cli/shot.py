"""`colorize shot`, `check`, `status`, `init`, `schema`: run, validate and inspect shots."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from colorize_cli.common import (
    FRAMES,
    JSON,
    OUT,
    REFS,
    SHOT_DIR,
    RunOptions,
    errors_to_exit,
    plan_from_options,
    with_run_options,
)

from colorize import images
from colorize.engines import create_engine
from colorize.errors import ColorizeError, ExitCode, UsageError
from colorize.events import Events, HumanReporter
from colorize.farm import shot_command
from colorize.manifest import schema_json
from colorize.provenance import Freshness
from colorize.regions.lines import frame_line_work
from colorize.regions.lines import warnings as line_warnings
from colorize.runner import Summary, run_on_devices, run_shot
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan, check_output_writable, raise_problems
from colorize.validate import validate_plan
from colorize.workers import parse_devices


class Progress(str, Enum):
    auto = "auto"
    bar = "bar"
    lines = "lines"
    openjd = "openjd"
    none = "none"


@with_run_options
def shot(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Recolor every selected frame, even those whose output is fresh."
    ),
    json_events: bool = typer.Option(False, "--json", help="Write JSON-lines events on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the summary on stderr."),
    progress: Progress = typer.Option(
        Progress.auto,
        "--progress",
        help="bar (terminal), lines (a plain line every few seconds), openjd (openjd_progress/openjd_status "
        "lines for Open Job Description farms), none; auto: bar on a terminal, else lines.",
    ),
    progress_every: float = typer.Option(
        5.0, "--progress-every", min=0, help="Seconds between progress lines (lines, openjd); 0: every frame."
    ),
    qa: Path | None = typer.Option(
        None, "--qa", help="Write QA overlays (flat engine), qa.json and worst_frames.png into this folder."
    ),
    devices: str | None = typer.Option(
        None,
        "--devices",
        help="Use several GPUs: 0,1,… or all. The frames to color are split into one chunk per device (cut "
        "between warp chains), each run by a worker process on its GPU; one event stream, one summary, the "
        "same bytes as one run. cpu entries run a worker on the CPU.",
    ),
    *,
    options: RunOptions,
) -> None:
    """Colorize the frames of a shot.

    Frames whose output is fresh (made from the same inputs, settings, engine and version, as recorded in
    the output itself) are skipped; missing and stale ones are colored. Every output is written atomically,
    so a killed run is finished by running the same command again.

    Examples:

        colorize shot ./shot042 --refs refs.yaml

        colorize shot ./shot042 --frames 1001-1024 --json > events.jsonl

        colorize shot ./shot042 --engine flat --out /tmp/preview --max-unresolved 20

        colorize shot ./shot042 --devices all --json > events.jsonl
    """
    events = Events(
        json_stream=sys.stdout if json_events else None,
        human=HumanReporter(sys.stderr, progress=progress.value, quiet=quiet, interval=progress_every),
    )
    with errors_to_exit(events):
        plan = plan_from_options(shot_dir, refs, frames, out, options)
        size = validate_plan(plan, deep=True)
        check_output_writable(plan)
        if devices:
            if qa is not None:
                raise UsageError("--qa and --devices cannot be combined yet: run the QA pass on one device")
            diffusion_device = plan.settings.diffusion.device if plan.engine == "diffusion" else None
            targets = parse_devices(devices, diffusion_device)
            given = options.task_args(out)
            args = shot_command(plan, shot_dir, [*given, "--json", "--progress", "none", "--quiet"])
            summary = run_on_devices(plan, targets, events, size=size, worker_args=args, overwrite=overwrite)
        else:
            make = functools.partial(create_engine, plan.engine, plan.settings)
            summary = run_shot(plan, make, events, size=size, overwrite=overwrite, qa_dir=qa)
    events.close()
    _debug(summary)
    if summary.exit_code != ExitCode.OK:
        raise typer.Exit(int(summary.exit_code))


def _debug(summary: Summary) -> None:
    """COLORIZE_DEBUG=1: the tracebacks behind internal errors, on stderr."""
    if not os.environ.get("COLORIZE_DEBUG"):
        return
    seen = set()
    for error in [e for _, e in summary.failures] + summary.errors:
        cause = error.__cause__
        if cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            traceback.print_exception(cause, file=sys.stderr)


@with_run_options
def check(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    gaps: bool = typer.Option(
        False,
        "--gaps",
        help="Also look for line gaps that open between consecutive drawings (flat engine; segments every "
        "drawing: about a second a frame at 1080p).",
    ),
    *,
    options: RunOptions,
) -> None:
    """Validate a shot without computing anything.

    Checks the manifest (unknown keys, types), every file the run would read (present, readable, not
    truncated) — the selected frames and the frames their outputs depend on (the flat engine's chain from
    a keyframe, a diffusion warp chain from its anchor) —, the frame sequence (gaps, duplicates), sizes
    (masks and keyframes match the line art) and that the output can be written. Prints one line per
    problem and exits non-zero if there is any. Give the same options as to `colorize shot`.

    Example:

        colorize check ./shot042 --refs refs.yaml --frames 1010-1012
    """
    with errors_to_exit():
        problems: list[ColorizeError] = []
        plan = plan_from_options(shot_dir, refs, frames, out, options, problems=problems)
        size = validate_plan(plan, deep=True, problems=problems)
        try:
            check_output_writable(plan)
        except ColorizeError as error:
            problems.append(error)
        raise_problems(problems)
        h, w = size or (0, 0)
        keys = [f for f in plan.selected if f in plan.keyframe_frames.values()]
        shown = {plan.drawing(f) for f in plan.selected}
        extra = [d for d in plan.reads if d not in shown]
        noun = "frame" if plan.exposures.kind == "strict" else "drawing"
        reads = f", also reads {_count(len(extra), noun)} {frame_range_text(extra)}" if extra else ""
        if not plan.exposures.is_identity:  # holds, a timesheet, or exact repeats
            drawings = sorted(d for d in shown if d is not None)
            reads = f", {plan.exposures.kind} timing: {_count(len(drawings), 'drawing')}" + reads
        typer.echo(
            f"ok: {plan.manifest_path}: {_count(len(plan.selected), 'frame')} {plan.selected_range}, {w}×{h}, "
            f"{_count(len(plan.characters), 'character')}, {_count(len(keys), 'keyframe')}, engine {plan.engine} "
            f"({plan.engine_reason}){reads}"
        )
        for line_warning in trace_line_warnings(plan):
            sys.stderr.write(f"colorize: warning: {line_warning}\n")
        if plan.engine == "flat":
            _warn_leaky_keyframes(plan)
            if gaps:
                from colorize.gaps import gap_warnings

                for gap_warning in gap_warnings(plan):
                    sys.stderr.write(f"colorize: warning: {gap_warning}\n")
        first = plan.characters[0] if plan.characters else None
        model = Path(plan.settings.model) if plan.settings.model else None
        if (
            plan.engine == "diffusion"
            and plan.settings.diffusion.mode == "v2"
            and first is not None
            and first.reference_mask is None
            and plan.background is None
            and not (model is not None and (model / "anime_seg" / "model.pt").is_file())
        ):  # the diffusion engine will bleach this reference with the flat-backdrop heuristic
            from colorize.engines.diffusion.preprocess import heuristic_mask_warning

            warning = heuristic_mask_warning(first.reference, first.name)
            if warning:
                sys.stderr.write(f"colorize: warning: {warning}\n")


def trace_line_warnings(plan: ShotPlan) -> list[str]:
    """Line colours the trace-line roles keep as main line work in the first, middle and last selected
    frames (`regions.lines.warnings`): a drawing traced all in blue comes out with its lines, and says so."""
    sel = plan.selected
    out: list[str] = []
    for f in dict.fromkeys([sel[0], sel[len(sel) // 2], sel[-1]] if sel else []):
        drawing = plan.drawing(f)  # holds and timesheets: the drawing the frame shows (None: blank)
        if drawing is None:
            continue
        path = plan.lineart_paths[drawing]
        lw = frame_line_work(images.read_rgba(path), plan.settings.flat, plan.settings.trace_lines)
        out += [w for w in line_warnings(lw, f"{path.name} (frame {f})") if w not in out]
    return out


def _warn_leaky_keyframes(plan: ShotPlan) -> None:
    """Warn about keyframes whose segmentation merges areas the keyframe paints in different colors
    (line gaps that `flat.gap_close` does not close): the flat engine would carry one color into both."""
    from colorize import images
    from colorize.regions.leaks import leaky_regions
    from colorize.regions.segment import segment

    fs = plan.settings.flat
    for f in sorted(k for k in plan.keyframe_paths if k in set(plan.reads)):
        seg = segment(
            images.read_rgba(plan.lineart_paths[f]),
            fs.gap_close,
            fs.min_region,
            fs.line_threshold,
            fs.close_breaks,
        )
        leaks = leaky_regions(seg, images.to_uint8(images.read_rgba(plan.keyframe_paths[f])))
        if leaks:
            x, y = leaks[0].at
            sys.stderr.write(
                f"colorize: warning: keyframe {f} ({plan.keyframe_paths[f]}): {_count(len(leaks), 'region')} "
                f"of the line art hold several keyframe colors (the largest, {leaks[0].area} px, near x={x} "
                f"y={y}): line gaps leak; close them, raise flat.gap_close (now {fs.gap_close}) or set flat.close_breaks\n"
            )


@with_run_options
def status(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    json_out: bool = JSON,
    *,
    options: RunOptions,
) -> None:
    """Show which outputs are done, stale or missing, without computing anything.

    An output is done when the record stored in it matches what the current inputs, settings, engine and
    version would make; stale when it does not (the reason is shown); missing when there is no file. Give
    the same options as to `colorize shot`, since settings decide freshness.

    Examples:

        colorize status ./shot042

        colorize status ./shot042 --frames 1001-1048 --json
    """
    with errors_to_exit():
        plan = plan_from_options(shot_dir, refs, frames, out, options)
        freshness = Freshness(plan)
        states = [freshness.state(f) for f in plan.selected]
    groups: dict[str, list[int]] = {"done": [], "stale": [], "missing": []}
    reasons: dict[str, list[int]] = {}
    for s in states:
        groups[s.state].append(s.frame)
        if s.reason:
            reasons.setdefault(s.reason, []).append(s.frame)
    if json_out:
        doc: dict[str, Any] = {
            "manifest": str(plan.manifest_path),
            "output": plan.output.text,
            "engine": plan.engine,
            "frames": plan.selected_range,
            "total": len(plan.selected),
            **{name: {"count": len(fs), "frames": frame_range_text(fs)} for name, fs in groups.items()},
        }
        doc["stale"]["reasons"] = {reason: frame_range_text(fs) for reason, fs in reasons.items()}
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"{plan.output.text}: {len(plan.selected)} frames {plan.selected_range}, engine {plan.engine}")
    for name, fs in groups.items():
        if name == "stale" and fs:
            for reason, rfs in reasons.items():
                typer.echo(f"  stale    {len(rfs):5d}  {frame_range_text(rfs)}  ({reason})")
        elif fs or name == "done":
            typer.echo(f"  {name:<8} {len(fs):5d}  {frame_range_text(fs) or '-'}")


def schema() -> None:
    """Print the JSON Schema of refs.yaml (point your editor's YAML plugin at it).

    Example:

        colorize schema > refs.schema.json
    """
    typer.echo(schema_json())


def init(
    shot_dir: Path = SHOT_DIR,
    force: bool = typer.Option(False, "--force", help="Replace an existing refs.yaml."),
) -> None:
    """Write a starter refs.yaml from what is found in a shot folder.

    Looks for a line-art sequence (a folder named line*, lineart*, sketch* or the shot folder itself),
    colored keyframes (key*/), per-character masks (masks/NAME/) and reference images (refs/).

    Example:

        colorize init ./shot042 && $EDITOR ./shot042/refs.yaml
    """
    from colorize.starter import write_starter_manifest

    with errors_to_exit():
        path = write_starter_manifest(shot_dir, force=force)
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(shot)
    app.command(no_args_is_help=True)(check)
    app.command(no_args_is_help=True)(status)
    app.command(no_args_is_help=True)(init)
    app.command()(schema)


def _count(n: int, noun: str) -> str:
    """`1 keyframe`, `3 keyframes`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
