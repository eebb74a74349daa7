"""Crash safety: kill real `colorize shot` processes at random moments, rerun, compare bytes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli, tree_bytes


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


def test_killed_runs_resume_to_identical_bytes(shot, tmp_path):
    ref = tmp_path / "ref"
    clean = run_cli("shot", str(shot), "--out", str(ref))
    assert clean.returncode == 0, clean.stderr
    expected = tree_bytes(ref)
    assert len(expected) == 24
    rng = random.Random(20261124)
    killed_mid_run = 0
    for trial in range(10):
        out = tmp_path / f"run{trial}"
        proc = start(shot, out)
        wait_for(proc, out, rng.randint(0, 22))
        time.sleep(rng.uniform(0, 0.03))  # land anywhere inside a frame: reading, coloring or writing
        proc.kill()
        proc.communicate()
        partial = finals(out)
        killed_mid_run += 0 < len(partial) < 24
        for path in partial:  # whatever exists under an output name is complete
            assert path.read_bytes() == expected[path.name], f"partial file {path}"
        rerun = run_cli("shot", str(shot), "--out", str(out), "--batch", "1", "--json")
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout.splitlines()[-1])
        assert summary["skipped"] == len(partial) and summary["done"] == 24 - len(partial)
        assert tree_bytes(out) == expected  # also: no temporary file left behind
    assert killed_mid_run >= 5  # the kills really interrupted work in progress


def test_sigterm_stops_cleanly_with_exit_130(shot, tmp_path):
    out = tmp_path / "out"
    proc = start(shot, out)
    wait_for(proc, out, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # finished before the signal landed: nothing to check
        return
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
