"""The `colorize` Typer application: mounts the command groups and maps library errors to exit codes."""

from __future__ import annotations

import os
import sys

# Never reach a model hub: everything loads from local folders (set before transformers/diffusers load).
for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DIFFUSERS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import typer  # noqa: E402

from colorize.errors import ColorizeError, ExitCode  # noqa: E402

app = typer.Typer(
    name="colorize",
    help="Colorize animation line-art shots from reference images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _mount() -> None:
    # Imported here so a broken optional group never stops the others from loading.
    from colorize_cli import model as model_cmds

    app.add_typer(model_cmds.app, name="model")


def main() -> None:
    """Console-script entry point."""
    _mount()
    try:
        app(standalone_mode=False)
    except ColorizeError as error:
        for line in str(error).splitlines() or ["error"]:
            sys.stderr.write(f"colorize: error: {line}\n")
        sys.exit(int(error.exit_code))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("colorize: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(0)
