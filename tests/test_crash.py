"""Crash safety: kill real `colorize shot` processes at chosen moments (one per phase of a run), rerun,
compare bytes; SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_engines
from colorize_cli.app import app
from conftest import assert_one_summary, tree_bytes
from typer.testing import CliRunner

from colorize.images import is_temp_file


def cli_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("colorize")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from colorize_cli.app import main; main()"]


def start(shot: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*cli_cmd(), "shot", str(shot), "--out", str(out), "--batch", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finals(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.png") if not p.name.startswith(".")) if out.exists() else []


def wait_for(proc: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while proc.poll() is None and len(finals(out)) < count and time.monotonic() < deadline:
        time.sleep(0.002)


def wait_for_write(proc: subprocess.Popen, out: Path) -> None:
    """Until a frame is being written (its temporary file exists beside the outputs)."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and any(is_temp_file(p.name) for p in out.iterdir()):
            return
        time.sleep(0.001)


# Kill points, one per phase of a run: (frames written before the kill, then a delay to land inside the
# next frame, or "write": the moment a frame's temporary file exists). 0: while starting (nothing written
# yet); 1: right after the first write; 12: mid-run, in a write; 23: on the last frame or the summary.
KILLS: tuple[tuple[int, float | str], ...] = ((0, 0.0), (1, 0.004), (12, "write"), (23, 0.03))


def test_killed_runs_resume_to_identical_bytes(shot, tmp_path, sample_colors):
    expected = sample_colors  # a clean run's bytes
    assert len(expected) == 24
    killed_mid_run = 0
    for trial, (count, delay) in enumerate(KILLS):
        out = tmp_path / f"run{trial}"
        proc = start(shot, out)
        wait_for(proc, out, count)
        if delay == "write":
            wait_for_write(proc, out)
        else:
            time.sleep(float(delay))
        proc.kill()
        proc.communicate()
        partial = finals(out)
        killed_mid_run += 0 < len(partial) < 24
        for path in partial:  # whatever exists under an output name is complete
            assert path.read_bytes() == expected[path.name], f"partial file {path}"
        # The rerun resumes in-process (what it reads is on disk; the kill was a real process's).
        rerun = CliRunner().invoke(app, ["shot", str(shot), "--out", str(out), "--batch", "1", "--json"])
        assert rerun.exit_code == 0, rerun.output
        summary = json.loads(rerun.stdout.splitlines()[-1])
        assert summary["skipped"] == len(partial) and summary["done"] == 24 - len(partial)
        assert tree_bytes(out) == expected  # also: no temporary file left behind
    assert killed_mid_run >= 2  # the kills really interrupted work in progress


def test_sigterm_mid_run_gives_a_summary_and_exit_130(shot):
    proc = fake_engines.popen_with_engine(
        "slow", "shot", str(shot), "--json", "--batch", "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    lines = []
    while not any('"frame_done"' in line for line in lines):
        lines.append(proc.stdout.readline())
        assert lines[-1], "the run ended before its first frame"
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5  # stops within a few seconds
    events = [json.loads(line) for line in lines + out.splitlines()]
    assert_one_summary(events)
    end = events[-1]
    assert proc.returncode == 130 and end["exit_code"] == 130, err
    assert end["stopped"] == "interrupted" and 1 <= end["done"] < 24 and end["not_run"] > 0  # mid-run
    assert "Traceback" not in err and "stopped: interrupted" in err
    assert not [p for p in (shot / "color").iterdir() if p.name.startswith(".")]
