"""`colorize keys`: choose the key drawings of a shot and paint them with the diffusion engine."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import typer
from colorize_cli.common import (
    REFS,
    SHOT_DIR,
    RunOptions,
    errors_to_exit,
    plan_from_options,
    with_run_options,
)
from colorize_cli.shot import Progress, _debug

from colorize.engines import create_engine, engine_spec
from colorize.errors import ColorizeError, ExitCode, MissingInputError, UsageError
from colorize.events import Events, HumanReporter
from colorize.keyframes import KeysPass, add_to_manifest, keyframe_pattern, keys_pass
from colorize.runner import run_shot
from colorize.sequences import frame_range_text, parse_frame_range
from colorize.shot import ShotPlan, check_output_writable, raise_problems
from colorize.validate import validate_plan


@with_run_options
def keys(
    shot_dir: Path = SHOT_DIR,
    refs: Path | None = REFS,
    frames: str | None = typer.Option(
        None, "--frames", "-f", help="Paint these frames as keys instead of choosing them (fileseq syntax)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the keys and why each, paint nothing."),
    write_manifest: bool = typer.Option(
        False, "--write-manifest", help="Add `keyframes: keys/<line-art name>` to a manifest that has none."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Paint again every key this command wrote, even fresh ones (never a painter's).",
    ),
    json_events: bool = typer.Option(
        False, "--json", help="JSON-lines events (--dry-run: one JSON document)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the summary on stderr."),
    progress: Progress = typer.Option(
        Progress.auto, "--progress", help="bar, lines, openjd, none; as `shot`."
    ),
    progress_every: float = typer.Option(
        5.0, "--progress-every", min=0, help="Seconds between progress lines."
    ),
    *,
    options: RunOptions,
) -> None:
    """Paint the key drawings of a shot with the diffusion engine, as keyframes for the flat engine.

    Keys are chosen from the line art alone: the first frame, every drawing the flat engine could not carry
    from the last key (keys.min_carried), a new drawing at least every keys.max_gap frames, never a repeat,
    at most keys.max_count. Each key is painted alone and cel-finished (one color per line-art region) and
    written under the manifest's `keyframes` pattern (default keys/<line-art name>). A keyframe file this
    command did not write (a painter's) is never replaced; its own keys are skipped when fresh and painted
    again when stale. Then check the keys, fix any in a paint program, and run `colorize shot --engine flat`.

    Examples:

        colorize keys ./shot042 --dry-run

        colorize keys ./shot042 --model /models/colorize-v2 --write-manifest

        colorize keys ./shot042 --frames 1001,1033 --json > keys.jsonl
    """
    events = Events(
        json_stream=sys.stdout if json_events and not dry_run else None,
        human=HumanReporter(sys.stderr, progress=progress.value, quiet=quiet, interval=progress_every),
    )
    with errors_to_exit(events):
        plan = plan_before_keys(shot_dir, refs, None, None, options)
        explicit = _explicit(frames, plan)
        if not dry_run:  # the model folder first: choosing reads the whole shot
            spec = engine_spec("keys")
            assert spec.check is not None
            spec.check(plan.settings)
        validate_plan(plan, deep=True, frames=plan.frames)
        kp = keys_pass(plan, explicit)
        if dry_run:
            _list(kp, json_events)
            return
        notes = _notes(kp)
        if write_manifest and not kp.in_manifest:
            add_to_manifest(plan.manifest_path, kp.pattern_text)
            notes.append(f"added `keyframes: {kp.pattern_text}` to {plan.manifest_path}")
        elif not kp.in_manifest:
            notes.append(
                f"keys go to {kp.pattern_text} (beside {plan.manifest_path.name}), which the manifest does not "
                f"name: add `keyframes: {kp.pattern_text}` to it, or rerun with --write-manifest"
            )
        size = validate_plan(kp.plan, deep=False)
        check_output_writable(kp.plan)
        make = functools.partial(create_engine, "keys", kp.plan.settings)
        summary = run_shot(kp.plan, make, events, size=size, overwrite=overwrite, messages=notes)
    events.close()
    _debug(summary)
    if summary.exit_code != ExitCode.OK:
        raise typer.Exit(int(summary.exit_code))


def plan_before_keys(
    shot_dir: Path, refs: Path | None, frames: str | None, out: Path | None, options: RunOptions
) -> ShotPlan:
    """`plan_from_options`, where the manifest's keyframes folder may not exist yet (`colorize keys` makes
    it): every other problem is raised as usual."""
    problems: list[ColorizeError] = []
    plan = plan_from_options(shot_dir, refs, frames, out, options, problems=problems)
    folder = keyframe_pattern(plan).folder
    missing = f"{folder}: folder of keyframes sequence"
    raise_problems(
        [p for p in problems if not (isinstance(p, MissingInputError) and str(p).startswith(missing))]
    )
    return plan


def _explicit(frames: str | None, plan: ShotPlan) -> list[int] | None:
    if frames is None:
        return None
    wanted = parse_frame_range(frames)  # an empty --frames "" is a usage error there
    outside = [f for f in wanted if f not in plan.lineart_paths]
    if outside:
        raise UsageError(
            f"--frames {frames}: frames {frame_range_text(outside)} are not in lineart sequence "
            f"{frame_range_text(list(plan.frames))}"
        )
    return wanted


def _notes(kp: KeysPass) -> list[str]:
    choice = kp.choice
    notes = [
        f"keys {frame_range_text(list(choice.frames))}: "
        + "; ".join(f"{k.frame} {k.reason}" for k in choice.keys)
    ]
    if kp.painters:
        notes.append(
            f"keyframes {frame_range_text(list(kp.painters))} in {kp.pattern_text} were not written by "
            "colorize keys (a painter's): kept as they are"
        )
    if choice.over:
        notes.append(
            f"over keys.max_count {len(choice.keys)}: frames {frame_range_text([k.frame for k in choice.over])} "
            "would also be keys"
        )
    if kp.orphans:
        notes.append(
            f"keyframes {frame_range_text(list(kp.orphans))} were written by colorize keys but are no longer "
            "chosen: they still count as keyframes; remove them if they are not wanted"
        )
    return notes


def _list(kp: KeysPass, as_json: bool) -> None:
    """`--dry-run`: the keys, why each, and what the pass would do with each file."""
    painters = set(kp.painters)
    rows: list[dict[str, Any]] = []
    for k in kp.choice.keys:
        path = kp.pattern.path(k.frame)
        state = (
            "painter's keyframe: kept"
            if k.frame in painters
            else ("written" if path.exists() else "to paint")
        )
        rows.append(
            {"frame": k.frame, "reason": k.reason, "detail": k.detail, "file": str(path), "state": state}
        )
    if as_json:
        doc = {
            "keyframes": kp.pattern_text,
            "in_manifest": kp.in_manifest,
            "frames_total": len(kp.plan.frames),
            "drawings": kp.choice.drawings,
            "keys": rows,
            "over_max_count": [k.frame for k in kp.choice.over],
            "no_longer_chosen": list(kp.orphans),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    where = "" if kp.in_manifest else " (not in the manifest: --write-manifest adds it)"
    typer.echo(
        f"{len(rows)} keys of {len(kp.plan.frames)} frames ({kp.choice.drawings or '?'} drawings), "
        f"into {kp.pattern_text}{where}"
    )
    for row in rows:
        typer.echo(f"  {row['frame']}  {row['reason']:<16} {row['detail']}  [{row['state']}]")
    for k in kp.choice.over:
        typer.echo(f"  {k.frame}  over keys.max_count: {k.detail}")
    for f in kp.orphans:
        typer.echo(f"  {f}  no longer chosen (written by an earlier colorize keys): {kp.pattern.path(f)}")


def register(app: typer.Typer) -> None:
    app.command(no_args_is_help=True)(keys)
