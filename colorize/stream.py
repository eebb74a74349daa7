"""The frame stream of a run on this machine: read ahead, color in batches, write behind.

Stages (concurrent.futures, so an exception in any stage comes back through its future):

- batching: the engine's schedule (`colorize.engines.batches_of`) decides which frames go together and in
  which order: consecutive frames, or for diffusion `temporal: warp` the frames of different warp chains
  side by side;
- reading (`colorize.reading`): a pool of threads reads the frames of the next two batches ahead, and runs
  the engine's `preprocess` on each (per-frame CPU work that needs no other result: masks, sketches,
  line-art flow), so that it overlaps the engine's work on the current batch;
- coloring: the engine runs in the main thread, one batch at a time (where Ctrl-C and SIGTERM arrive);
- writing (`colorize.output`): a pool of threads encodes each drawing once and writes it atomically to
  every frame that shows it (PNG compression releases the GIL), at most two batches behind, so memory
  stays flat however long the shot is;
- reporting (`colorize.frame_events`): each frame's event once its write is done, in the order of coloring.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from colorize import images
from colorize.engines import BatchSizes, batches_of, engine_spec
from colorize.engines.base import Engine, FrameInput, FrameResult, reads_native_depth
from colorize.errors import ColorizeError, InternalError, OutputClosed
from colorize.events import Stopwatch
from colorize.failures import StopRun, check_schedule, internal, out_of_memory, result_problem
from colorize.frame_events import Entry, FrameEvents
from colorize.layers import ENGINE_LAYERS
from colorize.output import encode_output, engine_layers, write_encoded
from colorize.provenance import Freshness
from colorize.reading import read_frame, shot_context
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan

WRITERS = max(1, min(4, os.cpu_count() or 1))
READERS = max(1, min(8, os.cpu_count() or 1))  # reading and the engine's per-frame preprocessing

Work = dict[int, list[tuple[int, str]]]  # drawing -> its frames to write (and why), in frame order


class FrameStream:
    """Colors a run's frames on this machine; `files`: frame -> every file it writes (`outputs_of`)."""

    def __init__(
        self,
        plan: ShotPlan,
        reports: FrameEvents,
        freshness: Freshness,
        files: dict[int, dict[str, Path]],
        size: tuple[int, int],
    ):
        self.plan = plan
        self.reports = reports
        self.freshness = freshness
        self.files = files
        self.size = size
        self.native_depth = False  # the engine takes 16-bit frames at 16 bits (`reads_native_depth`)

    def run(self, engine: Engine | Callable[[], Engine], todo: list[tuple[int, str]]) -> None:
        """Color and write `todo` (frame, reason); the engine is made only if a drawing needs it."""
        work: Work = {}
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
        qa = self.reports.qa
        try:
            self._run_engine(colorizer, work)
        finally:
            colorizer.close()  # its thread pools end with the stream, whatever happened
            if qa is not None and qa.figures:
                qa.finish()

    def _run_engine(self, colorizer: Engine, work: Work) -> None:
        self.native_depth = reads_native_depth(colorizer, self.plan.settings)
        colorizer.prepare(shot_context(self.plan, self.size, self.reports.qa is not None, self.native_depth))
        self.reports.notes(colorizer)
        plan = self.plan
        drawings = sorted(work)
        batches = batches_of(
            engine_spec(plan.engine), drawings, plan.frames, tuple(sorted(plan.keyframe_paths)), plan.settings
        )
        check_schedule(batches, drawings)
        self._stream(colorizer, batches, work)

    def _stream(self, engine: Engine, batches: list[tuple[int, ...]], work: Work) -> None:
        """Color the drawings of `batches`; `work`: drawing -> the frames (and why) that show it."""
        window = BatchSizes(self.plan.settings.batch).read_ahead
        pending = iter([f for batch in batches for f in batch])
        reads: deque[tuple[int, Future[FrameInput]]] = deque()
        preprocess = engine.preprocess
        reader = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="colorize-read")
        writer = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="colorize-write")
        reports = self.reports

        def read_ahead() -> None:
            while len(reads) < window:
                f = next(pending, None)
                if f is None:
                    return
                reads.append((f, reader.submit(read_frame, self.plan, f, preprocess, self.native_depth)))

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
                        reports.fail_drawing(work[f], error)
                    except Exception as error:
                        bug = internal(error, f"reading frame {f}")
                        reports.fail_drawing(work[f], bug)
                        raise StopRun(bug) from None
                if batch:
                    self._color(engine, batch, work, writer)
                reports.report(keep=window)
                if reports.write_failed is not None:
                    raise StopRun(reports.write_failed)
            reports.report(keep=0)
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
            writer.shutdown(wait=True)  # writes in flight finish: every output is whole or absent
            with contextlib.suppress(OutputClosed):
                reports.report_ready()

    def _color(self, engine: Engine, batch: list[FrameInput], work: Work, writer: ThreadPoolExecutor) -> None:
        """Color one batch of drawings; each result is written to every frame that shows its drawing."""
        frames = [fi.frame for fi in batch]
        clock = Stopwatch()
        fatal = True
        error: ColorizeError | None
        try:
            results = engine.colorize(batch)
            error = result_problem(engine, results, frames, self.size, engine_layers(self.plan))
        except InternalError as bug:
            error = bug
        except ColorizeError as bad_input:  # a bad file the engine read: this batch fails, the run goes on
            error, fatal = bad_input, False
        except Exception as failure:
            error = out_of_memory(failure, engine, frames, self.plan.settings.batch) or internal(
                failure, f"engine {engine.name!r} on frames {frame_range_text(frames)}"
            )
        self.reports.notes(engine)
        if error is not None:
            for f in frames:
                self.reports.fail_drawing(work[f], error)
            if fatal:
                raise StopRun(error)
            return
        per_frame = clock.seconds / len(batch)
        for result in results:
            if result.error is not None or result.image is None:  # (no image without an error: checked)
                self.reports.fail_drawing(work[result.frame], result.error)
                continue
            self.reports.summary.drawings += 1
            seconds = result.seconds if result.seconds is not None else per_frame
            # Every frame that shows the drawing gets the same bytes, encoded once. Frames of one drawing
            # share their dependencies, so their records are the same too (grouped by record all the same).
            encoded: dict[str, Future[list[bytes]]] = {}
            for i, (f, reason) in enumerate(work[result.frame]):
                record = self.freshness.expected(f).with_result(result.info).to_text()
                if record not in encoded:
                    encoded[record] = writer.submit(encode_output, self.plan, self.files[f], result, record)
                write = writer.submit(write_encoded, self.files[f], encoded[record], record)
                self.reports.out.append(
                    Entry(f, reason, result, seconds if i == 0 else 0.0, write, repeat=i > 0)
                )

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
                self.reports.fail(f, error)
                raise StopRun(error) from None
            self.reports.blank_done(f, reason)
