"""One shot on several devices (`colorize shot … --devices 0,1|all`): one worker process per device.

The frames to color are split into as many chunks as there are devices, of about equal size, cut where no
output depends on a frame of the chunk before (between warp chains, between the flat engine's keyframe
spans; `split_frames`). Each chunk is a plain `colorize shot … --frames CHUNK --json` process, the same
command a farm task runs, with one GPU made visible to it (`CUDA_VISIBLE_DEVICES`), so it resolves exactly
the settings of one whole-shot run and writes the same bytes. The runner (`runner.run_on_devices`) merges
the workers' frame events into one stream with one summary; a worker that dies has its frames that were not
reported fail, and the other workers finish.

`cpu` entries run a worker on the CPU (`CUDA_VISIBLE_DEVICES` empty): to use every core of a machine
without GPUs for the flat engine, and to test all of this without GPUs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from queue import Queue
from typing import Any

from colorize.errors import ColorizeError, ExitCode, UsageError

# The worker: the `colorize` CLI of this interpreter (its stdout carries JSON events, its stderr errors).
WORKER_COMMAND = (sys.executable, "-c", "from colorize_cli.app import main; main()")
STOP_SECONDS = 30.0  # after SIGTERM, how long a worker may take to finish its writes before SIGKILL


@dataclass(frozen=True)
class Device:
    """Where one worker runs: `cuda:N` (the machine's GPU N, visible to the worker as its only GPU) or cpu."""

    name: str
    visible: str  # the worker's CUDA_VISIBLE_DEVICES ("" for the CPU)


def parse_devices(text: str, diffusion_device: str | None = None) -> list[Device]:
    """`--devices` text: `0,1,…` (GPU indices, as this process sees them), `all` (every GPU), `cpu` entries.

    GPU indices are those of this process's CUDA_VISIBLE_DEVICES when it is set. `diffusion_device` (the
    diffusion engine's `diffusion.device`, None for other engines) must let each worker use its device:
    `auto`, or `cuda` / `cuda:0` for GPUs only, or `cpu` for cpu entries only.
    """
    entries = [e.strip() for e in text.split(",")]
    if not text.strip() or any(not e for e in entries):
        raise UsageError(f"--devices {text!r}: give GPU indices (0,1), all, or cpu entries, comma-separated")
    gpus = [e for e in entries if e != "cpu"]
    visible = _visible_gpus() if gpus else []
    if entries == ["all"]:
        if not visible:
            raise UsageError("--devices all: this machine has no CUDA device")
        entries = gpus = [str(i) for i in range(len(visible))]
    devices = []
    for entry in entries:
        if entry == "cpu":
            devices.append(Device("cpu", ""))
            continue
        if not entry.isdigit():
            raise UsageError(f"--devices {text!r}: {entry!r} is not a GPU index, all or cpu")
        index = int(entry)
        if index >= len(visible):
            raise UsageError(
                f"--devices {text!r}: there is no GPU {index} (this machine shows {len(visible)} CUDA devices)"
            )
        if gpus.count(entry) > 1:
            raise UsageError(f"--devices {text!r}: GPU {index} is given twice")
        devices.append(Device(f"cuda:{index}", visible[index]))
    if diffusion_device is not None and diffusion_device != "auto":
        fits = (diffusion_device in ("cuda", "cuda:0") and len(gpus) == len(entries)) or (
            diffusion_device == "cpu" and not gpus
        )
        if not fits:
            raise UsageError(
                f"--devices {text!r} gives each worker its device, but diffusion.device is "
                f"{diffusion_device!r}: set it to auto"
            )
    return devices


def _visible_gpus() -> list[str]:
    """The machine's GPUs as CUDA_VISIBLE_DEVICES values, in the order this process sees them."""
    import torch

    count = torch.cuda.device_count()
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is None:
        return [str(i) for i in range(count)]
    return [v.strip() for v in given.split(",") if v.strip()][:count]


def split_frames(
    frames: Sequence[int],
    dependencies: dict[int, tuple[int, ...]] | Callable[[int, int], bool],
    parts: int,
) -> list[list[int]]:
    """`frames` (sorted) in at most `parts` consecutive chunks of about equal size.

    Each cut goes where no output depends on the frame before it (`dependencies`: the plan's frame ->
    the frames its output is made from, or `ShotPlan.joined`: whether a frame shares work with the one
    before it, its drawing or a chain) when there is such a place within half a chunk of the even cut;
    otherwise at the even cut (the chunk after it then recomputes a chain, or colors a held drawing
    again, in memory: correct, slower).
    """
    n = len(frames)
    parts = max(1, min(parts, n))
    if callable(dependencies):
        joined = dependencies
    else:
        deps = dependencies

        def joined(previous: int, frame: int) -> bool:
            return previous in deps.get(frame, (frame,))

    free = [i for i in range(1, n) if not joined(frames[i - 1], frames[i])]
    cuts: list[int] = []
    for k in range(1, parts):
        target = round(k * n / parts)
        near = [i for i in free if abs(i - target) <= n / parts / 2 and (not cuts or i > cuts[-1])]
        cut = min(near, key=lambda i: (abs(i - target), i)) if near else target
        if cuts and cut <= cuts[-1]:
            continue
        cuts.append(cut)
    bounds = [0, *cuts, n]
    return [list(frames[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class WorkerFailed(ColorizeError):
    """A frame a worker process did not make: its error as the worker reported it, or why it died."""

    def __init__(self, message: str, exit_code: ExitCode | int = ExitCode.INTERNAL):
        super().__init__(message)
        try:
            self.exit_code = ExitCode(int(exit_code))
        except ValueError:
            self.exit_code = ExitCode.INTERNAL


@dataclass
class Worker:
    """One worker process and what it has said."""

    device: Device
    frames: list[int]
    process: subprocess.Popen
    reported: set[int] = field(default_factory=set)
    errors: list[tuple[str, int]] = field(default_factory=list)  # run-level `error` events
    summary: dict[str, Any] | None = None
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def why_unfinished(self) -> WorkerFailed:
        """Why this worker's unreported frames were not made."""
        code = self.process.poll()
        where = f"worker on {self.device.name}"
        if self.errors:
            line, exit_code = self.errors[0]
            return WorkerFailed(f"{where}: {line}", exit_code)
        if self.summary is not None and self.summary.get("stopped"):
            return WorkerFailed(
                f"{where} stopped: {self.summary['stopped']}", self.summary.get("exit_code", 70)
            )
        last = next((ln for ln in reversed(self.stderr) if ln.strip()), "")
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return WorkerFailed(
            f"{where} {how} before making this frame" + (f" ({last.strip()})" if last else "")
        )


def start_workers(
    chunks: list[tuple[Device, list[int]]], args_for: Any, command: Sequence[str] = WORKER_COMMAND
) -> tuple[list[Worker], Queue]:
    """Start one worker per (device, frames); their JSON events arrive in the queue as (worker, record),
    then (worker, None) when its stdout closes. `args_for(frames)` gives a worker's CLI arguments."""
    queue: Queue = Queue()
    workers = []
    for device, frames in chunks:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": device.visible}
        process = subprocess.Popen(
            [*command, *args_for(frames)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # the parent decides when workers stop (a terminal's Ctrl-C goes to it)
        )
        worker = Worker(device, frames, process)
        workers.append(worker)
        threading.Thread(target=_read_events, args=(worker, queue), daemon=True).start()
        threading.Thread(target=_read_stderr, args=(worker,), daemon=True).start()
    return workers, queue


def _read_events(worker: Worker, queue: Queue) -> None:
    assert worker.process.stdout is not None
    for line in worker.process.stdout:
        try:
            record = json.loads(line)
        except ValueError:
            worker.stderr.append(line)  # not an event: keep it as something the worker said
            continue
        if isinstance(record, dict) and "event" in record:
            queue.put((worker, record))
    worker.process.wait()
    queue.put((worker, None))


def _read_stderr(worker: Worker) -> None:
    assert worker.process.stderr is not None
    for line in worker.process.stderr:
        worker.stderr.append(line)


def stop_workers(workers: list[Worker], seconds: float = STOP_SECONDS) -> None:
    """SIGTERM to every live worker (they stop like an interrupted run: writes in flight complete), then
    SIGKILL to any still running after `seconds`."""
    live = [w for w in workers if w.process.poll() is None]
    for w in live:
        w.process.send_signal(signal.SIGTERM)
    for w in live:
        try:
            w.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
