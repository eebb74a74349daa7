"""Engines turn batches of line-art frames into colored frames; see `base.Engine`."""

from __future__ import annotations

from colorize.engines.base import Engine
from colorize.errors import MissingInputError
from colorize.settings import Settings

ENGINES = ("flat", "diffusion")


def choose_engine(settings: Settings) -> tuple[str, str]:
    """(engine name, why) for the settings; `auto` picks diffusion only when a model is configured."""
    if settings.engine != "auto":
        return settings.engine, "asked for"
    if settings.model:
        return "diffusion", f"auto: model {settings.model}"
    return "flat", "auto: no diffusion model configured (--model, COLORIZE_MODEL_DIR or manifest `model`)"


def create_engine(name: str, settings: Settings, qa: bool = False) -> Engine:
    """Build an engine by name. Heavy imports (torch, diffusers) happen only for the engine chosen.

    `qa`: ask for QA overlays (`FrameResult.qa`; the flat engine makes them)."""
    if name == "flat":
        from colorize.engines.flat import FlatEngine

        return FlatEngine(settings, qa=qa)
    if name == "diffusion":
        if not settings.model:
            raise MissingInputError(
                "engine diffusion needs a model folder: pass --model DIR, set COLORIZE_MODEL_DIR or "
                "`model:` in the manifest (make one with `colorize model convert v2-full.safetensors --out DIR`)"
            )
        from colorize.engines.diffusion.engine import DiffusionEngine

        return DiffusionEngine(settings)
    raise ValueError(f"unknown engine {name!r}")
