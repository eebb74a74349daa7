"""`colorize model …`: convert, describe and check diffusion model folders."""

from __future__ import annotations

import typer

app = typer.Typer(help="Diffusion model folders: convert official checkpoints, describe, check parity.",
                  no_args_is_help=True)
