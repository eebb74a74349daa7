"""`colorize shot`, `check`, `init`, `schema`: run and validate shots."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from colorize_cli.common import errors_to_exit

from colorize import __version__
from colorize.engines import choose_engine, create_engine
from colorize.errors import CheckFailed, ColorizeError, ExitCode
from colorize.events import Events, HumanReporter
from colorize.manifest import schema_json
from colorize.runner import run_shot
from colorize.shot import check_output_writable, find_manifest, plan_shot, raise_problems, validate_plan


class EngineName(str, Enum):
    auto = "auto"
    flat = "flat"
    diffusion = "diffusion"


class Temporal(str, Enum):
    none = "none"
    locked = "locked"
    warp = "warp"


SHOT_DIR = typer.Argument(..., help="The shot folder.", show_default=False)
REFS = typer.Option(
    None, "--refs", "-r", help="Manifest file (default: DIR/refs.yaml; relative: to the cwd, else DIR)."
)
FRAMES = typer.Option(
    None, "--frames", "-f", help="Frame range in fileseq syntax: 1001-1048, 1001-1048x2, 1001,1010."
)
OUT = typer.Option(None, "--out", "-o", help="Output folder (default: the manifest's `output`).")
PRESET = typer.Option(None, "--preset", "-p", help="Preset name from presets/ or a .yaml path.")


def shot(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    engine: EngineName | None = typer.Option(None, "--engine", "-e", help="auto | flat | diffusion."),
    preset: str | None = PRESET,
    batch: int | None = typer.Option(None, "--batch", "-b", min=1, max=256, help="Frames per engine call."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (same seed and inputs: same bytes)."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Diffusion model folder."),
    temporal: Temporal | None = typer.Option(None, "--temporal", help="none | locked | warp (diffusion)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recolor frames whose output already exists."),
    json_events: bool = typer.Option(False, "--json", help="Write JSON-lines events on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the summary on stderr."),
    qa: Path | None = typer.Option(
        None, "--qa", help="Write QA overlays (flat engine), qa.json and worst_frames.png into this folder."
    ),
) -> None:
    """Colorize the frames of a shot.

    Frames whose output exists are skipped (a rerun resumes); every output is written atomically.

    Examples:

        colorize shot ./shot042 --refs refs.yaml

        colorize shot ./shot042 --frames 1001-1024 --json > events.jsonl

        colorize shot ./shot042 --engine flat --out /tmp/preview --overwrite
    """
    events = Events(
        json_stream=sys.stdout if json_events else None,
        human=HumanReporter(sys.stderr, quiet=quiet),
    )
    overrides: dict[str, Any] = {
        "engine": engine.value if engine else None,
        "batch": batch,
        "seed": seed,
        "model": str(model.resolve()) if model else None,
        "temporal": temporal.value if temporal else None,
    }
    with errors_to_exit(), _error_event(events):
        manifest_path = find_manifest(shot_dir, refs)
        plan = plan_shot(manifest_path, frames=frames, out_dir=out, preset=preset, overrides=overrides)
        size = validate_plan(plan, deep=True)
        check_output_writable(plan)
        name, why = choose_engine(plan.settings)
        colorizer = create_engine(name, plan.settings, qa=qa is not None)
        events.emit(
            "run_start",
            version=__version__,
            manifest=str(manifest_path),
            engine=name,
            engine_reason=why,
            frames=plan.selected_range,
            frames_total=len(plan.selected),
            output=plan.output.text,
            size=[size[1], size[0]],
            settings=plan.settings.model_dump(),
            sources=plan.sources,
        )
        if engine is None and plan.settings.engine == "auto":
            events.emit("message", text=f"engine {name} ({why})")
        summary = run_shot(plan, colorizer, events, size=size, overwrite=overwrite, qa_dir=qa)
        seconds = max(summary.seconds, 1e-9)
        events.emit(
            "summary",
            done=summary.done,
            skipped=summary.skipped,
            failed=summary.failed,
            seconds=round(summary.seconds, 3),
            frames_per_second=round(summary.done / seconds, 3),
            exit_code=int(summary.exit_code),
        )
        events.close()
        if summary.exit_code != ExitCode.OK:
            raise typer.Exit(int(summary.exit_code))


class _error_event:
    """With --json, a failure before or around the run is also one `error` event on stdout."""

    def __init__(self, events: Events):
        self.events = events

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        self.events.close()
        if isinstance(error, ColorizeError) and self.events.json_stream is not None:
            lines = error.problems if isinstance(error, CheckFailed) else [error]
            for problem in lines:
                self.events.json_stream.write(
                    json.dumps({"event": "error", "error": str(problem), "exit_code": int(problem.exit_code)})
                    + "\n"
                )
            self.events.json_stream.flush()
        return False


def check(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    preset: str | None = PRESET,
) -> None:
    """Validate a shot without computing anything.

    Checks the manifest (unknown keys, types), every referenced file (present, readable, not truncated),
    the frame sequence (gaps, duplicates), sizes (masks and keyframes match the line art) and that the
    output can be written. Prints one line per problem and exits non-zero if there is any.

    Example:

        colorize check ./shot042 --refs refs.yaml
    """
    with errors_to_exit():
        manifest_path = find_manifest(shot_dir, refs)
        problems: list[ColorizeError] = []
        plan = plan_shot(manifest_path, frames=frames, out_dir=out, preset=preset, problems=problems)
        size = validate_plan(plan, deep=True, problems=problems)
        try:
            check_output_writable(plan)
        except ColorizeError as error:
            problems.append(error)
        raise_problems(problems)
        name, why = choose_engine(plan.settings)
        h, w = size or (0, 0)
        keys = [f for f in plan.selected if f in plan.keyframe_paths]
        typer.echo(
            f"ok: {manifest_path}: {len(plan.selected)} frames {plan.selected_range}, {w}×{h}, "
            f"{len(plan.characters)} characters, {len(keys)} keyframes, engine {name} ({why})"
        )


def schema() -> None:
    """Print the JSON Schema of refs.yaml (point your editor's YAML plugin at it).

    Example:

        colorize schema > refs.schema.json
    """
    typer.echo(schema_json())


def init(
    shot_dir: Path = SHOT_DIR,
    force: bool = typer.Option(False, "--force", help="Replace an existing refs.yaml."),
) -> None:
    """Write a starter refs.yaml from what is found in a shot folder.

    Looks for a line-art sequence (a folder named line*, lineart*, sketch* or the shot folder itself),
    colored keyframes (key*/), per-character masks (masks/NAME/) and reference images (refs/).

    Example:

        colorize init ./shot042 && $EDITOR ./shot042/refs.yaml
    """
    from colorize.starter import write_starter_manifest

    with errors_to_exit():
        path = write_starter_manifest(shot_dir, force=force)
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(shot)
    app.command(no_args_is_help=True)(check)
    app.command(no_args_is_help=True)(init)
    app.command()(schema)
