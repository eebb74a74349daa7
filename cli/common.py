"""What the command modules share: arguments and options declared once, error reporting."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.models import OptionInfo

from colorize.errors import CheckFailed, ColorizeError, ExitCode, Interrupted, OutputClosed
from colorize.events import Events
from colorize.shot import ShotPlan, find_manifest, plan_shot


class EngineName(str, Enum):
    auto = "auto"
    flat = "flat"
    diffusion = "diffusion"


class TimingMode(str, Enum):
    strict = "strict"
    hold = "hold"


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
JSON = typer.Option(False, "--json", help="Print JSON on stdout.")

# The options that decide what a run makes (each one overrides the setting of the same name, except
# --preset, which picks the preset layer). Declared once here: `shot`, `check`, `status` and `plan` take
# them through `@with_run_options`, and `plan` hands them on to every task as these same flags.
RUN_OPTIONS: dict[str, tuple[Any, OptionInfo]] = {
    "engine": (EngineName | None, typer.Option(None, "--engine", "-e", help="auto | flat | diffusion.")),
    "preset": (
        str | None,
        typer.Option(None, "--preset", "-p", help="Preset name from presets/ or a .yaml path."),
    ),
    "batch": (
        int | None,
        typer.Option(None, "--batch", "-b", min=1, max=256, help="Frames per engine call."),
    ),
    "seed": (int | None, typer.Option(None, "--seed", help="Seed (same seed and inputs: same bytes).")),
    "model": (Path | None, typer.Option(None, "--model", "-m", help="Diffusion model folder.")),
    "temporal": (Temporal | None, typer.Option(None, "--temporal", help="none | locked | warp (diffusion).")),
    "timing": (
        TimingMode | None,
        typer.Option(None, "--timing", help="strict | hold: a missing line-art frame number is a hold."),
    ),
    "max_unresolved": (
        int | None,
        typer.Option(
            None,
            "--max-unresolved",
            min=0,
            help="Quality gate: a frame with more unresolved regions is written, then failed (exit 3).",
        ),
    ),
    "output_compression": (
        int | None,
        typer.Option(
            None, "--output-compression", min=0, max=9, help="PNG compression level 0-9 (default 1: fast)."
        ),
    ),
}


@dataclass(frozen=True)
class RunOptions:
    """The run options given on a command line (None: not given)."""

    values: dict[str, Any]

    @property
    def preset(self) -> str | None:
        return self.values.get("preset")

    def _given(self) -> Iterator[tuple[str, Any]]:
        for name, value in self.values.items():
            if value is None:
                continue
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value.resolve())  # tasks may run from another folder
            yield name, value

    def overrides(self) -> dict[str, Any]:
        """The command-line settings layer."""
        return {name: value for name, value in self._given() if name != "preset"}

    def argv(self) -> list[str]:
        """The same options as `colorize shot` arguments."""
        args: list[str] = []
        for name, value in self._given():
            flags = RUN_OPTIONS[name][1].param_decls or (f"--{name.replace('_', '-')}",)
            args += [flags[0], str(value)]
        return args

    def task_args(self, out: Path | None) -> list[str]:
        """`argv()` plus this command line's `--out` (absolute): the arguments of a task or worker run."""
        return self.argv() + (["--out", str(out.resolve())] if out else [])


def plan_from_options(
    shot_dir: Path,
    refs: Path | None,
    frames: str | None,
    out: Path | None,
    options: RunOptions,
    **kw: Any,
) -> ShotPlan:
    """The shot plan of a command's SHOT_DIR, --refs, --frames, --out and run options."""
    manifest_path = find_manifest(shot_dir, refs)
    return plan_shot(
        manifest_path, frames=frames, out_dir=out, preset=options.preset, overrides=options.overrides(), **kw
    )


F = TypeVar("F", bound=Callable[..., Any])


def with_run_options(command: F) -> F:
    """Give a command the RUN_OPTIONS; it receives them as one `options: RunOptions` argument."""
    signature = inspect.signature(command)
    params = [p for p in signature.parameters.values() if p.name != "options"]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, (annotation, option) in RUN_OPTIONS.items()
    ]

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        options = RunOptions({name: kwargs.pop(name) for name in RUN_OPTIONS})
        return command(**kwargs, options=options)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def problem_lines(error: ColorizeError) -> list[tuple[str, ExitCode]]:
    """One (line, exit code) per problem an error carries."""
    problems = error.problems if isinstance(error, CheckFailed) else [error]
    return [(line, p.exit_code) for p in problems for line in (str(p).splitlines() or ["error"])]


def report_error(error: ColorizeError) -> None:
    """One `colorize: error: …` line per problem, on stderr."""
    for line, _ in problem_lines(error):
        sys.stderr.write(f"colorize: error: {line}\n")


@contextmanager
def errors_to_exit(events: Events | None = None) -> Iterator[None]:
    """Run a command body: library errors become one line each on stderr and their exit code.

    With `events`, each problem is also one `error` event (the events' human reporter prints the line).
    Every command wraps its body in this, so the exit code is the same under Typer's CliRunner (tests) and
    the installed console script.
    """
    try:
        yield
    except ColorizeError as error:
        _report(error, events)
        raise typer.Exit(int(error.exit_code)) from None
    except KeyboardInterrupt:
        # Before the run started (validating a long shot, loading): an `error` event, so an event stream
        # still ends in either `error` events or a summary. During the run the runner makes the summary.
        _report(
            Interrupted("interrupted" if events is None else "interrupted before the run started"), events
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _report(error: ColorizeError, events: Events | None) -> None:
    if events is None:
        report_error(error)
        return
    try:
        for line, code in problem_lines(error):
            events.emit("error", error=line, exit_code=int(code))
    except OutputClosed:
        pass
    events.close()
