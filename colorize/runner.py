"""The frame stream: read ahead, color in batches, write behind, resume, summarise.

Stages (concurrent.futures, so an exception in any stage comes back through its future):

- batching: the engine's schedule (`colorize.engines.batches_of`) decides which frames go together and in
  which order: consecutive frames, or for diffusion `temporal: warp` the frames of different warp chains
  side by side;
- reading: a pool of threads reads the frames of the next two batches ahead, and runs the engine's
  `preprocess` on each (per-frame CPU work that needs no other result: masks, sketches, line-art flow),
  so that it overlaps the engine's work on the current batch;
- coloring: the engine runs in the main thread, one batch at a time (where Ctrl-C and SIGTERM arrive);
- writing (`colorize.output`): a pool of threads encodes each drawing once and writes it atomically to
  every frame that shows it (PNG compression releases the GIL),
  at most two batches behind, so memory stays flat however long the shot is.

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

Several devices (`run_on_devices`): the frames to color are split into one chunk per device
(`colorize.workers`), each colored by a `colorize shot --frames CHUNK --json` worker process; the workers'
frame events are merged into this run's stream (in the order they arrive) and its one summary. A worker
that dies or stops has its frames that it did not report fail; the other workers finish.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import numpy as np

from colorize import __version__, images
from colorize.engines import BatchSizes, batches_of, engine_spec
from colorize.engines.base import (
    Character,
    Engine,
    FrameInput,
    FrameResult,
    ShotContext,
    reads_native_depth,
)
from colorize.errors import (
    ColorizeError,
    ExitCode,
    InternalError,
    OutOfMemory,
    OutputClosed,
    QualityGateFailed,
)
from colorize.events import SCHEMA, Events, Stopwatch
from colorize.layers import ENGINE_LAYERS
from colorize.output import encode_output, engine_layers, make_folders, write_encoded
from colorize.provenance import Freshness, OutputState
from colorize.qa import QAWriter
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan
from colorize.summary import Summary
from colorize.workers import (
    STOP_SECONDS,
    WORKER_COMMAND,
    Device,
    Worker,
    WorkerFailed,
    split_frames,
    start_workers,
    stop_workers,
)

WRITERS = max(1, min(4, os.cpu_count() or 1))
READERS = max(1, min(8, os.cpu_count() or 1))  # reading and the engine's per-frame preprocessing


class _Stop(Exception):
    """Stop the stream; the cause was already reported as the failure of its frames."""

    def __init__(self, error: ColorizeError):
        super().__init__(str(error))
        self.error = error


def shot_context(
    plan: ShotPlan, size: tuple[int, int], qa: bool = False, native_depth: bool = False
) -> ShotContext:
    """What engines may know of the whole shot; references are decoded here, once. `native_depth`: line
    art and keyframes load at their files' depth (`reads_native_depth`), else as 8-bit."""
    read = images.read_image if native_depth else images.read_rgba

    def load_masks(frame: int) -> dict[str, np.ndarray]:
        return {c.name: images.read_mask(c.mask.path(frame)) for c in plan.characters if c.mask is not None}

    return ShotContext(
        frames=plan.frames,
        keyframes=tuple(sorted(plan.keyframe_paths)),
        size=size,
        characters=tuple(
            Character(
                c.name,
                images.read_rgb(c.reference),
                c.mask is not None,
                images.read_mask(c.reference_mask) if c.reference_mask else None,
            )
            for c in plan.characters
        ),
        background=images.read_rgb(plan.background) if plan.background else None,
        settings=plan.settings,
        load_lineart=lambda f: read(plan.lineart_paths[f]),
        load_keyframe=lambda f: read(plan.keyframe_paths[f]),
        load_masks=load_masks,
        qa=qa,
        layers=engine_layers(plan),
        palette=plan.palette,
        shown_before=plan.exposures.shown_before,
    )


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
    return _run(plan, events, size, lambda stream: stream.run(engine, overwrite), qa_dir, messages)


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
    """`run_shot` with one worker process per device (see the module docstring).

    `worker_args`: the `colorize shot` arguments that make a worker resolve this plan (shot, --refs, the run
    options, --out, --json), to which each worker's `--frames CHUNK` is added.
    """
    return _run(
        plan, events, size, lambda stream: stream.run_remote(devices, worker_args, overwrite, command)
    )


