"""What each output is made from, and whether an output on disk is still what the inputs make.

An output's provenance record holds:

- `inputs`: a sha256 over the content digest of every input file the output depends on, each named by its
  role (`lineart 1003`, `mask hero 1003`, `keyframe 1001`, `reference hero`, `background`; see
  `ShotPlan.frame_inputs` of every frame in `ShotPlan.dependencies`, and `ShotPlan.shot_inputs`): the frame's own inputs, those of the frames its engine reads to make it (the flat
  engine's chain from a keyframe, a diffusion warp chain from its anchor), the references and background.
  Contents, not paths or dates: touching or moving a shot changes nothing, repainting a keyframe does.
- `settings`: a sha256 of the resolved settings the engine reads (each engine declares them:
  `EngineSpec.reads`, see `colorize.engines`) and those the writer applies, plus the model folder's
  fingerprint for the diffusion engine.
- `engine` and `colorize` (the tool version).
- `unresolved`: the frame's unresolved region count when the engine reports one (for the quality gate and
  the summary of frames that are skipped as fresh).
- `pixels`: a sha256 of the decoded pixels, when the engine reports one (`info["pixels"]`, see
  `pixels_digest`): `colorize keys` writes it into the keyframes it paints, so that a key a painter changed
  in a program that keeps the text chunk is still recognised as the painter's.

The record is stored in the frame itself (`images.write_image` metadata: a PNG text chunk). An output is
*done* when its record matches the current one, *stale* when it does not (or has none: written by an older
colorize or another tool), *missing* when there is no file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from colorize import __version__, images
from colorize.engines import engine_spec, pixel_settings
from colorize.repeats import file_digest
from colorize.shot import ShotPlan

RECORD_SCHEMA = 1


@dataclass(frozen=True)
class Provenance:
    engine: str
    colorize: str
    settings: str
    inputs: str
    unresolved: int | None = None
    pixels: str | None = None

    def to_text(self) -> str:
        record: dict[str, Any] = {"schema": RECORD_SCHEMA, **asdict(self)}
        for optional in ("unresolved", "pixels"):
            if record[optional] is None:
                del record[optional]
        return json.dumps(record, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> Provenance | None:
        try:
            record = json.loads(text or "")
            if record.pop("schema") != RECORD_SCHEMA:
                return None
            return cls(**record)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def with_unresolved(self, unresolved: Any) -> Provenance:
        return Provenance(
            self.engine, self.colorize, self.settings, self.inputs, _count(unresolved), self.pixels
        )

    def with_result(self, info: dict[str, Any]) -> Provenance:
        """The record of an output made with the engine details `info` (`unresolved`, `pixels`)."""
        pixels = info.get("pixels")
        return replace(
            self.with_unresolved(info.get("unresolved")), pixels=pixels if isinstance(pixels, str) else None
        )

    def stale_reason(self, stored: Provenance | None) -> str | None:
        """Why an output made with `stored` is not what this record describes; None when it is."""
        if stored is None:
            return "no provenance record (incomplete, or made by another tool or an older colorize)"
        if stored.engine != self.engine:
            return f"made by engine {stored.engine}"
        if stored.colorize != self.colorize:
            return f"made by colorize {stored.colorize}"
        if stored.settings != self.settings:
            return "settings changed"
        if stored.inputs != self.inputs:
            return "inputs changed"
        return None


@dataclass(frozen=True)
class OutputState:
    frame: int
    path: Path
    state: str  # "done" | "stale" | "missing"
    reason: str | None  # why stale
    stored: Provenance | None  # the record found in the output


class Freshness:
    """The provenance records of a plan's outputs. Every input file is read and hashed once."""

    def __init__(self, plan: ShotPlan):
        self.plan = plan
        self._settings = settings_digest(plan)
        self._frames: dict[int, str] = {}  # line-art frame -> digest of its own files
        self._inputs: dict[tuple[int, ...], str] = {}  # dependency frames -> inputs digest
        self._shot: str | None = None

    def expected(self, frame: int) -> Provenance:
        """The record of `frame`'s output as the plan would make it now."""
        deps = self.plan.dependencies.get(frame, (frame,))
        inputs = self._inputs.get(deps)
        if inputs is None:
            if self._shot is None:
                self._shot = self._files_digest(self.plan.shot_inputs())
            digest = hashlib.sha256(f"shot\0{self._shot}\n".encode())
            for d in deps:
                if d not in self._frames:
                    self._frames[d] = self._files_digest(self.plan.frame_inputs(d))
                digest.update(f"frame {d}\0{self._frames[d]}\n".encode())
            inputs = self._inputs[deps] = digest.hexdigest()
        return Provenance(self.plan.engine, __version__, self._settings, inputs)

    def state(self, frame: int) -> OutputState:
        """done / stale / missing for the output of `frame` (with its layers: done only when every file
        is there and fresh), reading only their records."""
        path = self.plan.output.path(frame)
        expected = self.expected(frame)
        main: Provenance | None = None
        for name, file in self.plan.outputs_of(frame).items():
            if not file.is_file():
                if name == "output" or not path.is_file():
                    return OutputState(frame, path, "missing", None, None)
                return OutputState(frame, path, "stale", f"layer {name} missing", None)
            stored = Provenance.from_text(images.read_metadata(file))
            reason = expected.stale_reason(stored)
            if reason:
                why = reason if name == "output" else f"layer {name}: {reason}"
                return OutputState(frame, path, "stale", why, stored)
            if name == "output":
                main = stored
        return OutputState(frame, path, "done", None, main)

    def _files_digest(self, files: dict[str, Path]) -> str:
        """sha256 over the files' roles and digests (the plan's digests where it already read a file)."""
        known = self.plan.digests
        lines = [f"{role}\0{known.get(path) or file_digest(path)}\n" for role, path in sorted(files.items())]
        return hashlib.sha256("".join(lines).encode()).hexdigest()


def settings_digest(plan: ShotPlan) -> str:
    """sha256 of the settings the plan's engine reads and the writer applies (and its model's fingerprint)."""
    spec = engine_spec(plan.engine)
    pixels = pixel_settings(spec, plan.settings)
    if spec.fingerprint is not None:
        pixels["model fingerprint"] = spec.fingerprint(plan.settings)
    return hashlib.sha256(json.dumps(pixels, sort_keys=True).encode()).hexdigest()


def pixels_digest(image: np.ndarray) -> str:
    """sha256 of an image's pixels as `images.read_image` decodes its file (RGBA, the file's depth): the
    same for the array an engine hands the writer (after `images.output_array`) and the file read back."""
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    if image.shape[2] == 3:
        image = np.dstack([image, np.full(image.shape[:2], np.iinfo(image.dtype).max, image.dtype)])
    digest = hashlib.sha256(f"{image.shape} {image.dtype.str}\n".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
