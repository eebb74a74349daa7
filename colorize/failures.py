"""How the frame stream classes what goes wrong: an engine's results checked (a wrong result is a bug in the
engine), running out of memory told apart from a bug, any unexpected exception turned into an
`InternalError`, and `StopRun`, which stops the stream once the cause was reported."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from colorize.engines.base import Engine
from colorize.errors import ColorizeError, InternalError, OutOfMemory
from colorize.sequences import frame_range_text


class StopRun(Exception):
    """Stop the stream; the cause was already reported as the failure of its frames."""

    def __init__(self, error: ColorizeError):
        super().__init__(str(error))
        self.error = error


def internal(error: BaseException, doing: str) -> InternalError:
    """`error` (an exception nobody raised on purpose) as a bug, while `doing`."""
    bug = InternalError(
        f"{doing}: {type(error).__name__}: {error}".splitlines()[0] + " (a bug: please report it)"
    )
    bug.__cause__ = error
    return bug


def result_problem(
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


def out_of_memory(error: Exception, engine: Engine, frames: list[int], batch: int) -> OutOfMemory | None:
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


def check_schedule(batches: list[tuple[int, ...]], todo: list[int]) -> None:
    """An engine schedule must hand over every frame to color exactly once (else it is a bug)."""
    given = [f for batch in batches for f in batch]
    if sorted(given) != sorted(todo) or any(not batch for batch in batches):
        raise InternalError(
            f"the engine's schedule gives frames {frame_range_text(sorted(set(given)))} in {len(batches)} "
            f"batches for frames {frame_range_text(todo)} (each exactly once expected; a bug)"
        )
