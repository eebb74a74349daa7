"""Helpers shared by the command modules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from colorize.errors import ColorizeError, ExitCode


def report_error(error: ColorizeError) -> None:
    """One `colorize: error: …` line per problem, on stderr."""
    for line in str(error).splitlines() or ["error"]:
        sys.stderr.write(f"colorize: error: {line}\n")


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Run a command body: library errors become one line each on stderr and their exit code.

    Every command wraps its body in this, so the exit code is the same under Typer's CliRunner (tests) and
    the installed console script.
    """
    try:
        yield
    except ColorizeError as error:
        report_error(error)
        raise typer.Exit(int(error.exit_code)) from None
    except KeyboardInterrupt:
        sys.stderr.write("colorize: interrupted\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
