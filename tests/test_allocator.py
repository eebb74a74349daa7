"""colorize.allocator: glibc's allocator tuned for full-frame arrays, the user's own tuning respected."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_PROBE = "from colorize.allocator import keep_freed_memory; print(keep_freed_memory())"


def _probe(env: dict[str, str]) -> str:
    """keep_freed_memory() in a fresh interpreter (mallopt changes the whole process)."""
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the tuning is glibc's: elsewhere the allocator is left alone",
)
def test_the_allocator_is_tuned_unless_the_user_tuned_it():
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    assert _probe(base) == "True"
    assert _probe({**base, "MALLOC_TRIM_THRESHOLD_": "0"}) == "False"  # the user's choice stands
    assert _probe({**base, "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}) == "False"


def test_the_colorize_command_tunes_the_allocator(monkeypatch):
    """The console entry point (also each worker process's) keeps freed memory before it runs a command."""
    import colorize_cli.app as app

    called = []
    monkeypatch.setattr(app, "keep_freed_memory", lambda: called.append(True) or True)
    monkeypatch.setattr(app.signal, "signal", lambda *args: None)  # leave the test process's handlers
    monkeypatch.setattr(sys, "argv", ["colorize", "--version"])
    with pytest.raises(SystemExit):
        app.main()
    assert called == [True]
