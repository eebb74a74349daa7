"""Run events: JSON lines for machines (stdout), progress and messages for people (stderr).

Every event is a flat JSON object with `event` (its type) and `time` (UTC, ISO 8601); `run_start` carries
`schema`, the version of this event format. Types and fields are documented in the README ("Events"). The
library emits; the CLI decides where events go.

A reader that goes away (`colorize shot … --json | head -n 3`) closes the stream: the next `emit` raises
`OutputClosed` once, the run stops, and nothing more is written there (not even at interpreter exit).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Literal, TextIO

from colorize.errors import OutputClosed

SCHEMA = 2  # 2: `time` on every event, `schema` in run_start, `error` events during runs, frame reasons

ProgressMode = Literal["auto", "bar", "lines", "openjd", "none"]


class Events:
    """Fan-out of run events to an optional JSON-lines stream and an optional human reporter."""

    def __init__(self, json_stream: TextIO | None = None, human: HumanReporter | None = None):
        self.json_stream = json_stream
        self.human = human
        self._lock = threading.Lock()

    def emit(self, event: str, /, **fields: Any) -> None:
        """Send one event; raise OutputClosed if a stream's reader has gone (once per stream)."""
        record: dict[str, Any] = {
            "event": event,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        record.update((k, v) for k, v in fields.items() if k not in record)
        closed = None
        with self._lock:
            if self.json_stream is not None:
                try:
                    self.json_stream.write(json.dumps(record, default=str) + "\n")
                    self.json_stream.flush()
                except (BrokenPipeError, ValueError):  # ValueError: the file object was closed
                    closed = "stdout"
                    _silence(self.json_stream)
                    self.json_stream = None
            if self.human is not None:
                try:
                    self.human.handle(record)
                except (BrokenPipeError, ValueError):
                    closed = closed or "stderr"
                    _silence(self.human.stream)
                    self.human.stop()
                    self.human = None
        if closed:
            raise OutputClosed(f"{closed} was closed by its reader")

    def close(self) -> None:
        if self.human is not None:
            self.human.close()


def _silence(stream: TextIO) -> None:
    """Point a closed pipe's file descriptor at /dev/null so that later flushes (exit) stay quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests), or already gone
        pass


class HumanReporter:
    """What people see on stderr: a header, errors, progress, and always a summary line at the end.

    Progress modes: `bar` (rich progress bar, for terminals), `lines` (a plain line every `interval`
    seconds: frame, done of total, frames/s, ETA; for logs and farms), `openjd` (the same as Open Job
    Description `openjd_progress:` / `openjd_status:` lines, which Deadline shows), `none`; `auto` is `bar`
    on a terminal and `lines` otherwise. `interval` 0 prints a progress line after every frame.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        progress: ProgressMode = "auto",
        quiet: bool = False,
        interval: float = 5.0,
    ):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        if progress == "auto":
            progress = "bar" if _isatty(self.stream) else "lines"
        self.mode: ProgressMode = "none" if quiet else progress
        self.interval = interval
        self._lock = threading.RLock()
        self._bar: Any = None
        self._task: Any = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_error: str | None = None
        self.total = self.done = self.skipped = self.failed = 0
        self.last_frame: int | None = None
        self._started: float | None = None  # when the first frame was worked on (skips are instant)

    # -- events ------------------------------------------------------------------------------------------

    def handle(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._handle(record)

    def _handle(self, record: dict[str, Any]) -> None:
        kind = record["event"]
        if kind == "run_start":
            self.total = record["frames_total"]
            if not self.quiet:
                self._line(
                    f"colorize: {record['frames_total']} frames ({record['frames']}) → {record['output']} "
                    f"[engine {record['engine']}]"
                )
            self._start()
        elif kind == "message" and not self.quiet:
            self._line(f"colorize: {record['text']}")
        elif kind == "error":
            self._error(record["error"])
        elif kind in ("frame_done", "frame_skipped", "frame_failed"):
            if kind == "frame_failed":
                self.failed += 1
                self._error(record["error"])
            elif kind == "frame_done":
                self.done += 1
            else:
                self.skipped += 1
            if kind != "frame_skipped" and self._started is None:
                self._started = time.monotonic() - float(record.get("seconds") or 0)
            self.last_frame = record["frame"]
            if self._bar is not None:
                self._bar.advance(self._task)
            elif self.interval <= 0:
                self._progress_line()
        elif kind == "summary":
            self.stop()
            self._line(_summary_text(record))
            if self.mode == "openjd":
                if record["exit_code"] == 0:
                    self._line("openjd_progress: 100.0")
                self._line(f"openjd_status: {_summary_text(record).removeprefix('colorize: ')}")

    def _error(self, text: str) -> None:
        if text != self._last_error:  # a failed batch reports the same error for each of its frames
            self._line(f"colorize: error: {text}")
        self._last_error = text

    # -- progress ----------------------------------------------------------------------------------------

    def progress_text(self) -> str:
        """`12/24 frames (50%), frame 1012, 1.90 frames/s, ETA 6 s` (for lines and openjd_status)."""
        processed = self.done + self.skipped + self.failed
        percent = 100.0 * processed / self.total if self.total else 100.0
        parts = [f"{processed}/{self.total} frames ({percent:.0f}%)"]
        if self.last_frame is not None:
            parts.append(f"frame {self.last_frame}")
        elapsed = time.monotonic() - self._started if self._started is not None else 0.0
        if self.done and elapsed > 0:
            fps = self.done / elapsed
            parts.append(f"{fps:.2f} frames/s")
            parts.append(f"ETA {_duration((self.total - processed) / fps)}")
        elif processed < self.total:
            parts.append("working")
        return ", ".join(parts)

    def _progress_line(self) -> None:
        if self.mode == "lines":
            self._line(f"colorize: {self.progress_text()}")
        elif self.mode == "openjd":
            processed = self.done + self.skipped + self.failed
            percent = 100.0 * processed / self.total if self.total else 100.0
            self._line(f"openjd_progress: {percent:.1f}")
            self._line(f"openjd_status: {self.progress_text()}")

    def _start(self) -> None:
        if self.mode == "bar" and self.total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]colorize"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("frames", total=self.total)
        elif self.mode in ("lines", "openjd") and self.interval > 0 and self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="colorize-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._progress_line()
                except (OSError, ValueError):  # stderr went away: nothing more to say
                    return

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def stop(self) -> None:
        """Stop the progress display (bar or ticker)."""
        self._stop.set()  # the ticker (a daemon) sees it and ends; nobody waits for it
        self._ticker = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        with self._lock:
            self.stop()


def _summary_text(record: dict[str, Any]) -> str:
    text = (
        f"colorize: {record['done']} done, {record['skipped']} skipped, {record['failed']} failed "
        f"in {record['seconds']:.1f} s ({record['frames_per_second']:.2f} frames/s)"
    )
    if record.get("not_run"):
        text += f", {record['not_run']} not run"
    drawings = record.get("drawings_colored")
    if drawings is not None and drawings != record["done"]:
        text += f"; {drawings} drawing{'s' if drawings != 1 else ''} colored"
    if record.get("unresolved_regions"):
        text += (
            f"; {record['unresolved_regions']} unresolved regions in {record['frames_with_unresolved']} "
            "frames"
        )
    if record.get("stopped"):
        text += f"; stopped: {record['stopped']}"
    return text


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
