"""`colorize palette …`: the show's colour model (palette files)."""

from __future__ import annotations

from pathlib import Path

import typer
from colorize_cli.common import errors_to_exit

from colorize.errors import UsageError

app = typer.Typer(
    help="Colour model (palette) files: ids, names and colours of a show's paint styles.\n\n"
    "Example: `colorize palette extract keys/sh042.1001.png --out show.palette.yaml`",
    no_args_is_help=True,
)


@app.command()
def extract(
    keyframes: list[Path] = typer.Argument(..., help="Painted keyframes (flat colours).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Palette file to write (YAML)."),
    min_pixels: int = typer.Option(
        1, "--min-pixels", min=1, help="Leave out colours painted on fewer interior pixels than this."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing palette file."),
) -> None:
    """Write a starter palette from painted keyframes: every colour painted on a flat patch (anti-aliased
    edges left out), ids 1, 2, … by how much of the keyframes it covers (then by colour), names `color N`
    to rename. Line colours (black main lines) are listed too when the keyframes show them: delete them,
    or keep them as styles of their own.

    Example:

        colorize palette extract keys/sh042.1001.png keys/sh042.1040.png --out show.palette.yaml
    """
    with errors_to_exit():
        from colorize.colormodel import extract as extract_colors
        from colorize.colormodel import palette_yaml, write_palette
        from colorize.images import read_rgba

        colors = extract_colors([read_rgba(path) for path in keyframes], min_pixels)
        if not colors:
            raise UsageError(
                f"no colour covers {min_pixels} interior pixels of the keyframes; lower --min-pixels"
            )
        write_palette(out, palette_yaml(colors, [p.name for p in keyframes]), overwrite=force)
        typer.echo(f"{out}: {len(colors)} colours from {len(keyframes)} keyframe(s)")
