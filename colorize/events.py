"""Run events: JSON lines for machines (stdout), progress and messages for people (stderr).

Every event is a flat JSON object with `event` (its type) and `time` (UTC, ISO 8601). Types and fields are
documented in the README ("Events"). The library emits; the CLI decides where events go.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, TextIO

SCHEMA_VERSION = 1


class Events:
    """Fan-out of run events to an optional JSON-lines stream and an optional human reporter."""

    def __init__(self, json_stream: TextIO | None = None, human: HumanReporter | None = None):
        self.json_stream = json_stream
        self.human = human
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        record.update(fields)
        with self._lock:
            if self.json_stream is not None:
                self.json_stream.write(json.dumps(record, default=str) + "\n")
                self.json_stream.flush()
            if self.human is not None:
                self.human.handle(record)

    def close(self) -> None:
        if self.human is not None:
            self.human.close()


class HumanReporter:
    """Progress bar on a terminal (rich), plain lines otherwise; always a summary line at the end."""

    def __init__(self, stream: TextIO | None = None, progress: bool | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.show_progress = self.stream.isatty() if progress is None else progress
        self._progress = None
        self._task = None

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def handle(self, record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == "run_start":
            if not self.quiet:
                self._line(
                    f"colorize: {record['frames_total']} frames ({record['frames']}) → {record['output']} "
                    f"[engine {record['engine']}]"
                )
            if self.show_progress and record["frames_total"]:
                self._start(record["frames_total"])
        elif kind == "message" and not self.quiet:
            self._line(f"colorize: {record['text']}")
        elif kind in ("frame_done", "frame_skipped"):
            self._advance()
        elif kind == "frame_failed":
            self._line(f"colorize: error: {record['error']}")
            self._advance()
        elif kind == "summary":
            self.close()
            fps = record["frames_per_second"]
            self.stream.write(
                f"colorize: {record['done']} done, {record['skipped']} skipped, {record['failed']} failed "
                f"in {record['seconds']:.1f} s ({fps:.2f} frames/s)\n"
            )
            self.stream.flush()

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]colorize"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("frames", total=total)

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
