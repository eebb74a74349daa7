"""`colorize plan`: split a shot into farm tasks (JSON, or an Open Job Description job template)."""

from __future__ import annotations

import json
import shlex
from enum import Enum
from pathlib import Path

import typer
import yaml
from colorize_cli.common import (
    FRAMES,
    OUT,
    REFS,
    SHOT_DIR,
    RunOptions,
    errors_to_exit,
    plan_from_options,
    with_run_options,
)

from colorize.errors import OutputError, UsageError
from colorize.farm import openjd_template, plan_tasks
from colorize.images import image_size, write_atomic
from colorize.manifest import load_manifest


class PlanFormat(str, Enum):
    json = "json"
    openjd = "openjd"


@with_run_options
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
    keys: bool = typer.Option(
        False,
        "--keys",
        help="A `colorize keys` task first (on a GPU worker), then the frame tasks with --engine flat (no "
        "GPU); the manifest must name its `keyframes`.",
    ),
    *,
    options: RunOptions,
) -> None:
    """Split a shot into frame-range tasks for a render farm.

    Every task is `colorize shot … --frames RANGE --json` with the run options given here (--engine,
    --seed, --batch, …); tasks may run in any order and on any machine, and together give the same bytes
    as one whole-shot run. An Open Job Description template declares the output folder as a job output and,
    for the diffusion engine, a GPU worker with an estimate of the GPU memory the chosen --batch needs.

    Examples:

        colorize plan ./shot042 --chunk 24

        colorize plan ./shot042 --chunk 24 --format openjd --save jobs/shot042.job.yaml

        colorize plan ./shot042 --keys --model /models/colorize-v2 --format openjd --save job.yaml

        openjd run jobs/shot042.job.yaml      # run it locally; submit the same file to Deadline Cloud
    """
    with errors_to_exit():
        keys_args = None
        if keys:
            from colorize_cli.keys import plan_before_keys

            keys_args = RunOptions({**options.values, "engine": None}).argv()
            options = RunOptions({**options.values, "engine": "flat"})
            shot_plan = plan_before_keys(shot_dir, refs, frames, out, options)
        else:
            shot_plan = plan_from_options(shot_dir, refs, frames, out, options)
        if keys and not load_manifest(shot_plan.manifest_path).keyframes:
            raise UsageError(
                f"--keys: {shot_plan.manifest_path} names no `keyframes` pattern, where the flat tasks would "
                "find the keys: add one (`colorize keys DIR --write-manifest` adds keys/<line-art name>)"
            )
        if fmt is PlanFormat.openjd:
            gpu_memory = None
            if shot_plan.engine in ("diffusion", "hybrid") or keys:  # hybrid and keys paint with diffusion
                from colorize.engines.diffusion.planning import gpu_memory_estimate_mib
                from colorize.engines.keys import keys_settings

                size = image_size(shot_plan.lineart_paths[shot_plan.frames[0]])
                gpu_memory = gpu_memory_estimate_mib(keys_settings(shot_plan.settings), size)
            template = (save or Path("job.yaml")).absolute()
            doc, required = openjd_template(
                shot_plan, shot_dir, chunk, options.argv(), template.parent, gpu_memory, keys_args
            )
            text = yaml.safe_dump(doc, sort_keys=False, width=1000)
            if required:
                values = " ".join(f"-p {shlex.quote(f'{k}={v}')}" for k, v in required.items())
                typer.echo(
                    f"colorize: {', '.join(required)} lie outside the template's folder, where Open Job "
                    f"Description allows no default; run it with: openjd run {shlex.quote(str(save or 'job.yaml'))} "
                    f"{values}",
                    err=True,
                )
        else:
            args = options.task_args(out)
            text = json.dumps(plan_tasks(shot_plan, shot_dir, chunk, args, keys_args), indent=2) + "\n"
        if save is None:
            typer.echo(text, nl=False)
        else:
            try:
                save.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OutputError(f"{save.parent}: cannot create the folder ({error.strerror})") from None
            write_atomic(save, text.encode())
            typer.echo(f"wrote {save}", err=True)


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(plan)
