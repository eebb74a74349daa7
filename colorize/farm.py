"""Farm chunking: split a shot's frames into tasks, as JSON or as an Open Job Description job template.

Open Job Description (jobtemplate-2023-09) is the open render-farm job standard that AWS Deadline Cloud
runs; `openjd run` runs a template locally. One task per chunk; every task is a plain `colorize shot`
command with `--frames`, so a task that fails can be retried alone and resumes.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from colorize.errors import UsageError
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan


def chunk_frames(frames: tuple[int, ...], size: int) -> list[str]:
    """Consecutive chunks of at most `size` frames, each as fileseq range text."""
    if size < 1:
        raise UsageError(f"--chunk {size}: must be at least 1")
    return [frame_range_text(list(frames[i : i + size])) for i in range(0, len(frames), size)]


def shot_args(plan: ShotPlan, shot_dir: Path, options: dict[str, Any]) -> list[str]:
    """The `colorize shot` arguments (without --frames) that reproduce this plan's settings."""
    args = ["shot", str(shot_dir.resolve()), "--refs", str(plan.manifest_path.resolve())]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def plan_tasks(plan: ShotPlan, shot_dir: Path, chunk: int, options: dict[str, Any]) -> dict[str, Any]:
    """The JSON document `colorize plan` prints."""
    chunks = chunk_frames(plan.selected, chunk)
    base = ["colorize", *shot_args(plan, shot_dir, options)]
    return {
        "manifest": str(plan.manifest_path.resolve()),
        "frames": plan.selected_range,
        "frames_total": len(plan.selected),
        "chunk": chunk,
        "output": str(plan.output.folder.resolve() / Path(plan.output.text).name),
        "tasks": [
            {"index": i, "frames": text, "command": [*base, "--frames", text, "--json"]}
            for i, text in enumerate(chunks)
        ],
    }


def openjd_template(
    plan: ShotPlan, shot_dir: Path, chunk: int, options: dict[str, Any], template_dir: Path
) -> dict[str, Any]:
    """An Open Job Description job template with one task per chunk of frames.

    Paths are job parameters (a farm maps them per worker) whose defaults are relative to the template's
    folder, as the standard requires; the executable is a parameter too, so a worker whose `colorize` is
    not on PATH can be pointed at it.
    """
    chunks = chunk_frames(plan.selected, chunk)
    options = dict(options)
    out = options.pop("out", None)
    extra = shot_args(plan, shot_dir, options)[4:]  # settings flags after DIR and --refs FILE

    def rel(path: Path) -> str:
        return os.path.relpath(path.resolve(), template_dir.resolve())

    out_param, out_args = [], []
    if out:
        out_param = [
            {
                "name": "OutDir",
                "type": "PATH",
                "objectType": "DIRECTORY",
                "dataFlow": "OUT",
                "default": rel(Path(out)),
                "description": "Output folder.",
            }
        ]
        out_args = ["--out", "{{Param.OutDir}}"]
    name = re.sub(r"[^A-Za-z0-9 ._-]", "_", f"colorize {plan.lineart.head.rstrip('._') or shot_dir.name}")
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "name": name[:128],
        "parameterDefinitions": [
            {
                "name": "ShotDir",
                "type": "PATH",
                "objectType": "DIRECTORY",
                "dataFlow": "IN",
                "default": rel(shot_dir),
                "description": "The shot folder.",
            },
            {
                "name": "Refs",
                "type": "PATH",
                "objectType": "FILE",
                "dataFlow": "IN",
                "default": rel(plan.manifest_path),
                "description": "The shot manifest (refs.yaml).",
            },
            {
                "name": "Colorize",
                "type": "STRING",
                "default": "colorize",
                "description": "The colorize executable on the workers.",
            },
            *out_param,
        ],
        "steps": [
            {
                "name": "Colorize",
                "parameterSpace": {
                    "taskParameterDefinitions": [{"name": "Frames", "type": "STRING", "range": chunks}]
                },
                "script": {
                    "actions": {
                        "onRun": {
                            "command": "{{Param.Colorize}}",
                            "args": [
                                "shot",
                                "{{Param.ShotDir}}",
                                "--refs",
                                "{{Param.Refs}}",
                                "--frames",
                                "{{Task.Param.Frames}}",
                                "--json",
                                *out_args,
                                *extra,
                            ],
                        }
                    }
                },
            }
        ],
    }


def command_line(args: list[str]) -> str:
    return shlex.join(args)