def _run(
    plan: ShotPlan,
    events: Events,
    size: tuple[int, int],
    body: Callable[[_Stream], None],
    qa_dir: Path | None = None,
    messages: Sequence[str] = (),
) -> Summary:
    clock = Stopwatch()
    summary = Summary(total=len(plan.selected))
    try:
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
        body(_Stream(plan, events, summary, size, qa_dir))
    except KeyboardInterrupt:
        summary.stop(ExitCode.INTERRUPTED, "interrupted")
    except OutputClosed as error:
        summary.stop(ExitCode.OUTPUT_CLOSED, str(error))
    except _Stop as stop:
        summary.stop(stop.error.exit_code, str(stop.error).splitlines()[0])
    except Exception as error:
        problem = error if isinstance(error, ColorizeError) else _internal(error, "the run failed")
        summary.errors.append(problem)
        summary.stop(problem.exit_code, str(problem).splitlines()[0])
        for line in str(problem).splitlines():
            _emit(events, summary, "error", error=line, exit_code=int(problem.exit_code))
    finally:
        summary.seconds = clock.seconds
        _emit(
            events,
            summary,
            "summary",
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
    return summary


def _emit(events: Events, summary: Summary, event: str, **fields: Any) -> None:
    """Emit after the run has ended: a closed stdout only marks the summary (people still see stderr)."""
    try:
        events.emit(event, **fields)
    except OutputClosed as error:
        summary.stop(ExitCode.OUTPUT_CLOSED, str(error))


@dataclass
class _Entry:
    """One frame on its way out, in frame order: a write in flight, or a failure to report."""

    frame: int
    reason: str = ""
    result: FrameResult | None = None
    seconds: float = 0.0
    write: Future[None] | None = None
    error: ColorizeError | None = None
    repeat: bool = False  # another frame of this run showed the same drawing first (same pixels)


class _Stream:
    def __init__(
        self,
        plan: ShotPlan,
        events: Events,
        summary: Summary,
        size: tuple[int, int],
        qa_dir: Path | None = None,
    ):
        self.plan = plan
        self.events = events
        self.summary = summary
        self.size = size
        self.outputs = {f: plan.output.path(f) for f in plan.selected}
        self.files = {f: plan.outputs_of(f) for f in plan.selected}  # with the layers, main output last
        self.freshness = Freshness(plan)
        self.out: deque[_Entry] = deque()  # frames in flight to their events, in order
        self.write_failed: ColorizeError | None = None
        self.qa = QAWriter(qa_dir) if qa_dir is not None else None
        self.native_depth = False  # the engine takes 16-bit frames at 16 bits (`reads_native_depth`)

    def _todo(self, overwrite: bool) -> list[tuple[int, str]]:
        """(frame, reason) of the frames to color; fresh ones are reported as skipped."""
        images.remove_stale_temps([p for files in self.files.values() for p in files.values()])
        todo: list[tuple[int, str]] = []
        for f in self.plan.selected:
            if overwrite:
                todo.append((f, "overwrite"))
                continue
            state = self.freshness.state(f)
            if state.state == "done":
                self._fresh(state)
            else:
                todo.append((f, "missing" if state.state == "missing" else f"stale: {state.reason}"))
        if todo:
            make_folders({p.parent for f, _ in todo for p in self.files[f].values()})
        return todo

    def run(self, engine: Engine | Callable[[], Engine], overwrite: bool) -> None:
        todo = self._todo(overwrite)
        work: dict[int, list[tuple[int, str]]] = {}  # drawing -> its frames to write, in frame order
        blanks: list[tuple[int, str]] = []
        for f, reason in todo:
            d = self.plan.drawing(f)
            if d is None:
                blanks.append((f, reason))
            else:
                work.setdefault(d, []).append((f, reason))
        self._write_blanks(blanks)
        if not work:
            return
        make = isinstance(engine, type) or not hasattr(engine, "colorize")
        colorizer: Engine = engine() if make else engine  # type: ignore[operator,assignment]
        try:
            self._run_engine(colorizer, work)
        finally:
            colorizer.close()  # its thread pools end with the stream, whatever happened
            if self.qa is not None and self.qa.figures:
                self.qa.finish()

    def _run_engine(self, colorizer: Engine, work: dict[int, list[tuple[int, str]]]) -> None:
        self.native_depth = reads_native_depth(colorizer, self.plan.settings)
        colorizer.prepare(shot_context(self.plan, self.size, self.qa is not None, self.native_depth))
        self._notes(colorizer)
        plan = self.plan
        drawings = sorted(work)
        batches = batches_of(
            engine_spec(plan.engine), drawings, plan.frames, tuple(sorted(plan.keyframe_paths)), plan.settings
        )
        _check_schedule(batches, drawings)
        self._stream(colorizer, batches, work)

    # -- worker processes, one per device -----------------------------------------------------------------

    def run_remote(
        self, devices: list[Device], worker_args: list[str], overwrite: bool, command: Sequence[str]
    ) -> None:
        reasons = dict(self._todo(overwrite))
        todo = list(reasons)
        if not todo:
            return
        chunks = split_frames(todo, self.plan.joined, len(devices))
        args = [*worker_args, *(["--overwrite"] if overwrite else [])]
        workers, queue = start_workers(
            list(zip(devices, chunks, strict=False)),
            lambda frames: [*args, "--frames", frame_range_text(frames)],
            command,
        )
        self.events.emit(
            "message",
            text="; ".join(f"{w.device.name}: frames {frame_range_text(w.frames)}" for w in workers),
        )
        running = len(workers)
        try:
            while running:
                worker, record = queue.get()
                if record is None:
                    running -= 1
                    self._worker_ended(worker, reasons)
                else:
                    self._relay(worker, record)
        finally:
            stop_workers(workers)  # (when the run stops early: Ctrl-C, SIGTERM, a closed stdout)
            self._drain(queue, running)
            self.summary.drawings += sum(
                _count_of((w.summary or {}).get("drawings_colored")) for w in workers
            )

    def _drain(self, queue: Queue, running: int) -> None:
        """After stopping the workers: the frames they finished meanwhile still get their events."""
        try:
            while running:
                worker, record = queue.get(timeout=STOP_SECONDS)
                if record is None:
                    running -= 1
                elif record["event"] in ("frame_done", "frame_skipped", "frame_failed"):
                    self._relay(worker, record)
        except (Empty, OutputClosed):
            pass

    def _relay(self, worker: Worker, record: dict[str, Any]) -> None:
        """One event of a worker, into this run's stream and summary."""
        kind = record["event"]
        fields = {k: v for k, v in record.items() if k not in ("event", "time")}
        frame = fields.get("frame")
        if kind in ("frame_done", "frame_skipped", "frame_failed"):
            if frame not in worker.frames or frame in worker.reported:
                return
            worker.reported.add(frame)
            self.summary.count_unresolved(fields.get("unresolved"))
            self.summary.count_trace_unfilled(fields.get("trace_unfilled"))
            if kind == "frame_failed":
                error = WorkerFailed(str(fields.pop("error", "")), fields.pop("exit_code", ExitCode.INTERNAL))
                self._fail(frame, error, fields)
                return
            if kind == "frame_done":
                self.summary.done += 1
            else:
                self.summary.skipped += 1
            self.events.emit(kind, **fields)
        elif kind == "error":
            worker.errors.append((str(fields.get("error")), int(fields.get("exit_code", ExitCode.INTERNAL))))
        elif kind == "summary":
            worker.summary = fields
        elif kind == "message":
            self.events.emit("message", text=f"{worker.device.name}: {fields.get('text')}")

    def _worker_ended(self, worker: Worker, reasons: dict[int, str]) -> None:
        """The frames a finished worker did not report: done if their output is there and fresh (written
        before the worker was lost), else failed, with why."""
        missing = [f for f in worker.frames if f not in worker.reported]
        if not missing:
            return
        error = worker.why_unfinished()
        for f in missing:
            state = self.freshness.state(f)
            if state.state != "done":
                self._fail(f, error)
                continue
            self.summary.done += 1
            self.events.emit(
                "frame_done",
                frame=f,
                output=str(state.path),
                seconds=None,
                reason=reasons[f],
                unreported=str(error),
            )

    # -- the stream --------------------------------------------------------------------------------------

    def _stream(
        self, engine: Engine, batches: list[tuple[int, ...]], work: dict[int, list[tuple[int, str]]]
    ) -> None:
        """Color the drawings of `batches`; `work`: drawing -> the frames (and why) that show it."""
        window = BatchSizes(self.plan.settings.batch).read_ahead
        pending = iter([f for batch in batches for f in batch])
        reads: deque[tuple[int, Future[FrameInput]]] = deque()
        preprocess = engine.preprocess
        reader = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="colorize-read")
        writer = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="colorize-write")

        def read_ahead() -> None:
            while len(reads) < window:
                f = next(pending, None)
                if f is None:
                    return
                reads.append((f, reader.submit(_read_frame, self.plan, f, preprocess, self.native_depth)))

        try:
            read_ahead()
            for frames in batches:
                batch: list[FrameInput] = []
                for f in frames:
                    _, future = reads.popleft()
                    read_ahead()
                    try:
                        batch.append(future.result())
                    except ColorizeError as error:
                        self._fail_drawing(work[f], error)
                    except Exception as error:
                        bug = _internal(error, f"reading frame {f}")
                        self._fail_drawing(work[f], bug)
                        raise _Stop(bug) from None
                if batch:
                    self._color(engine, batch, work, writer)
                self._report(keep=window)
                if self.write_failed is not None:
                    raise _Stop(self.write_failed)
            self._report(keep=0)
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
            writer.shutdown(wait=True)  # writes in flight finish: every output is whole or absent
            with contextlib.suppress(OutputClosed):
                self._report_ready()

    def _fail_drawing(self, frames: list[tuple[int, str]], error: ColorizeError | None) -> None:
        """Every frame that shows a drawing that could not be colored fails with its error."""
        self.out.extend(_Entry(f, error=error) for f, _ in frames)

    def _color(
        self,
        engine: Engine,
        batch: list[FrameInput],
        work: dict[int, list[tuple[int, str]]],
        writer: ThreadPoolExecutor,
    ) -> None:
        """Color one batch of drawings; each result is written to every frame that shows its drawing."""
        frames = [fi.frame for fi in batch]
        clock = Stopwatch()
        fatal = True
        error: ColorizeError | None
        try:
            results = engine.colorize(batch)
            error = _result_problem(engine, results, frames, self.size, engine_layers(self.plan))
        except InternalError as bug:
            error = bug
        except ColorizeError as bad_input:  # a bad file the engine read: this batch fails, the run goes on
            error, fatal = bad_input, False
        except Exception as failure:
            error = _out_of_memory(failure, engine, frames, self.plan.settings.batch) or _internal(
                failure, f"engine {engine.name!r} on frames {frame_range_text(frames)}"
            )
        self._notes(engine)
        if error is not None:
            for f in frames:
                self._fail_drawing(work[f], error)
            if fatal:
                raise _Stop(error)
            return
        per_frame = clock.seconds / len(batch)
        for result in results:
            if result.error is not None or result.image is None:  # (no image without an error: checked)
                self._fail_drawing(work[result.frame], result.error)
                continue
            self.summary.drawings += 1
            seconds = result.seconds if result.seconds is not None else per_frame
            # Every frame that shows the drawing gets the same bytes, encoded once. Frames of one drawing
            # share their dependencies, so their records are the same too (grouped by record all the same).
            encoded: dict[str, Future[list[bytes]]] = {}
            for i, (f, reason) in enumerate(work[result.frame]):
                record = self.freshness.expected(f).with_result(result.info).to_text()
                if record not in encoded:
                    encoded[record] = writer.submit(encode_output, self.plan, self.files[f], result, record)
                write = writer.submit(write_encoded, self.files[f], encoded[record], record)
                self.out.append(_Entry(f, reason, result, seconds if i == 0 else 0.0, write, repeat=i > 0))

    def _notes(self, engine: Engine) -> None:
        """The engine's messages for people, as `message` events."""
        while engine.notes:
            self.events.emit("message", text=str(engine.notes.pop(0)))

    # -- reporting, in the order of coloring -------------------------------------------------------------

    def _report(self, keep: int) -> None:
        """Report the frames at the head of the line whose writes are done, then wait until at most `keep`
        frames are in flight (back-pressure on the engine)."""
        self._report_ready()
        while len(self.out) > keep:
            self._report_one()

    def _report_ready(self) -> None:
        """Report the frames at the head of the line whose writes are done (or that have nothing to write)."""
        while self.out and (self.out[0].write is None or self.out[0].write.done()):
            self._report_one()

    def _report_one(self) -> None:
        entry = self.out.popleft()
        path = self.outputs[entry.frame]
        if entry.error is not None:
            self._fail(entry.frame, entry.error)
            return
        assert entry.write is not None and entry.result is not None
        try:
            entry.write.result()
        except ColorizeError as error:
            self._fail(entry.frame, error)
            self.write_failed = self.write_failed or error
            return
        except Exception as error:
            bug = _internal(error, f"writing {path}")
            self._fail(entry.frame, bug)
            self.write_failed = self.write_failed or bug
            return
        info = entry.result.info
        if self.qa is not None and not entry.repeat:
            try:
                self.qa.add(entry.frame, path, entry.result.qa, info)
            except ColorizeError as error:
                self._fail(entry.frame, error)
                self.write_failed = self.write_failed or error
                return
        self.summary.count_trace_unfilled(info.get("trace_unfilled"))
        gate = self._gate(entry.frame, info.get("unresolved"))
        if gate is not None:
            self._fail(entry.frame, gate, {"output": str(path), **info})
            return
        self.summary.done += 1
        fields = {
            "frame": entry.frame,
            "output": str(path),
            "seconds": round(entry.seconds, 4),
            "reason": entry.reason,
            **self._timing_fields(entry.frame),
        }
        # The engine's details follow; a key of the same name as one of the runner's never replaces it.
        self.events.emit(
            "frame_done", **{**fields, **{str(k): v for k, v in info.items() if k not in fields}}
        )

    def _fresh(self, state: OutputState) -> None:
        unresolved = state.stored.unresolved if state.stored else None
        gate = self._gate(state.frame, unresolved)
        if gate is not None:
            self._fail(state.frame, gate, {"output": str(state.path), "unresolved": unresolved})
            return
        self.summary.skipped += 1
        self.events.emit(
            "frame_skipped",
            frame=state.frame,
            output=str(state.path),
            reason="fresh",
            **self._timing_fields(state.frame),
        )

    def _timing_fields(self, frame: int) -> dict[str, Any]:
        """`drawing` (the drawing the frame shows; null: blank) and `held_from` (the first frame that shows
        it, when that is another one) under hold or timesheet timing, and under strict timing when the shot
        has exact repeats (`colorize.repeats`); nothing under strict timing without."""
        timing = self.plan.exposures
        if timing.kind == "strict" and timing.is_identity:
            return {}
        fields: dict[str, Any] = {"drawing": timing.drawing(frame)}
        held = timing.held_from(frame)
        if held is not None:
            fields["held_from"] = held
        return fields

    def _write_blanks(self, blanks: list[tuple[int, str]]) -> None:
        """Blank frames of a timesheet (an empty cel): a fully transparent frame each (white with
        `output_alpha: off`), written without the engine."""
        if not blanks:
            return
        empty = np.zeros((*self.size, 4), np.uint8)
        encoded: dict[str, list[bytes]] = {}  # record -> the bytes of a blank frame (encoded once)
        for f, reason in blanks:
            record = self.freshness.expected(f).to_text()
            try:
                if record not in encoded:
                    blank = FrameResult(f, empty, layers={name: empty for name in ENGINE_LAYERS})
                    encoded[record] = encode_output(self.plan, self.files[f], blank, record)
                images.write_encoded(list(self.files[f].values()), encoded[record], record)
            except ColorizeError as error:
                self._fail(f, error)
                raise _Stop(error) from None
            self.summary.done += 1
            self.events.emit(
                "frame_done",
                frame=f,
                output=str(self.outputs[f]),
                seconds=0.0,
                reason=reason,
                blank=True,
                **self._timing_fields(f),
            )

    def _gate(self, frame: int, unresolved: Any) -> QualityGateFailed | None:
        """Count the frame's unresolved regions; the quality-gate failure if there are too many."""
        if not self.summary.count_unresolved(unresolved):
            return None
        limit = self.plan.settings.max_unresolved
        if limit is None or unresolved <= limit:
            return None
        return QualityGateFailed(
            f"{self.outputs[frame]}: frame {frame} has {unresolved} unresolved regions, more than "
            f"max_unresolved {limit} (written; a painter should check it)"
        )

    def _fail(self, frame: int, error: ColorizeError, details: dict[str, Any] | None = None) -> None:
        self.summary.failed += 1
        self.summary.failures.append((frame, error))
        fields: dict[str, Any] = {
            "frame": frame,
            "error": str(error).splitlines()[0],
            "exit_code": int(error.exit_code),
        }
        extra = {str(k): v for k, v in (details or {}).items() if k not in fields}
        self.events.emit("frame_failed", **fields, **extra)


