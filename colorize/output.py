"""Output writing for the runner: an engine's frame converted to the output alpha and depth, its layers
made (`colorize.layers`), encoded once per drawing and written atomically to every frame that shows it.

The record (`colorize.provenance`) names the drawing's inputs, not the frame, so every frame of a drawing
gets the same bytes: what a compositor expects of a held cel (and a file-level diff confirms).
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from colorize import images
from colorize.engines.base import FrameResult
from colorize.errors import OutputError
from colorize.layers import ENGINE_LAYERS, layer_images
from colorize.shot import ShotPlan


def encode_output(
    plan: ShotPlan, files: dict[str, Path], result: FrameResult, provenance: str
) -> list[bytes]:
    """The bytes of a frame's files (`files`: layers first, the main output last, as `outputs_of` orders
    them), with the record: the same for every frame whose files have the same types."""
    settings = plan.settings
    assert result.image is not None
    converted = images.output_array(result.image, settings.output_alpha, settings.output_depth)
    wanted = {name: path for name, path in files.items() if name != "output"}
    written = layer_images(wanted, result.layers, plan.palette, settings.output_depth) if wanted else []
    return images.encode_frames(
        [(path.suffix, image) for path, image in [*written, (files["output"], converted)]],
        settings.output_compression,
        provenance,
    )


def write_encoded(files: dict[str, Path], encoded: Future[list[bytes]], provenance: str) -> None:
    """Write a drawing's encoded files to one frame's paths (a writer task: the encoding was submitted
    before it, so it is done or running in another writer)."""
    images.write_encoded(list(files.values()), encoded.result(), provenance)


def engine_layers(plan: ShotPlan) -> tuple[str, ...]:
    """The layers an engine must make for the plan's layer files (the index is made from the paint)."""
    wanted = set(plan.layers)
    if "index" in wanted:
        wanted.add("paint")
    return tuple(name for name in ENGINE_LAYERS if name in wanted)


def make_folders(folders: set[Path]) -> None:
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{folder}: cannot create the output folder ({error.strerror})") from None
