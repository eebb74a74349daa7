"""The frame events of a run and the summary's counts, in the order the frames were colored.

Each selected frame gets exactly one `frame_done`, `frame_skipped` or `frame_failed`, emitted from the main
thread. Frames on their way out wait in a line (`FrameEvents.out`): a frame is reported once its write is
done and every frame colored before it was reported; the quality gate (`max_unresolved`) and the QA sheet
see each frame as it is reported.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize.engines.base import Engine, FrameResult
from colorize.errors import ColorizeError, QualityGateFailed
from colorize.events import Events
from colorize.failures import internal
from colorize.provenance import OutputState
from colorize.qa import QAWriter
from colorize.shot import ShotPlan
from colorize.summary import Summary


@dataclass
class Entry:
    """One frame on its way out, in frame order: a write in flight, or a failure to report."""

    frame: int
    reason: str = ""
    result: FrameResult | None = None
    seconds: float = 0.0
    write: Future[None] | None = None
    error: ColorizeError | None = None
    repeat: bool = False  # another frame of this run showed the same drawing first (same pixels)


class FrameEvents:
    """The events of one run's frames, and what they add to its summary."""

    def __init__(self, plan: ShotPlan, events: Events, summary: Summary, qa_dir: Path | None = None):
        self.plan = plan
        self.events = events
        self.summary = summary
        self.outputs = {f: plan.output.path(f) for f in plan.selected}
        self.out: deque[Entry] = deque()  # frames in flight to their events, in order
        self.write_failed: ColorizeError | None = None
        self.qa = QAWriter(qa_dir) if qa_dir is not None else None

    def notes(self, engine: Engine) -> None:
        """The engine's messages for people, as `message` events."""
        while engine.notes:
            self.events.emit("message", text=str(engine.notes.pop(0)))

    def fail_drawing(self, frames: list[tuple[int, str]], error: ColorizeError | None) -> None:
        """Every frame that shows a drawing that could not be colored fails with its error."""
        self.out.extend(Entry(f, error=error) for f, _ in frames)

    def report(self, keep: int) -> None:
        """Report the frames at the head of the line whose writes are done, then wait until at most `keep`
        frames are in flight (back-pressure on the engine)."""
        self.report_ready()
        while len(self.out) > keep:
            self._report_one()

    def report_ready(self) -> None:
        """Report the frames at the head of the line whose writes are done (or that have nothing to write)."""
        while self.out and (self.out[0].write is None or self.out[0].write.done()):
            self._report_one()

    def _report_one(self) -> None:
        entry = self.out.popleft()
        path = self.outputs[entry.frame]
        if entry.error is not None:
            self.fail(entry.frame, entry.error)
            return
        assert entry.write is not None and entry.result is not None
        try:
            entry.write.result()
        except ColorizeError as error:
            self.fail(entry.frame, error)
            self.write_failed = self.write_failed or error
            return
        except Exception as error:
            bug = internal(error, f"writing {path}")
            self.fail(entry.frame, bug)
            self.write_failed = self.write_failed or bug
            return
        info = entry.result.info
        if self.qa is not None and not entry.repeat:
            try:
                self.qa.add(entry.frame, path, entry.result.qa, info)
            except ColorizeError as error:
                self.fail(entry.frame, error)
                self.write_failed = self.write_failed or error
                return
        self.summary.count_trace_unfilled(info.get("trace_unfilled"))
        gate = self._gate(entry.frame, info.get("unresolved"))
        if gate is not None:
            self.fail(entry.frame, gate, {"output": str(path), **info})
            return
        self.summary.done += 1
        fields = {
            "frame": entry.frame,
            "output": str(path),
            "seconds": round(entry.seconds, 4),
            "reason": entry.reason,
            **self.timing_fields(entry.frame),
        }
        # The engine's details follow; a key of the same name as one of the runner's never replaces it.
        self.events.emit(
            "frame_done", **{**fields, **{str(k): v for k, v in info.items() if k not in fields}}
        )

    def fresh(self, state: OutputState) -> None:
        """A frame whose output is fresh: skipped (failed if its stored record fails the quality gate)."""
        unresolved = state.stored.unresolved if state.stored else None
        gate = self._gate(state.frame, unresolved)
        if gate is not None:
            self.fail(state.frame, gate, {"output": str(state.path), "unresolved": unresolved})
            return
        self.summary.skipped += 1
        self.events.emit(
            "frame_skipped",
            frame=state.frame,
            output=str(state.path),
            reason="fresh",
            **self.timing_fields(state.frame),
        )

    def blank_done(self, frame: int, reason: str) -> None:
        """A blank frame of a timesheet, written without the engine."""
        self.summary.done += 1
        self.events.emit(
            "frame_done",
            frame=frame,
            output=str(self.outputs[frame]),
            seconds=0.0,
            reason=reason,
            blank=True,
            **self.timing_fields(frame),
        )

    def timing_fields(self, frame: int) -> dict[str, Any]:
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

    def fail(self, frame: int, error: ColorizeError, details: dict[str, Any] | None = None) -> None:
        """The `frame_failed` event of `frame` (`details`: more fields, never replacing the event's own)."""
        self.summary.failed += 1
        self.summary.failures.append((frame, error))
        fields: dict[str, Any] = {
            "frame": frame,
            "error": str(error).splitlines()[0],
            "exit_code": int(error.exit_code),
        }
        extra = {str(k): v for k, v in (details or {}).items() if k not in fields}
        self.events.emit("frame_failed", **fields, **extra)
