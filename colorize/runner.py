"""A run of a shot: start it, find what to color, color it, end it with one summary, whatever happens.

The run's stages, one module each: what to color (here: fresh outputs are skipped, `colorize.provenance`),
the frame stream on this machine (`colorize.stream`: read ahead, color in batches, write behind) or worker
processes on several devices (`colorize.remote`), and the frame events in the order of coloring
(`colorize.frame_events`).

Every frame event is emitted from the main thread, in the order the frames were colored (the schedule's
order: frame order, except where the schedule interleaves warp chains), once its write is done. Each
selected frame gets exactly one `frame_done`, `frame_skipped` or `frame_failed`. A run that started always
ends with exactly one `summary`, whatever happens:

- a frame that cannot be read (or preprocessed) fails alone; an engine that raises a `ColorizeError` (a bad
  frame it read): the frames of that batch fail, the run goes on; an engine result with `error` set: that
  frame fails, the run goes on;
- an engine bug (any other exception, or a result of the wrong frames, type or size) or running out of
  memory: the frames of that batch fail, the frames already colored are written, the run stops;
- a write that fails (disk full, permissions): that frame fails, the run stops;
- Ctrl-C / SIGTERM (KeyboardInterrupt) or a closed stdout: the run stops, writes in flight complete, and
  nothing half-written is left.

Freshness (`colorize.provenance`): each output carries the record of what it was made from; a frame whose
output matches the current record is skipped as `fresh`, a missing or stale one is colored again.

Several devices (`run_on_devices`): see `colorize.remote`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from colorize import __version__, images
from colorize.engines.base import Engine
from colorize.errors import ColorizeError, ExitCode, OutputClosed
from colorize.events import SCHEMA, Events, Stopwatch
from colorize.failures import StopRun, internal
from colorize.frame_events import FrameEvents
from colorize.output import make_folders
from colorize.provenance import Freshness
from colorize.reading import shot_context
from colorize.remote import DeviceRun
from colorize.shot import ShotPlan
from colorize.stream import READERS, WRITERS, FrameStream
from colorize.summary import Summary
from colorize.workers import WORKER_COMMAND, Device

__all__ = ["READERS", "WRITERS", "Summary", "run_on_devices", "run_shot", "shot_context"]

Files = dict[int, dict[str, Path]]  # frame -> every file it writes, the main output last (`outputs_of`)
Todo = list[tuple[int, str]]  # (frame, why it is colored), in frame order


def run_shot(
    plan: ShotPlan,
    engine: Engine | Callable[[], Engine],
    events: Events,
    *,
    size: tuple[int, int],
    overwrite: bool = False,
    qa_dir: Path | None = None,
    messages: Sequence[str] = (),
) -> Summary:
    """Color the plan's selected frames that are missing or stale (all with `overwrite`).

    `messages`: lines for people, emitted as `message` events right after `run_start`.

    `engine` is an engine, or a function that makes one (called only when some frame needs coloring, so a
    rerun with every frame fresh never loads a model). Emits `run_start` ... `summary`; never raises for
    what happens after `run_start` (the summary says it), so the caller only maps `exit_code`.
    """

    def color(reports: FrameEvents, freshness: Freshness, files: Files, todo: Todo) -> None:
        FrameStream(plan, reports, freshness, files, size).run(engine, todo)

    return _run(plan, events, size, overwrite, color, qa_dir, messages)


def run_on_devices(
    plan: ShotPlan,
    devices: list[Device],
    events: Events,
    *,
    size: tuple[int, int],
    worker_args: list[str],
    overwrite: bool = False,
    command: Sequence[str] = WORKER_COMMAND,
) -> Summary:
    """`run_shot` with one worker process per device (see `colorize.remote`).

    `worker_args`: the `colorize shot` arguments that make a worker resolve this plan (shot, --refs, the run
    options, --out, --json), to which each worker's `--frames CHUNK` is added.
    """

    def color(reports: FrameEvents, freshness: Freshness, files: Files, todo: Todo) -> None:
        DeviceRun(plan, reports, freshness).run(todo, devices, worker_args, overwrite, command)

    return _run(plan, events, size, overwrite, color)


def _run(
    plan: ShotPlan,
    events: Events,
    size: tuple[int, int],
    overwrite: bool,
    color: Callable[[FrameEvents, Freshness, Files, Todo], None],
    qa_dir: Path | None = None,
    messages: Sequence[str] = (),
) -> Summary:
    clock = Stopwatch()
    summary = Summary(total=len(plan.selected))
    try:
        _start(plan, events, size, messages)
        reports = FrameEvents(plan, events, summary, qa_dir)
        freshness = Freshness(plan)
        files = {f: plan.outputs_of(f) for f in plan.selected}  # with the layers, main output last
        color(reports, freshness, files, _todo(plan, reports, freshness, files, overwrite))
    except KeyboardInterrupt:
        summary.stop(ExitCode.INTERRUPTED, "interrupted")
    except OutputClosed as error:
        summary.stop(ExitCode.OUTPUT_CLOSED, str(error))
    except StopRun as stop:
        summary.stop(stop.error.exit_code, str(stop.error).splitlines()[0])
    except Exception as error:
        problem = error if isinstance(error, ColorizeError) else internal(error, "the run failed")
        summary.errors.append(problem)
        summary.stop(problem.exit_code, str(problem).splitlines()[0])
        for line in str(problem).splitlines():
            _emit(events, summary, "error", error=line, exit_code=int(problem.exit_code))
    finally:
        summary.seconds = clock.seconds
        _emit(events, summary, "summary", **_summary_fields(summary))
    return summary


def _start(plan: ShotPlan, events: Events, size: tuple[int, int], messages: Sequence[str]) -> None:
    """`run_start`, then the messages for people."""
    events.emit(
        "run_start",
        schema=SCHEMA,
        version=__version__,
        manifest=str(plan.manifest_path),
        engine=plan.engine,
        engine_reason=plan.engine_reason,
        frames=plan.selected_range,
        frames_total=len(plan.selected),
        output=plan.output.text,
        size=[size[1], size[0]],
        settings=plan.settings.model_dump(mode="json"),
        sources=plan.sources,
    )
    if plan.settings.engine == "auto":
        events.emit("message", text=f"engine {plan.engine} ({plan.engine_reason})")
    for text in messages:
        events.emit("message", text=text)


def _todo(plan: ShotPlan, reports: FrameEvents, freshness: Freshness, files: Files, overwrite: bool) -> Todo:
    """(frame, reason) of the frames to color; fresh ones are reported as skipped."""
    images.remove_stale_temps([p for frame_files in files.values() for p in frame_files.values()])
    todo: Todo = []
    for f in plan.selected:
        if overwrite:
            todo.append((f, "overwrite"))
            continue
        state = freshness.state(f)
        if state.state == "done":
            reports.fresh(state)
        else:
            todo.append((f, "missing" if state.state == "missing" else f"stale: {state.reason}"))
    if todo:
        make_folders({p.parent for f, _ in todo for p in files[f].values()})
    return todo


def _summary_fields(summary: Summary) -> dict[str, Any]:
    """The fields of the `summary` event."""
    return dict(
        done=summary.done,
        drawings_colored=summary.drawings,
        skipped=summary.skipped,
        failed=summary.failed,
        not_run=summary.not_run,
        seconds=round(summary.seconds, 3),
        frames_per_second=round(summary.done / max(summary.seconds, 1e-9), 3),
        unresolved_regions=summary.unresolved_regions,
        frames_with_unresolved=summary.frames_with_unresolved,
        trace_unfilled=summary.trace_unfilled,
        frames_with_trace_unfilled=summary.frames_with_trace_unfilled,
        stopped=summary.stopped,
        exit_code=int(summary.exit_code),
    )


def _emit(events: Events, summary: Summary, event: str, **fields: Any) -> None:
    """Emit after the run has ended: a closed stdout only marks the summary (people still see stderr)."""
    try:
        events.emit(event, **fields)
    except OutputClosed as error:
        summary.stop(ExitCode.OUTPUT_CLOSED, str(error))
