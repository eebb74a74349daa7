"""The `colorize` Typer application: mounts the command groups and maps library errors to exit codes."""

from __future__ import annotations

import os
import signal
import sys

# Never reach a model hub: everything loads from local folders (set before transformers/diffusers load).
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DIFFUSERS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import typer  # noqa: E402
from colorize_cli import evaluate as evaluate_cmds  # noqa: E402
from colorize_cli import farm as farm_cmds  # noqa: E402
from colorize_cli import model as model_cmds  # noqa: E402
from colorize_cli import shot as shot_cmds  # noqa: E402

from colorize import __version__  # noqa: E402
from colorize.errors import ExitCode  # noqa: E402

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
evaluate_cmds.register(app)
app.add_typer(model_cmds.app, name="model")


def _terminate(signum: int, frame: object) -> None:
    # A farm's SIGTERM stops the run like Ctrl-C: outputs are atomic, so nothing is left half-written.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: usage errors exit 2, bugs exit 70 with one line (no traceback)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:  # usage errors (typer vendors click's exceptions)
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        ctx = getattr(error, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        if message:  # empty when help was shown instead (a command run without arguments)
            sys.stderr.write(f"colorize: error: {message}{hint}\n")
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
