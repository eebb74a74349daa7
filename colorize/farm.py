"""Farm chunking: split a shot's frames into tasks, as JSON or as an Open Job Description job template.

Open Job Description (jobtemplate-2023-09) is the open render-farm job standard that AWS Deadline Cloud
runs; `openjd run` runs a template locally. One task per chunk; every task is a plain `colorize shot`
command with `--frames`, so a task that fails can be retried alone and resumes (fresh frames are skipped).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from colorize.errors import UsageError
from colorize.sequences import frame_range_text
from colorize.shot import ShotPlan


def shot_command(plan: ShotPlan, shot_dir: Path, args: list[str]) -> list[str]:
    """`colorize shot DIR --refs FILE ARGS` with absolute paths (a task may run from any folder)."""
    return ["shot", str(shot_dir.resolve()), "--refs", str(plan.manifest_path.resolve()), *args]


def plan_chunks(plan: ShotPlan, size: int) -> list[str]:
    """The selected frames in consecutive chunks of about `size` frames, each as fileseq range text.

    A cut goes between two frames that show different drawings (a held drawing is colored once, by one
    task) when there is such a place within half a chunk of `size`; otherwise at `size` (the task after the
    cut then colors the held drawing again: the same bytes, more work). Under strict timing without exact
    repeats (`colorize.repeats`) every frame is its own drawing: chunks of exactly `size`.
    """
    if size < 1:
        raise UsageError(f"--chunk {size}: must be at least 1")
    frames = plan.selected
    n, start, chunks = len(frames), 0, []
    while start < n:
        end = n
        if n - start > size:
            target = start + size
            low, high = start + max(1, size - size // 2), min(n - 1, target + size // 2)
            free = [j for j in range(low, high + 1) if plan.drawing(frames[j - 1]) != plan.drawing(frames[j])]
            end = min(free, key=lambda j: (abs(j - target), j)) if free else target
        chunks.append(frame_range_text(frames[start:end]))
        start = end
    return chunks


def plan_tasks(
    plan: ShotPlan, shot_dir: Path, chunk: int, args: list[str], keys_args: list[str] | None = None
) -> dict[str, Any]:
    """The JSON document `colorize plan` prints; `args` are the `colorize shot` options every task gets.
    With `keys_args` (`plan --keys`), a `keys` task (`colorize keys` with those options) comes first: the
    frame tasks run after it."""
    base = ["colorize", *shot_command(plan, shot_dir, args)]
    keys: dict[str, Any] = {}
    if keys_args is not None:
        command = ["colorize", "keys", *shot_command(plan, shot_dir, keys_args)[1:], "--json"]
        keys = {"keys": {"command": command, "gpu": True}}
    return {
        **keys,
        "manifest": str(plan.manifest_path.resolve()),
        "frames": plan.selected_range,
        "frames_total": len(plan.selected),
        "chunk": chunk,
        "engine": plan.engine,
        "output": str(plan.output.folder.resolve() / Path(plan.output.text).name),
        "tasks": [
            {"index": i, "frames": text, "command": [*base, "--frames", text, "--json"]}
            for i, text in enumerate(plan_chunks(plan, chunk))
        ],
    }


def openjd_template(
    plan: ShotPlan,
    shot_dir: Path,
    chunk: int,
    args: list[str],
    template_dir: Path,
    gpu_memory_mib: int | None = None,
    keys_args: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """An Open Job Description job template with one task per chunk of frames, and the job parameters it
    leaves without a default ({name: absolute path}: give them with `-p NAME=VALUE`).

    Paths are job parameters (a farm maps them per worker; Deadline's job attachments upload `ShotDir` and
    `Refs` and bring `OutDir` back). The standard only allows defaults inside the template's folder
    (relative to it, never walking up): a path there gets its relative default, any other path none. The
    executable is a parameter too, so a worker whose `colorize` is not on PATH can be pointed at it. Tasks
    report progress with `openjd_progress:` / `openjd_status:` lines. With `gpu_memory_mib` (the diffusion
    engine), the step asks for a GPU worker with that much GPU memory. With `keys_args` (`plan --keys`), a
    `Keys` step of one task (`colorize keys` with those options) comes first, on a GPU worker
    (`gpu_memory_mib`), and the frame step depends on it and asks for no GPU.
    """
    required: dict[str, str] = {}

    def path_param(name: str, kind: str, flow: str, path: Path, description: str) -> dict[str, Any]:
        param = {
            "name": name,
            "type": "PATH",
            "objectType": kind,
            "dataFlow": flow,
            "description": description,
        }
        relative = os.path.relpath(path.resolve(), template_dir.resolve())
        if relative.split(os.sep)[0] == os.pardir:
            required[name] = str(path.resolve())
        else:
            param["default"] = relative
        return param

    steps = _steps(plan, chunk, args, gpu_memory_mib, keys_args)
    name = re.sub(r"[^A-Za-z0-9 ._-]", "_", f"colorize {plan.lineart.head.rstrip('._') or shot_dir.name}")
    template = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": name[:128],
        "parameterDefinitions": [
            path_param("ShotDir", "DIRECTORY", "IN", shot_dir, "The shot folder."),
            path_param("Refs", "FILE", "IN", plan.manifest_path, "The shot manifest (refs.yaml)."),
            path_param("OutDir", "DIRECTORY", "OUT", plan.output.folder, "Output folder (job output)."),
            {
                "name": "Colorize",
                "type": "STRING",
                "default": "colorize",
                "description": "The colorize executable on the workers.",
            },
        ],
        "steps": steps,
    }
    return template, required


def _steps(
    plan: ShotPlan, chunk: int, args: list[str], gpu_memory_mib: int | None, keys_args: list[str] | None
) -> list[dict[str, Any]]:
    """The template's steps: `Colorize` (a task per chunk), after a `Keys` step with `keys_args`; the GPU
    host requirement on the step that runs the engine on a GPU."""
    step: dict[str, Any] = {
        "name": "Colorize",
        "parameterSpace": {
            "taskParameterDefinitions": [
                {"name": "Frames", "type": "STRING", "range": plan_chunks(plan, chunk)}
            ]
        },
        "script": _script("shot", ["--out", "{{Param.OutDir}}", "--frames", "{{Task.Param.Frames}}"], args),
    }
    gpu = (
        {
            "amounts": [
                {"name": "amount.worker.gpu", "min": 1},
                {"name": "amount.worker.gpu.memory", "min": gpu_memory_mib},
            ]
        }
        if gpu_memory_mib is not None
        else None
    )
    steps = [step]
    if keys_args is not None:
        keys_step: dict[str, Any] = {
            "name": "Keys",
            "script": _script("keys", [], keys_args),
        }
        if gpu is not None:
            keys_step["hostRequirements"] = gpu
        step["dependencies"] = [{"dependsOn": "Keys"}]
        steps = [keys_step, step]
    elif gpu is not None:
        step["hostRequirements"] = gpu
    return steps


def _script(command: str, options: list[str], args: list[str]) -> dict[str, Any]:
    """A step's script: `colorize COMMAND ShotDir --refs Refs OPTIONS`, reporting progress the OpenJD way,
    then the user's `args`."""
    run = ["{{Param.ShotDir}}", "--refs", "{{Param.Refs}}", *options, "--progress", "openjd", "--json", *args]
    return {"actions": {"onRun": {"command": "{{Param.Colorize}}", "args": [command, *run]}}}
