"""The error family the library raises; the CLI maps each class to an exit code.

The library never prints and never exits. Every error carries a one-line message that names the file,
frame or manifest key at fault, and what is wrong with it.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes (documented in the README). Values follow BSD sysexits where one fits."""

    OK = 0
    USAGE = 2  # bad command line: unknown option, invalid frame range, unknown engine
    QUALITY = 3  # frames were written but fail the quality gate (--max-unresolved): a painter should look
    DATA = 65  # input exists but is invalid: manifest errors, unreadable or inconsistent images
    NO_INPUT = 66  # an input file, folder or model is missing
    INTERNAL = 70  # a bug: please report it
    OUT_OF_MEMORY = 71  # the engine ran out of (GPU or CPU) memory: lower --batch or the resolution
    CANT_CREATE = 73  # the output cannot be created (unwritable folder, output would overwrite an input)
    IO = 74  # reading or writing failed part-way (disk full, I/O error)
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGINT / SIGTERM
    OUTPUT_CLOSED = 141  # stdout (or stderr) was closed by its reader (`| head`): stopped, as 128 + SIGPIPE


class ColorizeError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ColorizeError):
    """The request itself is malformed (frame range, option value)."""

    exit_code = ExitCode.USAGE


class InputDataError(ColorizeError):
    """An input exists but its contents are wrong."""

    exit_code = ExitCode.DATA


class ManifestError(InputDataError):
    """One or more problems in refs.yaml; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class MissingInputError(ColorizeError):
    """An input file, sequence, folder or model is missing."""

    exit_code = ExitCode.NO_INPUT


class OutputError(ColorizeError):
    """The output cannot be created where it was asked for."""

    exit_code = ExitCode.CANT_CREATE


class IOFailure(ColorizeError):
    """Reading or writing failed part-way."""

    exit_code = ExitCode.IO


class InternalError(ColorizeError):
    """A bug or an unexpected failure of a library we call."""

    exit_code = ExitCode.INTERNAL


class ModelError(InputDataError):
    """A model folder or checkpoint is corrupt, truncated, or of the wrong model."""


class OutOfMemory(ColorizeError):
    """The engine ran out of memory for a batch."""

    exit_code = ExitCode.OUT_OF_MEMORY


class QualityGateFailed(ColorizeError):
    """A frame was written but has more unresolved regions than the quality gate allows."""

    exit_code = ExitCode.QUALITY


class Interrupted(ColorizeError):
    """Ctrl-C / SIGINT / SIGTERM stopped the command."""

    exit_code = ExitCode.INTERRUPTED


class OutputClosed(ColorizeError):
    """The reader of stdout (or stderr) went away; the run stops quietly."""

    exit_code = ExitCode.OUTPUT_CLOSED


class CheckFailed(ColorizeError):
    """`check` found problems; `problems` holds one line each, `exit_code` is the most serious class."""

    def __init__(self, problems: list[ColorizeError]):
        self.problems = list(problems)
        self.exit_code = max((p.exit_code for p in problems), key=_severity)
        super().__init__("\n".join(p.message for p in problems))


# How a run's exit code is chosen when several things went wrong: the first of these that happened.
RUN_SEVERITY = (
    ExitCode.INTERRUPTED,
    ExitCode.OUTPUT_CLOSED,
    ExitCode.INTERNAL,
    ExitCode.OUT_OF_MEMORY,
    ExitCode.IO,
    ExitCode.CANT_CREATE,
    ExitCode.NO_INPUT,
    ExitCode.DATA,
    ExitCode.USAGE,
    ExitCode.QUALITY,
)


def most_serious(codes: list[ExitCode]) -> ExitCode:
    """The exit code of a run in which these things went wrong (OK for none)."""
    found = [c for c in RUN_SEVERITY if c in codes]
    return found[0] if found else ExitCode.OK


def _severity(code: ExitCode) -> int:
    # Missing inputs are reported before bad data: they are usually the cause of the rest.
    order = [ExitCode.DATA, ExitCode.NO_INPUT, ExitCode.CANT_CREATE, ExitCode.USAGE]
    return order.index(code) if code in order else -1


def read_text_file(path: Path, what: str, *, encoding: str = "utf-8") -> str:
    """The text of a user's file (`what` names it in messages: "manifest", "timesheet"), with the OS's
    failures as one-line errors: missing or a folder → MissingInputError, not text → InputDataError."""
    if path.is_dir():
        raise MissingInputError(f"{path}: a folder, not a {what} file")
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{path}: {what} is not a text file (UTF-8 expected)") from None
    except OSError as error:
        raise MissingInputError(f"{path}: cannot read the {what} ({error.strerror})") from None
