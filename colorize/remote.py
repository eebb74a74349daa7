"""A run on several devices: the frames to color are split into one chunk per device (`colorize.workers`),
each colored by a `colorize shot --frames CHUNK --json` worker process; the workers' frame events are
merged into this run's stream (in the order they arrive) and its one summary. A worker that dies or stops
has its frames that it did not report fail; the other workers finish."""

from __future__ import annotations

from collections.abc import Sequence
from queue import Empty, Queue
from typing import Any

from colorize.errors import ExitCode, OutputClosed
from colorize.frame_events import FrameEvents
from colorize.provenance import Freshness
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan
from colorize.workers import (
    STOP_SECONDS,
    Device,
    Worker,
    WorkerFailed,
    split_frames,
    start_workers,
    stop_workers,
)

FRAME_EVENTS = ("frame_done", "frame_skipped", "frame_failed")


class DeviceRun:
    """Colors a run's frames in worker processes, one per device, and relays their events."""

    def __init__(self, plan: ShotPlan, reports: FrameEvents, freshness: Freshness):
        self.plan = plan
        self.reports = reports
        self.freshness = freshness

    def run(
        self,
        todo: list[tuple[int, str]],
        devices: list[Device],
        worker_args: list[str],
        overwrite: bool,
        command: Sequence[str],
    ) -> None:
        """Color `todo` (frame, reason) with one worker per device; returns once every worker ended."""
        reasons = dict(todo)
        if not reasons:
            return
        chunks = split_frames(list(reasons), self.plan.joined, len(devices))
        args = [*worker_args, *(["--overwrite"] if overwrite else [])]
        workers, queue = start_workers(
            list(zip(devices, chunks, strict=False)),
            lambda frames: [*args, "--frames", frame_range_text(frames)],
            command,
        )
        self.reports.events.emit(
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
            self.reports.summary.drawings += sum(
                _count_of((w.summary or {}).get("drawings_colored")) for w in workers
            )

    def _drain(self, queue: Queue, running: int) -> None:
        """After stopping the workers: the frames they finished meanwhile still get their events."""
        try:
            while running:
                worker, record = queue.get(timeout=STOP_SECONDS)
                if record is None:
                    running -= 1
                elif record["event"] in FRAME_EVENTS:
                    self._relay(worker, record)
        except (Empty, OutputClosed):
            pass

    def _relay(self, worker: Worker, record: dict[str, Any]) -> None:
        """One event of a worker, into this run's stream and summary."""
        summary, events = self.reports.summary, self.reports.events
        kind = record["event"]
        fields = {k: v for k, v in record.items() if k not in ("event", "time")}
        frame = fields.get("frame")
        if kind in FRAME_EVENTS:
            if frame not in worker.frames or frame in worker.reported:
                return
            worker.reported.add(frame)
            summary.count_unresolved(fields.get("unresolved"))
            summary.count_trace_unfilled(fields.get("trace_unfilled"))
            if kind == "frame_failed":
                error = WorkerFailed(str(fields.pop("error", "")), fields.pop("exit_code", ExitCode.INTERNAL))
                self.reports.fail(frame, error, fields)
                return
            if kind == "frame_done":
                summary.done += 1
            else:
                summary.skipped += 1
            events.emit(kind, **fields)
        elif kind == "error":
            worker.errors.append((str(fields.get("error")), int(fields.get("exit_code", ExitCode.INTERNAL))))
        elif kind == "summary":
            worker.summary = fields
        elif kind == "message":
            events.emit("message", text=f"{worker.device.name}: {fields.get('text')}")

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
                self.reports.fail(f, error)
                continue
            self.reports.summary.done += 1
            self.reports.events.emit(
                "frame_done",
                frame=f,
                output=str(state.path),
                seconds=None,
                reason=reasons[f],
                unreported=str(error),
            )


def _count_of(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
