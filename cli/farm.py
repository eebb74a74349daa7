"""`colorize plan`: split a shot into farm tasks (JSON, or an Open Job Description job template)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
import yaml
from colorize_cli.common import errors_to_exit
from colorize_cli.shot import FRAMES, OUT, PRESET, REFS, SHOT_DIR, EngineName, Temporal

from colorize.farm import openjd_template, plan_tasks
from colorize.images import write_atomic
from colorize.shot import find_manifest, plan_shot


class PlanFormat(str, Enum):
    json = "json"
    openjd = "openjd"


def plan(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    chunk: int = typer.Option(24, "--chunk", "-c", min=1, help="Frames per task."),
    fmt: PlanFormat = typer.Option(
        PlanFormat.json, "--format", help="json (task list) or openjd (job template)."
    ),
    save: Path | None = typer.Option(None, "--save", help="Write to this file instead of stdout."),
    frames: str | None = FRAMES,
    out: Path | None = OUT,
    engine: EngineName | None = typer.Option(None, "--engine", "-e", help="Passed on to every task."),
    preset: str | None = PRESET,
    seed: int | None = typer.Option(None, "--seed", help="Passed on to every task."),
    batch: int | None = typer.Option(None, "--batch", "-b", min=1, max=256, help="Passed on to every task."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Passed on to every task."),
    temporal: Temporal | None = typer.Option(None, "--temporal", help="Passed on to every task."),
) -> None:
    """Split a shot into frame-range tasks for a render farm.

    Every task is `colorize shot … --frames RANGE --json`; tasks may run in any order and on any machine,
    and together give the same bytes as one whole-shot run.

    Examples:

        colorize plan ./shot042 --chunk 24

        colorize plan ./shot042 --chunk 24 --format openjd --save shot042.job.yaml

        openjd run shot042.job.yaml      # run it locally; submit the same file to Deadline Cloud
    """
    options = {
        "out": str(out.resolve()) if out else None,
        "engine": engine.value if engine else None,
        "preset": preset,
        "seed": seed,
        "batch": batch,
        "model": str(model.resolve()) if model else None,
        "temporal": temporal.value if temporal else None,
    }
    with errors_to_exit():
        manifest_path = find_manifest(shot_dir, refs)
        shot_plan = plan_shot(manifest_path, frames=frames, out_dir=out, preset=preset)
        if fmt is PlanFormat.openjd:
            doc = openjd_template(shot_plan, shot_dir, chunk, options, (save or Path("x")).absolute().parent)
            text = yaml.safe_dump(doc, sort_keys=False, width=1000)
        else:
            text = json.dumps(plan_tasks(shot_plan, shot_dir, chunk, options), indent=2) + "\n"
        if save is None:
            typer.echo(text, nl=False)
        else:
            write_atomic(save, text.encode())
            typer.echo(f"wrote {save}", err=True)


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(plan)
