"""The summary of a run: counts of frames done, skipped, failed, drawings colored, and why it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from colorize.errors import ColorizeError, ExitCode, most_serious


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[int, ColorizeError]] = field(default_factory=list)
    errors: list[ColorizeError] = field(default_factory=list)  # problems of the run, not of one frame
    stopped: str | None = None  # why the run stopped before its last frame
    stop_code: ExitCode | None = None
    unresolved_regions: int = 0
    frames_with_unresolved: int = 0
    drawings: int = 0  # drawings the engine colored (a held drawing once, however many frames show it)
    trace_unfilled: int = 0  # colour-trace line pixels left unfilled, in the frames made by this run
    frames_with_trace_unfilled: int = 0

    def count_trace_unfilled(self, unfilled: Any) -> None:
        """Add a frame's `trace_unfilled` count (from its event) to the totals, when it has one."""
        if isinstance(unfilled, int) and not isinstance(unfilled, bool) and unfilled > 0:
            self.trace_unfilled += unfilled
            self.frames_with_trace_unfilled += 1

    def count_unresolved(self, unresolved: Any) -> bool:
        """Add a frame's `unresolved` count (from its event or record) to the totals; False when it is
        not a count (an engine that does not report one)."""
        if not isinstance(unresolved, int) or isinstance(unresolved, bool):
            return False
        if unresolved:
            self.unresolved_regions += unresolved
            self.frames_with_unresolved += 1
        return True

    @property
    def not_run(self) -> int:
        return max(0, self.total - self.done - self.skipped - self.failed)

    @property
    def exit_code(self) -> ExitCode:
        codes = [e.exit_code for _, e in self.failures] + [e.exit_code for e in self.errors]
        return most_serious(codes + ([self.stop_code] if self.stop_code else []))

    def stop(self, code: ExitCode, why: str) -> None:
        if self.stopped is None:
            self.stopped, self.stop_code = why, code