def _count_of(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _result_problem(
    engine: Engine, results: Any, frames: list[int], size: tuple[int, int], layers: tuple[str, ...] = ()
) -> InternalError | None:
    """What is wrong with an engine's results (a bug in the engine), or None."""
    name = engine.name
    got = [getattr(r, "frame", None) for r in results] if isinstance(results, list | tuple) else results
    if got != frames:
        return InternalError(
            f"engine {name!r} returned frames {got!r} for frames {frames} (same order expected)"
        )
    for r in results:
        if not isinstance(getattr(r, "info", None), dict):
            return InternalError(f"engine {name!r} returned no info dict for frame {r.frame}")
        if isinstance(getattr(r, "error", None), ColorizeError):
            continue
        image = r.image
        shape = getattr(image, "shape", None)
        if (
            not isinstance(image, np.ndarray)
            or image.dtype not in (np.uint8, np.uint16)
            or image.shape[:2] != size
            or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)))
        ):
            what = f"{getattr(image, 'dtype', type(image).__name__)} {shape}"
            return InternalError(
                f"engine {name!r} returned a {what} image for frame {r.frame}; expected uint8 or uint16 "
                f"of {size[1]}×{size[0]}, RGB or RGBA"
            )
        made = getattr(r, "layers", {})
        for layer in layers:
            got = made.get(layer) if isinstance(made, dict) else None
            if not isinstance(got, np.ndarray) or got.shape[:2] != size or got.ndim != 3:
                return InternalError(f"engine {name!r} returned no {layer} layer for frame {r.frame}")
    return None


