"""The `colorize` Typer application: mounts the command groups and maps library errors to exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

# Never reach a model hub: everything loads from local folders (set before transformers/diffusers load).
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DIFFUSERS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import typer  # noqa: E402
from colorize_cli import evaluate as evaluate_cmds  # noqa: E402
from colorize_cli import farm as farm_cmds  # noqa: E402
from colorize_cli import keys as keys_cmds  # noqa: E402
from colorize_cli import model as model_cmds  # noqa: E402
from colorize_cli import palette as palette_cmds  # noqa: E402
from colorize_cli import shot as shot_cmds  # noqa: E402

from colorize import __version__  # noqa: E402
from colorize.allocator import keep_freed_memory  # noqa: E402
from colorize.errors import ExitCode, OutputClosed  # noqa: E402
from colorize.events import Events  # noqa: E402

app = typer.Typer(
    name="colorize",
    help="Colorize animation line-art shots from reference images.\n\n"
    "Start with `colorize init SHOT_DIR`, check with `colorize check`, run with `colorize shot`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"colorize {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Colorize animation line-art shots from reference images."""


shot_cmds.register(app)
farm_cmds.register(app)
keys_cmds.register(app)
evaluate_cmds.register(app)
app.add_typer(model_cmds.app, name="model")
app.add_typer(palette_cmds.app, name="palette")


def _terminate(signum: int, frame: object) -> None:
    # A farm's SIGTERM stops the run like Ctrl-C: outputs are atomic, so nothing is left half-written.
    raise KeyboardInterrupt


def _open_standard_streams() -> None:
    """Point a closed stdin, stdout or stderr (`colorize shot … 2>&-`) at /dev/null.

    Otherwise Python starts with that stream as None (the first message would crash the run) and the
    next file opened takes its descriptor, so anything written "to stdout" would land in an output frame.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (lives as long as sys)


def _usage_error_event(ctx: Any, message: str) -> None:
    """`colorize shot … --json`: a command line refused by the parser is an `error` event too (README:
    a wrapper gets error events or run_start … summary, whatever went wrong)."""
    command = getattr(ctx, "command", None)
    if getattr(command, "name", None) in ("shot", "keys") and "--json" in sys.argv[1:]:
        with contextlib.suppress(OutputClosed):
            Events(json_stream=sys.stdout).emit("error", error=message, exit_code=int(ExitCode.USAGE))


def main() -> None:
    """Console-script entry point: usage errors exit 2, bugs exit 70 with one line (no traceback)."""
    _open_standard_streams()
    signal.signal(signal.SIGTERM, _terminate)
    keep_freed_memory()  # full-frame arrays reuse memory instead of faulting in fresh pages per frame
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:  # usage errors (typer vendors click's exceptions)
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        if message:  # empty when help was shown instead (a command run without arguments)
            sys.stderr.write(f"colorize: error: {message}{hint}\n")
            _usage_error_event(ctx, message)
        code = getattr(error, "exit_code", int(ExitCode.USAGE))
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("colorize: interrupted\n")
        code = int(ExitCode.INTERRUPTED)
    except Exception as error:  # a bug: one line, the traceback only on request
        if os.environ.get("COLORIZE_DEBUG"):
            raise
        sys.stderr.write(
            f"colorize: internal error: {type(error).__name__}: {error} "
            "(rerun with COLORIZE_DEBUG=1 for the traceback, and please report it)\n"
        )
        code = int(ExitCode.INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)
