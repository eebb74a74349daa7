"""`colorize eval …` (flat-engine evaluation on real data or any result folder) and `colorize preview`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from colorize_cli.common import errors_to_exit

from colorize.settings import FlatSettings, Settings

eval_app = typer.Typer(
    help="Evaluate the flat engine: region accuracy, PSNR/SSIM, contact sheets.\n\n"
    "Example: `colorize eval pbc ../shared/realdata/pbc0242 --out /tmp/eval_pbc`",
    no_args_is_help=True,
)


def _settings(gap_close: int | None, min_region: int | None) -> Settings:
    flat = {k: v for k, v in {"gap_close": gap_close, "min_region": min_region}.items() if v is not None}
    return Settings(flat=FlatSettings(**flat))


def _print(figures: dict, sheets: list[Path]) -> None:
    typer.echo(json.dumps({k: (float(v) if hasattr(v, "item") else v) for k, v in figures.items()}, indent=2))
    for sheet in sheets:
        typer.echo(f"contact sheet: {sheet}")


@eval_app.command("pbc")
def eval_pbc_cmd(
    folder: Path = typer.Argument(..., help="Folder with line.png, gt.png, seg.png (e.g. realdata/pbc0242)."),
    out: Path = typer.Option(Path("eval_out"), "--out", help="Where the contact sheet goes."),
    shift_x: float = typer.Option(6.0, help="Move of the synthetic next frame (x pixels)."),
    shift_y: float = typer.Option(4.0, help="Move of the synthetic next frame (y pixels)."),
    angle: float = typer.Option(2.0, help="Rotation of the synthetic next frame (degrees)."),
    gap_close: int | None = typer.Option(None, help="Override flat.gap_close."),
    min_region: int | None = typer.Option(None, help="Override flat.min_region."),
) -> None:
    """Segmentation recovery on seg.png and propagation to a moved + rotated copy.

    Example: `colorize eval pbc ../shared/realdata/pbc0242 --out /tmp/eval_pbc`
    """
    from colorize.evaluate import eval_pbc

    with errors_to_exit():
        report = eval_pbc(folder, out, _settings(gap_close, min_region), (shift_x, shift_y), angle)
        _print(report.figures, report.sheets)


@eval_app.command("sequence")
def eval_sequence_cmd(
    line_dir: Path = typer.Argument(..., help="Line-art frames (PNG)."),
    key_dir: Path = typer.Argument(..., help="Colored keyframes named like their line-art frame."),
    out: Path = typer.Option(Path("eval_out"), "--out", help="Where results and the contact sheet go."),
    gt_dir: Path | None = typer.Option(None, "--gt", help="Ground-truth frames (default: KEY_DIR)."),
    gap_close: int | None = typer.Option(None, help="Override flat.gap_close."),
    min_region: int | None = typer.Option(None, help="Override flat.min_region."),
) -> None:
    """Color a sequence from its keyframes; PSNR/SSIM where ground truth exists; contact sheet.

    Example: `colorize eval sequence shared/realdata/laughing_girl/line shared/realdata/laughing_girl/gt --out /tmp/lg`
    """
    from colorize.evaluate import eval_sequence

    with errors_to_exit():
        report = eval_sequence(line_dir, key_dir, out, _settings(gap_close, min_region), gt_dir)
        _print(report.figures, report.sheets)


@eval_app.command("folder")
def eval_folder_cmd(
    result_dir: Path = typer.Argument(..., help="Result frames (PNG)."),
    gt_dir: Path = typer.Argument(..., help="Ground-truth frames with the same names."),
    regions: Path | None = typer.Option(None, "--regions", help="Region index maps with the same names."),
) -> None:
    """PSNR/SSIM (and region accuracy with --regions) of a result folder against ground truth.

    Example: `colorize eval folder shot042/color shot042/gt`
    """
    from colorize.errors import MissingInputError
    from colorize.evaluate import over_white, psnr, read_image, region_accuracy, region_ids, ssim

    with errors_to_exit():
        names = sorted(p.name for p in Path(result_dir).glob("*.png")) if Path(result_dir).is_dir() else []
        if not names:
            raise MissingInputError(f"{result_dir}: no PNG frames")
        figures: dict = {}
        for name in names:
            res = over_white(read_image(Path(result_dir) / name))
            gt = over_white(read_image(Path(gt_dir) / name))
            figures[name] = {"psnr": round(psnr(res, gt), 2), "ssim": round(ssim(res, gt), 4)}
            if regions is not None:
                acc, _ = region_accuracy(res, gt, region_ids(read_image(Path(regions) / name)))
                figures[name]["region_accuracy"] = round(acc, 4)
        _print(figures, [])


def preview_cmd(
    out_dir: Path = typer.Argument(..., help="A rendered shot folder."),
    fps: float = typer.Option(24.0, help="Frames per second of the mp4."),
) -> None:
    """Write OUT_DIR/preview.mp4 and OUT_DIR/contact_sheet.png of a rendered shot.

    Example: `colorize preview shot042/color --fps 24`
    """
    from colorize.preview import write_preview

    with errors_to_exit():
        for path in write_preview(out_dir, fps=fps):
            typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add `eval` (group) and `preview` to the main app."""
    app.add_typer(eval_app, name="eval")
    app.command("preview")(preview_cmd)