def _out_of_memory(error: Exception, engine: Engine, frames: list[int], batch: int) -> OutOfMemory | None:
    """An OutOfMemory with the hint, if `error` is running out of CPU or GPU (torch/CUDA) memory."""
    oom = isinstance(error, MemoryError)
    torch = sys.modules.get("torch")  # only if the engine already imported it
    if torch is not None:
        kinds = tuple(
            k
            for k in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
            if k
        )
        oom = oom or (bool(kinds) and isinstance(error, kinds))
    oom = oom or (isinstance(error, RuntimeError) and "out of memory" in str(error).lower())
    if not oom:
        return None
    return OutOfMemory(
        f"out of memory coloring frames {frame_range_text(frames)} with engine "
        f"{engine.name!r} at --batch {batch}; lower --batch (or diffusion.resolution)"
    )


def _internal(error: BaseException, doing: str) -> InternalError:
    bug = InternalError(
        f"{doing}: {type(error).__name__}: {error}".splitlines()[0] + " (a bug: please report it)"
    )
    bug.__cause__ = error
    return bug


def _read_frame(
    plan: ShotPlan,
    frame: int,
    preprocess: Callable[[FrameInput], FrameInput] | None = None,
    native_depth: bool = False,
) -> FrameInput:
    fp = plan.frame(frame)
    read = images.read_image if native_depth else images.read_rgba
    frame_input = FrameInput(
        frame=frame,
        lineart=read(fp.lineart),
        masks={name: images.read_mask(path) for name, path in fp.masks.items()},
        keyframe=read(fp.keyframe) if fp.keyframe else None,
    )
    return preprocess(frame_input) if preprocess is not None else frame_input


def _check_schedule(batches: list[tuple[int, ...]], todo: list[int]) -> None:
    """An engine schedule must hand over every frame to color exactly once (else it is a bug)."""
    given = [f for batch in batches for f in batch]
    if sorted(given) != sorted(todo) or any(not batch for batch in batches):
        raise InternalError(
            f"the engine's schedule gives frames {frame_range_text(sorted(set(given)))} in {len(batches)} "
            f"batches for frames {frame_range_text(todo)} (each exactly once expected; a bug)"
        )
