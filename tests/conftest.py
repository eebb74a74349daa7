"""Shared fixtures: a copy of the bundled sample shot, the shared/ folder, a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "samples" / "shot001"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker (and its subprocesses): the workers already fill the cores, and torch's own
    # threads on top of them would wait on each other.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture
def shot(tmp_path: Path) -> Path:
    """A private copy of samples/shot001 (inputs only)."""
    dest = tmp_path / "shot001"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("color"))
    return dest


@pytest.fixture(scope="session")
def sample_colors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """{file name: bytes} of the bundled sample shot colored once by a clean `colorize shot` process
    (default settings), shared by the tests that compare other runs with it (outputs do not depend on
    where the shot folder is)."""
    root = tmp_path_factory.mktemp("sample_colors")
    shutil.copytree(SAMPLE, root / "shot001", ignore=shutil.ignore_patterns("color"))
    proc = run_cli("shot", str(root / "shot001"), "--out", str(root / "out"))
    assert proc.returncode == 0, proc.stderr
    return tree_bytes(root / "out")


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("needs ../shared (not present beside this clone)")
    return SHARED


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run the installed `colorize` console script in a real subprocess."""
    exe = Path(sys.executable).with_name("colorize")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from colorize_cli.app import main; main()"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, **kw)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """{relative path: bytes} of every file under a folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_summary(events: list[dict]) -> None:
    """A run's event stream: run_start first, exactly one summary, last; every event has a time."""
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds.count("summary") == 1 and kinds[-1] == "summary", kinds
    assert all("time" in e for e in events)
