"""`colorize eval …` (the flat engine against ground truth, beside a flow-warp baseline) and `colorize preview`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from colorize_cli.common import REFS, errors_to_exit

eval_app = typer.Typer(
    help="Evaluate the flat engine: region and pixel accuracy, PSNR, alpha IoU, beside a flow-warp baseline.\n\n"
    "Example: `python bench/make_eval_set.py evalset && colorize eval set evalset --out /tmp/eval`",
    no_args_is_help=True,
)

OUT = typer.Option(Path("eval_out"), "--out", "-o", help="Where results, sheets and figures go.")
GAP_CLOSE = typer.Option(None, "--gap-close", help="Override flat.gap_close.")
MIN_REGION = typer.Option(None, "--min-region", help="Override flat.min_region.")
FILL = typer.Option(None, "--fill", help="Override flat.fill (auto | flat | texture).")


def _overrides(gap_close: int | None, min_region: int | None, fill: str | None) -> dict[str, Any]:
    flat = {"gap_close": gap_close, "min_region": min_region, "fill": fill}
    return {"flat": {k: v for k, v in flat.items() if v is not None}}


def _print(figures: dict, sheets: list[Path]) -> None:
    typer.echo(json.dumps(figures, indent=2, default=float))
    for sheet in sheets:
        typer.echo(f"contact sheet: {sheet}")


@eval_app.command("set")
def eval_set_cmd(
    root: Path = typer.Argument(..., help="An evaluation set: case folders (bench/make_eval_set.py)."),
    out: Path = OUT,
    chunks: int = typer.Option(0, help="Also run each case in this many chunks and compare the bytes."),
    gap_close: int | None = GAP_CLOSE,
    min_region: int | None = MIN_REGION,
    fill: str | None = FILL,
) -> None:
    """Every case of an evaluation set: a Markdown table (also OUT/table.md) and OUT/results.json.

    Example: `colorize eval set evalset --out /tmp/eval --chunks 3`
    """
    from colorize.evaluate import evaluate_set, flag_summary, table

    with errors_to_exit():
        reports = evaluate_set(root, out, _overrides(gap_close, min_region, fill), chunks)
        text = table(reports)
        (out / "table.md").write_text(text)
        (out / "results.json").write_text(
            json.dumps(
                {**{r.name: vars(r) for r in reports}, "set_flags": flag_summary(reports)},
                indent=1,
                default=str,
            )
        )
        typer.echo(text)
        for r in reports:
            for sheet in r.sheets:
                typer.echo(f"contact sheet: {sheet}")


@eval_app.command("case")
def eval_case_cmd(
    case: Path = typer.Argument(..., help="One case folder (refs.yaml, line/, keys/, gt/, regions/)."),
    out: Path = OUT,
    chunks: int = typer.Option(0, help="Also run the case in this many chunks and compare the bytes."),
    gap_close: int | None = GAP_CLOSE,
    min_region: int | None = MIN_REGION,
    fill: str | None = FILL,
) -> None:
    """One case: engine and baseline figures, per frame and averaged.

    Example: `colorize eval case evalset/syn_move --out /tmp/eval_move`
    """
    from colorize.evaluate import evaluate_case

    with errors_to_exit():
        report = evaluate_case(case, out, _overrides(gap_close, min_region, fill), chunks)
        _print({"case": report.figures, "frames": report.frames}, report.sheets)


@eval_app.command("pbc")
def eval_pbc_cmd(
    folder: Path = typer.Argument(..., help="Folder with line.png, gt.png, seg.png (e.g. realdata/pbc0242)."),
    out: Path = OUT,
    shift_x: float = typer.Option(40.0, help="Move of the synthetic next frame (x pixels)."),
    shift_y: float = typer.Option(0.0, help="Move of the synthetic next frame (y pixels)."),
    angle: float = typer.Option(3.0, help="Rotation of the synthetic next frame (degrees)."),
    gap_close: int | None = GAP_CLOSE,
    min_region: int | None = MIN_REGION,
    fill: str | None = FILL,
) -> None:
    """Segmentation recovery on seg.png, and the keyframe carried to a moved + rotated copy.

    Example: `colorize eval pbc ../shared/realdata/pbc0242 --out /tmp/eval_pbc`
    """
    from colorize.evaluate_cases import eval_pbc

    with errors_to_exit():
        figures, report = eval_pbc(
            folder, out, _overrides(gap_close, min_region, fill), (shift_x, shift_y), angle
        )
        _print(figures, report.sheets)


@eval_app.command("sequence")
def eval_sequence_cmd(
    line_dir: Path = typer.Argument(..., help="Line-art frames (a numbered sequence)."),
    key_dir: Path = typer.Argument(..., help="Colored keyframes with the frame numbers of their line art."),
    out: Path = OUT,
    gt_dir: Path | None = typer.Option(None, "--gt", help="Ground-truth frames (default: KEY_DIR)."),
    regions: Path | None = typer.Option(
        None, "--regions", help="Region index maps (default: the line art's own regions)."
    ),
    gap_close: int | None = GAP_CLOSE,
    min_region: int | None = MIN_REGION,
    fill: str | None = FILL,
) -> None:
    """Color a sequence from its keyframes; figures where ground truth exists; contact sheet.

    Example: `colorize eval sequence shared/realdata/laughing_girl/line shared/realdata/laughing_girl/gt --out /tmp/lg`
    """
    from colorize.evaluate import evaluate_case
    from colorize.evaluate_cases import case_from_folders

    with errors_to_exit():
        case = case_from_folders(line_dir, key_dir, out, gt_dir, regions)
        report = evaluate_case(case, out / "result", _overrides(gap_close, min_region, fill))
        _print({"case": report.figures, "frames": report.frames}, report.sheets)


@eval_app.command("folder")
def eval_folder_cmd(
    result_dir: Path = typer.Argument(..., help="Result frames (a numbered sequence)."),
    gt_dir: Path = typer.Argument(..., help="Ground-truth frames with the same frame numbers."),
    regions: Path | None = typer.Option(
        None, "--regions", help="Region index maps with the same frame numbers."
    ),
) -> None:
    """PSNR/SSIM/alpha IoU (and region accuracy with --regions) of a result folder against ground truth.

    Example: `colorize eval folder shot042/color shot042/gt`
    """
    from colorize import images
    from colorize.errors import MissingInputError
    from colorize.metrics import alpha_iou, psnr, region_accuracy, region_ids, ssim
    from colorize.sequences import find_sequence

    with errors_to_exit():
        results = find_sequence(result_dir, images.IMAGE_EXTS)
        if not results:
            raise MissingInputError(f"{result_dir}: no numbered frames")
        gts = find_sequence(gt_dir, images.IMAGE_EXTS)
        maps = find_sequence(regions, images.IMAGE_EXTS) if regions is not None else {}
        figures: dict = {}
        for f, path in results.items():
            if f not in gts:
                continue
            res, gt = images.read_rgba(path), images.read_rgba(gts[f])
            row = {
                "psnr": round(psnr(res, gt), 2),
                "ssim": round(ssim(res, gt), 4),
                "alpha_iou": alpha_iou(res, gt),
            }
            if f in maps:
                row["region_accuracy"] = round(
                    region_accuracy(res, gt, region_ids(images.read_rgba(maps[f])))[0], 4
                )
            figures[str(f)] = row
        if not figures:
            raise MissingInputError(f"{gt_dir}: no ground-truth frame with the frame number of a result")
        _print(figures, [])


def preview_cmd(
    out_dir: Path = typer.Argument(..., help="A rendered shot folder."),
    fps: float = typer.Option(24.0, min=0.1, help="Frames per second of the mp4."),
    qa: Path | None = typer.Option(
        None,
        "--qa",
        help="A QA folder (`colorize shot --qa DIR`): frames side by side with their overlays, "
        "and the sheet picks the worst frames.",
    ),
    keys: bool = typer.Option(
        False,
        "--keys",
        help="OUT_DIR is a shot folder: write its keys_sheet.png (references, then each key beside its line "
        "art) for review.",
    ),
    refs: Path | None = REFS,
) -> None:
    """Write OUT_DIR/preview.mp4 and OUT_DIR/contact_sheet.png of a rendered shot.

    With --keys, OUT_DIR is a shot folder and the keys sheet is written beside its manifest.

    Examples: `colorize preview shot042/color --fps 24 --qa shot042/qa`, `colorize preview shot042 --keys`
    """
    from colorize.preview import write_keys_sheet, write_preview
    from colorize.shot import find_manifest, plan_shot

    with errors_to_exit():
        if keys:
            typer.echo(str(write_keys_sheet(plan_shot(find_manifest(out_dir, refs)))))
            return
        for path in write_preview(out_dir, fps=fps, qa_dir=qa):
            typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add `eval` (group) and `preview` to the main app."""
    app.add_typer(eval_app, name="eval")
    app.command("preview")(preview_cmd)
