"""Engines for tests of the runner, and a hook to run the real CLI with one of them in a subprocess.

`run_with_engine(kind, *args)` starts `colorize` in a real process whose `flat` engine is replaced (through
`colorize.engines.register_engine`, no entry point needed) by the fake `kind`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from colorize.engines import engine_spec, register_engine
from colorize.engines.base import EngineBase, FrameInput, FrameResult, ShotContext
from colorize.errors import InputDataError

HERE = Path(__file__).resolve().parent


class Fake(EngineBase):
    """Copies the line art (deterministic, any size); subclasses break it in one way each."""

    name = "fake"

    def __init__(self, settings=None):
        super().__init__()
        self.calls = 0
        self.shot: ShotContext | None = None

    def prepare(self, shot: ShotContext) -> None:
        self.shot = shot

    def colorize(self, batch: list[FrameInput]) -> list[FrameResult]:
        self.calls += 1
        return [
            FrameResult(fi.frame, np.ascontiguousarray(fi.lineart[..., :3]), self.info(fi)) for fi in batch
        ]

    def info(self, fi: FrameInput) -> dict:
        return {}


class Slow(Fake):
    """Takes `delay` seconds per batch (a run long enough to be interrupted mid-way)."""

    delay = 0.25

    def colorize(self, batch):
        time.sleep(self.delay)
        return super().colorize(batch)


class Timed(Fake):
    """Says how long each frame took (frame 1001: 0.001 s, 1002: 0.002 s, ...)."""

    def colorize(self, batch):
        out = super().colorize(batch)
        for r in out:
            r.seconds = (r.frame - 1000) / 1000
        return out


class Float64(Fake):
    """Returns float64 images (a bug)."""

    def colorize(self, batch):
        return [FrameResult(r.frame, r.image / 255.0) for r in super().colorize(batch)]


class RaisesOnSecondBatch(Fake):
    """A bug that shows on the second batch."""

    def colorize(self, batch):
        if self.calls == 1:
            raise ZeroDivisionError("division by zero")
        return super().colorize(batch)


class OutOfMemory(Fake):
    def colorize(self, batch):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class BadChainFrame(Fake):
    """A bad input file read through the shot's loaders for batches holding frame 1005."""

    def colorize(self, batch):
        if any(fi.frame == 1005 for fi in batch):
            raise InputDataError("lineart/sh001.1003.png: damaged or truncated image (test)")
        return super().colorize(batch)


class Unresolved(Fake):
    """Reports frame % 5 unresolved regions, and keys that collide with the runner's own fields."""

    def info(self, fi):
        return {"unresolved": fi.frame % 5, "frame": "not the frame", "event": "not the event"}


class DiesOnFrame(Fake):
    """The process is killed (SIGKILL) when a batch holds frame 1011: a worker lost mid-run."""

    def colorize(self, batch):
        if any(fi.frame == 1011 for fi in batch):
            import os
            import signal

            time.sleep(0.5)  # the writes of the batches before finish
            os.kill(os.getpid(), signal.SIGKILL)
        return super().colorize(batch)


KINDS = {
    cls.__name__.lower(): cls
    for cls in (Fake, Slow, Float64, RaisesOnSecondBatch, OutOfMemory, BadChainFrame, Unresolved, DiesOnFrame)
}


def install(kind: str) -> None:
    """Make the `flat` engine the fake `kind` in this process (same dependency rule and settings)."""
    register_engine(dataclasses.replace(engine_spec("flat"), create=KINDS[kind]))


def worker_command(kind: str) -> tuple[str, ...]:
    """A `colorize` worker command (colorize.workers) whose flat engine is the fake `kind`."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import fake_engines; fake_engines.install({kind!r}); "
        "from colorize_cli.app import main; main()"
    )
    return (sys.executable, "-c", code)


def popen_with_engine(kind: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*worker_command(kind), *args], text=True, **kw)


def run_with_engine(kind: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = popen_with_engine(kind, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def fake_model_folder(root: Path, parameters: int = 4) -> Path:
    """A diffusion model folder with every part the engine checks for, weights of `parameters` bf16 zeros
    in the UNet (headers only elsewhere): enough for plans, fingerprints and fake engines, not for sampling."""
    from colorize.engines.diffusion.model_folder import FORMAT, FORMAT_VERSION, INDEX, missing_parts

    root.mkdir(parents=True, exist_ok=True)
    (root / INDEX).write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION}))
    for part in missing_parts(root):
        path = root / part
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            count = parameters if path.parent.name == "unet" else 1
            header = json.dumps({"w": {"dtype": "BF16", "shape": [count], "data_offsets": [0, 0]}}).encode()
            path.write_bytes(len(header).to_bytes(8, "little") + header)
        else:
            path.write_text('{"format": "test"}')
    return root
