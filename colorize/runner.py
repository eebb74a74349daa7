"""The frame stream: read ahead, color in batches, write behind, resume, summarise.

Reading and writing run in their own threads with bounded queues, so the engine works while the disk
does, and memory stays flat however long the shot is.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colorize import images
from colorize.engines.base import Character, Engine, FrameInput, FrameResult, ShotContext
from colorize.errors import ColorizeError, ExitCode, InternalError, OutputError
from colorize.events import Events, Stopwatch
from colorize.qa import QAWriter
from colorize.shot import ShotPlan

_END = object()


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[int, ColorizeError]] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return self.failures[0][1].exit_code if self.failures else ExitCode.OK


def shot_context(plan: ShotPlan, size: tuple[int, int]) -> ShotContext:
    """What engines may know of the whole shot; references are decoded here, once."""

    def load_masks(frame: int) -> dict[str, np.ndarray]:
        return {c.name: images.read_mask(c.mask.path(frame)) for c in plan.characters if c.mask is not None}

    def load_output(frame: int) -> np.ndarray | None:
        path = plan.output.path(frame)
        return images.read_rgb(path) if path.is_file() else None

    return ShotContext(
        frames=plan.frames,
        keyframes=tuple(sorted(plan.keyframe_paths)),
        size=size,
        characters=tuple(
            Character(c.name, images.read_rgb(c.reference), c.mask is not None) for c in plan.characters
        ),
        background=images.read_rgb(plan.background) if plan.background else None,
        settings=plan.settings,
        load_lineart=lambda f: images.read_rgba(plan.lineart_paths[f]),
        load_keyframe=lambda f: images.read_rgba(plan.keyframe_paths[f]),
        load_masks=load_masks,
        load_output=load_output,
    )


def run_shot(
    plan: ShotPlan,
    engine: Engine,
    events: Events,
    *,
    size: tuple[int, int],
    overwrite: bool = False,
    qa_dir: Path | None = None,
) -> Summary:
    """Color the plan's selected frames with `engine`; every output is written atomically.

    `qa_dir`: where QA overlays (`FrameResult.qa`), `qa.json` and the worst-frames sheet go."""
    clock = Stopwatch()
    summary = Summary()
    outputs = {f: plan.output.path(f) for f in plan.selected}
    images.remove_stale_temps(list(outputs.values()))
    todo = []
    for f in plan.selected:
        if not overwrite and outputs[f].exists():
            summary.skipped += 1
            events.emit("frame_skipped", frame=f, output=str(outputs[f]), reason="output exists")
        else:
            todo.append(f)
    if todo:
        _make_folders({outputs[f].parent for f in todo})
        context = shot_context(plan, size)
        engine.prepare(context)
        qa = QAWriter(qa_dir) if qa_dir is not None else None
        _stream(plan, engine, events, todo, outputs, summary, qa)
        if qa is not None:
            qa.finish()
    summary.seconds = clock.seconds
    return summary


def _make_folders(folders: set[Path]) -> None:
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{folder}: cannot create the output folder ({error.strerror})") from None


def _stream(
    plan: ShotPlan,
    engine: Engine,
    events: Events,
    todo: list[int],
    outputs: dict[int, Path],
    summary: Summary,
    qa: QAWriter | None = None,
) -> None:
    batch_size = plan.settings.batch
    read_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    write_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    stop = threading.Event()
    lock = threading.Lock()

    def fail(frame: int, error: ColorizeError) -> None:
        with lock:
            summary.failed += 1
            summary.failures.append((frame, error))
        events.emit("frame_failed", frame=frame, error=str(error), exit_code=int(error.exit_code))

    def reader() -> None:
        for f in todo:
            if stop.is_set():
                break
            try:
                item: FrameInput | ColorizeError = _read_frame(plan, f)
            except ColorizeError as error:
                item = error
            read_q.put((f, item))
        read_q.put(_END)

    def writer() -> None:
        while True:
            got = write_q.get()
            if got is _END:
                return
            result, seconds = got
            path = outputs[result.frame]
            try:
                s = plan.settings
                images.write_image(path, images.output_array(result.image, s.output_alpha, s.output_depth))
                if qa is not None:
                    qa.add(result.frame, path, result.qa, result.info)
            except ColorizeError as error:
                fail(result.frame, error)
                continue
            with lock:
                summary.done += 1
            events.emit(
                "frame_done", frame=result.frame, output=str(path), seconds=round(seconds, 4), **result.info
            )

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    try:
        finished = False
        while not finished:
            batch: list[FrameInput] = []
            while len(batch) < batch_size:
                got = read_q.get()
                if got is _END:
                    finished = True
                    break
                f, item = got
                if isinstance(item, ColorizeError):
                    fail(f, item)
                else:
                    batch.append(item)
            if batch:
                for result, seconds in _color_batch(engine, batch):
                    write_q.put((result, seconds))
    finally:
        stop.set()
        write_q.put(_END)
        threads[1].join()


def _color_batch(engine: Engine, batch: list[FrameInput]) -> list[tuple[FrameResult, float]]:
    clock = Stopwatch()
    try:
        results = engine.colorize(batch)
    except MemoryError:
        raise InternalError(
            f"out of memory coloring frames {batch[0].frame}-{batch[-1].frame}; lower --batch"
        ) from None
    per_frame = clock.seconds / len(batch)
    expected = [b.frame for b in batch]
    if [r.frame for r in results] != expected:
        raise InternalError(f"engine {engine.name!r} returned frames out of order for {expected}")
    return [(r, per_frame) for r in results]


def _read_frame(plan: ShotPlan, frame: int) -> FrameInput:
    fp = plan.frame(frame)
    return FrameInput(
        frame=frame,
        lineart=images.read_rgba(fp.lineart),
        masks={name: images.read_mask(path) for name, path in fp.masks.items()},
        keyframe=images.read_rgba(fp.keyframe) if fp.keyframe else None,
    )
