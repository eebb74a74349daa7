"""Evaluation of the flat engine against ground truth, beside a plain flow-warp baseline.

A *case* is a shot folder that the real runner colors (`run_shot`, the same reading, engine and writing
as `colorize shot`), with the answers beside it:

    CASE/refs.yaml            the manifest (line art, keyframes, output, settings)
    CASE/line/, CASE/keys/    the line-art and keyframe sequences the manifest names
    CASE/gt/NAME.####.png     ground truth: the finished frames (colors with the line layer), RGB or RGBA
    CASE/regions/NAME.####.png  region index maps (one RGB value per region; black: lines, not counted)
    CASE/unscored/NAME.####.png optional: pixels no figure counts (white), where the truth is a blend that
                              no engine paints (e.g. a trace line's rim over the other fill); see README
    CASE/case.json            {"description": ..., "shaded": bool, "trace": bool}

`bench/make_eval_set.py` writes such folders (generated drawings, and transforms of ../shared/realdata).

Metrics per frame with ground truth (keyframe frames excluded), averaged per case:
- region accuracy: share of ground-truth regions (of at least MIN_AREA pixels off the lines: smaller ones
  are slivers a transform leaves, not paint-bucket areas) most of whose pixels are within TOLERANCE of
  the truth (flat: the region has the right color; shaded: its shading follows; RGBA: a transparent
  region must come out transparent);
- pixel accuracy: share of region pixels (off the lines) within 8/255 of the ground truth per channel;
- PSNR over the whole frame, both composited over white; alpha IoU of the opaque (alpha >= 128) pixels.
- PSNR off the lines and the background-colour check (longest run of frames with a character region painted
  in a keyframe background colour), see `colorize.evaluate_clip`. A frame with ground truth but no region
  map (a hand-drawn clip's finished frames) is scored by these and PSNR only; its line art's regions stand in
  for the flags (wrong: most pixels off by more than CLIP_TOLERANCE).
Baseline: the nearest keyframe warped onto the frame by plain optical flow between the two line-art frames
(`colorize.temporal.warp_previous`, the diffusion engine's temporal warp) with the frame's line layer on
top, rendered like the engine's output (a case without keyframes: the bare line art).
Flags: the regions the engine marks low-confidence or unresolved (what QA tells a painter to check)
against the regions it got wrong (`flag_counts`): recall and precision. SSIM (Gaussian window, OpenCV) is kept for `eval folder`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorize import images
from colorize.engines.flat import FlatEngine
from colorize.errors import MissingInputError, OutputError
from colorize.evaluate_clip import (
    BACKGROUND_MIN_AREA,
    background_colors,
    background_owned,
    longest_run,
    off_lines,
    painted_background,
)
from colorize.evaluate_trace import case_figures as trace_case_figures
from colorize.evaluate_trace import table as trace_table
from colorize.events import Events
from colorize.metrics import (
    CLIP_TOLERANCE,
    MIN_AREA,
    TOLERANCE,
    alpha_iou,
    error_image,
    flag_counts,
    palette_id_accuracy,
    pixel_accuracy,
    psnr,
    region_accuracy,
    region_ids,
    unpack_flags,
)
from colorize.qa import contact_sheet
from colorize.regions.render import render
from colorize.regions.segment import Segmentation, ink_u8, segment
from colorize.runner import run_shot
from colorize.sequences import find_sequence
from colorize.settings import Settings
from colorize.shot import plan_shot
from colorize.temporal import warp_previous
from colorize.validate import validate_plan

# -- the baseline -------------------------------------------------------------------------------------------


def flow_warp_baseline(
    keyframe: np.ndarray,
    line_key: np.ndarray,
    line: np.ndarray,
    settings: Settings,
    seg: Segmentation | None = None,
) -> np.ndarray:
    """The keyframe warped onto `line` by plain optical flow between the line-art frames, with `line`'s
    line layer on top (rendered as the engine renders its own output; `seg`: `line`'s segmentation
    under `settings`, when the caller has it)."""
    warped, _ = warp_previous(keyframe, ink_u8(line), ink_u8(line_key))
    fs = settings.flat
    seg = seg if seg is not None else engine_segmentation(line, settings)
    return render(seg, np.ascontiguousarray(warped), line, fs.lines, fs.colored_lines)


def engine_segmentation(line: np.ndarray, settings: Settings) -> Segmentation:
    """The regions of a line-art frame as the flat engine segments it under `settings`."""
    fs = settings.flat
    return segment(line, fs.gap_close, fs.min_region, fs.line_threshold, fs.close_breaks)


# -- cases --------------------------------------------------------------------------------------------------


@dataclass
class CaseReport:
    name: str
    description: str
    shaded: bool
    figures: dict[str, Any] = field(default_factory=dict)  # engine and baseline means, counts
    frames: list[dict[str, Any]] = field(default_factory=list)  # per-frame figures
    sheets: list[Path] = field(default_factory=list)


def run_case(
    case: Path,
    out: Path,
    overrides: dict[str, Any] | None = None,
    frames: str | None = None,
    flags: dict[int, np.ndarray] | None = None,
) -> list[dict]:
    """Color a case with the flat engine through the real runner into `out`; the `frame_done` events.

    `flags` (a dict) receives, per frame, the engine's bit-packed mask of flagged pixels (regions it calls
    low-confidence or unresolved; `FlatEngine.flags`)."""
    plan = plan_shot(
        case / "refs.yaml", out_dir=out, frames=frames, overrides={"engine": "flat", **(overrides or {})}
    )
    size = validate_plan(plan, deep=False)
    stream = io.StringIO()
    engine = FlatEngine(plan.settings)
    engine.flags = flags
    summary = run_shot(plan, engine, Events(json_stream=stream), size=size, overwrite=True)
    if summary.failures:
        raise summary.failures[0][1]
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [e for e in events if e["event"] == "frame_done"]


def evaluate_case(
    case: Path, out: Path, overrides: dict[str, Any] | None = None, chunks: int = 0
) -> CaseReport:
    """Run one case (engine and baseline), score both against its ground truth, write a contact sheet.

    `chunks` > 1 also colors the shot in that many `--frames` chunks (in reverse order) and reports whether
    every output is byte-identical to the whole run.
    """
    case, out = Path(case), Path(out)
    meta = json.loads((case / "case.json").read_text()) if (case / "case.json").is_file() else {}
    report = CaseReport(case.name, meta.get("description", ""), bool(meta.get("shaded", False)))
    plan = plan_shot(
        case / "refs.yaml", out_dir=out / "engine", overrides={"engine": "flat", **(overrides or {})}
    )
    flags: dict[int, np.ndarray] = {}
    done = {e["frame"]: e for e in run_case(case, out / "engine", overrides, flags=flags)}
    caught = {"wrong": 0, "wrong_flagged": 0, "flagged": 0}
    frames = plan.exposures.frames  # every output frame, exact repeats (folded into one drawing) too
    files = _case_files(case, plan)
    trace_frames: tuple[dict, dict] = ({}, {})  # a trace case: frame -> line art, output
    repeats = _Repeats()
    worst: tuple[tuple, list] | None = None
    for f in frames:
        line = images.read_rgba(plan.lineart_paths[f])
        result = images.read_image(plan.output.path(f))
        if meta.get("trace"):
            trace_frames[0][f], trace_frames[1][f] = line, images.to_uint8(result)
        repeats.add(line, result, done[f].get("unresolved", 0))
        if f in files.key_files or f not in files.gts:
            continue
        row, counts, rank, sheet = _score_frame(plan, f, line, result, files, flags.get(f), done[f])
        if counts is not None:
            caught = {k: caught[k] + counts[k] for k in caught}
        report.frames.append(row)
        if worst is None or rank < worst[0]:
            worst = (rank, sheet())
    figures = report.figures
    figures["frames"] = len(frames)
    figures["scored"] = len(report.frames)
    figures["unresolved"] = sum(e.get("unresolved", 0) for e in done.values())
    figures.update(repeats.figures())
    ids_acc = [r["engine_palette_id_acc"] for r in report.frames if "engine_palette_id_acc" in r]
    if ids_acc:
        figures["engine_palette_id_acc"] = float(np.mean(ids_acc))
    figures.update({f"flags_{k}": v for k, v in caught.items()})
    figures.update(_means(report.frames))
    if meta.get("trace"):
        truths = {f: images.read_rgba(files.gts[f]) for f in trace_frames[0] if f in files.gts}
        figures["trace"] = trace_case_figures(*trace_frames, truths, set(files.key_files))
    if chunks > 1:
        figures["chunks_identical"] = _chunks_identical(case, out, plan, overrides, chunks)
    _write_sheet(report, case, out, plan, frames, files, worst)
    return report


@dataclass
class _CaseFiles:
    """A case's files beside its shot (frame -> path): keyframes, ground truth, region maps, unscored
    masks; and the background colours of each key."""

    key_files: dict[int, Path]
    keys: list[int]
    gts: dict[int, Path]
    regions: dict[int, Path]
    unscored: dict[int, Path]
    backgrounds: dict[int, tuple[np.ndarray, np.ndarray]]  # keyframe: (background colours, owned)


def _case_files(case: Path, plan: Any) -> _CaseFiles:
    key_files = {plan.keyframe_frames.get(d, d): p for d, p in plan.keyframe_paths.items()}  # frame -> key
    keys = sorted(key_files)

    def sequence(name: str) -> dict[int, Path]:
        return find_sequence(case / name, images.IMAGE_EXTS) if (case / name).is_dir() else {}

    gts, regions, unscored = sequence("gt"), sequence("regions"), sequence("unscored")
    backgrounds = {k: _background_colors(plan, k, key_files[k], regions) for k in keys}
    return _CaseFiles(key_files, keys, gts, regions, unscored, backgrounds)


@dataclass
class _Repeats:
    """Frames whose drawing is identical to an earlier frame's (by line-art pixels): their outputs must be
    too. Pixels, not files: a repeat saved as a different file (not folded) has its own record."""

    firsts: dict[bytes, np.ndarray] = field(default_factory=dict)  # line-art bytes -> first frame's output
    repeats: int = 0
    mismatch: int = 0
    unresolved: int = 0

    def add(self, line: np.ndarray, result: np.ndarray, unresolved: int) -> None:
        digest = line.tobytes()
        if digest in self.firsts:
            self.repeats += 1
            self.mismatch += not np.array_equal(result, self.firsts[digest])
            self.unresolved += unresolved
        else:
            self.firsts[digest] = result

    def figures(self) -> dict[str, int]:
        return {
            "repeats": self.repeats,
            "repeats_not_identical": int(self.mismatch),
            "repeats_unresolved": int(self.unresolved),
        }


def _score_frame(
    plan: Any,
    f: int,
    line: np.ndarray,
    result: np.ndarray,
    files: _CaseFiles,
    flags: np.ndarray | None,
    done: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, int] | None, tuple, Callable[[], list[np.ndarray]]]:
    """Frame `f`'s figures (engine and baseline against the truth), its flag counts (when the engine
    flagged it), its rank for the contact sheet (lowest: worst) and a function making its sheet row."""
    gt = images.read_image(files.gts[f])
    mapped = f in files.regions  # region accuracy only against region maps
    seg = None if mapped else engine_segmentation(line, plan.settings)  # (the baseline's too)
    ids = region_ids(images.read_rgba(files.regions[f])) if seg is None else seg.labels.copy()
    scored = None
    if f in files.unscored:  # pixels whose truth no engine paints: left out of every figure
        scored = images.read_rgba(files.unscored[f])[..., :3].max(axis=-1) < 128
        ids[~scored] = 0
    keys = files.keys
    k = min(keys, key=lambda k: (abs(k - f), k)) if keys else None
    if k is not None:
        base = flow_warp_baseline(
            images.read_rgba(files.key_files[k]),
            images.read_rgba(plan.lineart_paths[k]),
            line,
            plan.settings,
            seg,
        )
    else:  # nothing to warp: the baseline is the bare line art
        base = images.over_white(line)
    row: dict[str, Any] = {"frame": f, "unresolved": done.get("unresolved", 0)}
    wrong_of: dict[str, np.ndarray] = {}
    counts = None
    off = off_lines(line)
    for who, img in (("engine", result), ("baseline", base)):
        # Without region maps the line art's regions stand in, at the looser CLIP_TOLERANCE (painted,
        # compressed frames): they decide which regions are wrong for the flags, not region accuracy.
        acc, wrong = region_accuracy(
            img, gt, ids, min_area=MIN_AREA, tolerance=TOLERANCE if mapped else CLIP_TOLERANCE
        )
        if mapped:
            row[f"{who}_region_acc"] = acc
            row[f"{who}_pixel_acc"] = pixel_accuracy(img, gt, ids > 0)
        row[f"{who}_psnr"] = psnr(img, gt, scored)
        row[f"{who}_psnr_off_lines"] = psnr(img, gt, off if scored is None else off & scored)
        if k is not None:
            row[f"{who}_background_regions"] = painted_background(
                img,
                gt,
                ids,
                files.backgrounds[k][0],
                max(MIN_AREA, int(BACKGROUND_MIN_AREA * ids.size)),
                truth_colors=files.backgrounds[k][1],
            )
        row[f"{who}_alpha_iou"] = alpha_iou(img, gt, scored)
        wrong_of[who] = wrong
        if who == "engine" and flags is not None:
            counts = flag_counts(wrong, unpack_flags(flags, ids.shape), ids, MIN_AREA)
            row.update({f"flag_{k}": v for k, v in counts.items()})
    if mapped and plan.palette is not None and "index" in plan.layers:
        index = _index_layer(plan, f)
        row["engine_palette_id_acc"] = palette_id_accuracy(
            index, plan.palette.index(images.output_array(gt, "on")), ids, MIN_AREA
        )
    who_first = "region_acc" if mapped else "psnr_off_lines"
    rank = (not mapped, row[f"engine_{who_first}"], row[f"engine_{who_first}"] - row[f"baseline_{who_first}"])

    def sheet() -> list[np.ndarray]:
        return [
            line,
            result,
            base,
            gt,
            error_image(result, gt, wrong_of["engine"]),
            error_image(base, gt, wrong_of["baseline"]),
        ]

    return row, counts, rank, sheet


def _write_sheet(
    report: CaseReport,
    case: Path,
    out: Path,
    plan: Any,
    frames: tuple[int, ...],
    files: _CaseFiles,
    worst: tuple[tuple, list] | None,
) -> None:
    """The case's contact sheet: its worst frame (line | engine | baseline | truth | errors), or with
    nothing to score against, the results of a few frames."""
    if worst is None and len(frames) > 1:
        # Nothing to score against: show the results (line | result) of a few frames instead.
        picks = [f for f in frames if f not in files.key_files][:6]
        rows = [
            [images.read_rgba(plan.lineart_paths[f]), images.read_image(plan.output.path(f))] for f in picks
        ]
        sheet = out / f"{case.name}_sheet.png"
        _write(sheet, contact_sheet(rows, [f"frame {f} (line | result)" for f in picks], tile=400))
        report.sheets.append(sheet)
    if worst is not None:
        sheet = out / f"{case.name}_sheet.png"
        caption = (
            f"{case.name}: worst frame, engine {'PSNR off the lines' if worst[0][0] else 'region acc'} "
            f"{worst[0][1]:.3f}  "
            "(line | engine | baseline | truth | engine errors | baseline errors)"
        )
        _write(sheet, contact_sheet([worst[1]], [caption], tile=320))
        report.sheets.append(sheet)


def _means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Case figures from the per-frame rows: engine and baseline means (PSNR capped at 99 dB), frames with
    region maps, frames painting a character in a background colour and their longest run."""
    figures: dict[str, Any] = {}
    for key in ("region_acc", "pixel_acc", "psnr", "psnr_off_lines", "alpha_iou"):
        for who in ("engine", "baseline"):
            values = [r[f"{who}_{key}"] for r in rows if f"{who}_{key}" in r]
            figures[f"{who}_{key}"] = float(np.mean(np.minimum(values, 99.0))) if values else float("nan")
    figures["mapped"] = sum("engine_region_acc" in r for r in rows)
    for who in ("engine", "baseline"):
        painted = [r["frame"] for r in rows if r.get(f"{who}_background_regions", 0)]
        figures[f"{who}_background_frames"] = len(painted)
        figures[f"{who}_background_run"] = longest_run(painted)
    return figures


def _background_colors(plan: Any, key: int, key_file: Path, regions: dict) -> tuple[np.ndarray, np.ndarray]:
    """The background colours (`evaluate_clip.background_colors`) and the colours the background owns
    (`evaluate_clip.background_owned`) of the keyframe `key_file` of frame `key` over its region map, else
    over the regions of its line art."""
    line = images.read_rgba(plan.lineart_paths[key])
    if key in regions:
        ids = region_ids(images.read_rgba(regions[key]))
    else:
        ids = engine_segmentation(line, plan.settings).labels
    image = images.read_rgba(key_file)
    return background_colors(image, ids), background_owned(image, ids)


def _index_layer(plan: Any, frame: int) -> np.ndarray:
    """The index layer (16-bit ids) the run wrote for `frame`."""
    from PIL import Image

    with Image.open(plan.layers["index"].path(frame)) as im:
        return np.asarray(im).astype(np.int64)


def _chunks_identical(case: Path, out: Path, plan: Any, overrides: dict | None, chunks: int) -> bool:
    frames = list(plan.exposures.frames)
    size = -(-len(frames) // chunks)
    parts = [frames[i : i + size] for i in range(0, len(frames), size)]
    for part in reversed(parts):
        run_case(case, out / "chunks", overrides, frames=f"{part[0]}-{part[-1]}")
    return all(
        (out / "chunks" / plan.output.path(f).name).read_bytes() == plan.output.path(f).read_bytes()
        for f in frames
    )


def _write(path: Path, image: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path.parent}: cannot create folder ({error.strerror})") from None
    images.write_image(path, image)


def evaluate_set(
    root: Path, out: Path, overrides: dict[str, Any] | None = None, chunks: int = 0
) -> list[CaseReport]:
    """Every case folder under `root` (those with a refs.yaml), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"{root}: evaluation set folder not found")
    cases = sorted(p for p in root.iterdir() if (p / "refs.yaml").is_file())
    if not cases:
        raise MissingInputError(
            f"{root}: no case folders (folders with a refs.yaml); make them with bench/make_eval_set.py"
        )
    return [evaluate_case(c, Path(out) / c.name, overrides, chunks) for c in cases]


def table(reports: list[CaseReport]) -> str:
    """A Markdown table of the case figures (engine vs baseline)."""
    head = (
        "| case | frames (scored) | region acc engine / baseline | pixel acc engine / baseline "
        "| PSNR dB engine / baseline | PSNR off the lines engine / baseline | alpha IoU engine / baseline "
        "| unresolved | repeats identical | chunks = whole | palette ids | wrong flagged / flags wrong "
        "| background-colour run engine / baseline |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in reports:
        f = r.figures
        same = f"{f['repeats'] - f['repeats_not_identical']}/{f['repeats']}" if f["repeats"] else "–"
        ids = f"{f['engine_palette_id_acc']:.3f}" if "engine_palette_id_acc" in f else "–"

        def pair(key: str, digits: int, f: dict = f) -> str:
            if not f["scored"] or np.isnan(f.get(f"engine_{key}", float("nan"))):
                return "–"
            return f"{f[f'engine_{key}']:.{digits}f} / {f[f'baseline_{key}']:.{digits}f}"

        rows.append(
            f"| {r.name}{' (shaded)' if r.shaded else ''} | {f['frames']} ({f['scored']}) "
            f"| {pair('region_acc', 3)} | {pair('pixel_acc', 3)} | {pair('psnr', 2)} "
            f"| {pair('psnr_off_lines', 2)} | {pair('alpha_iou', 3)} "
            f"| {f['unresolved']} | {same} | {_yes_no(f.get('chunks_identical'))} | {ids} "
            f"| {f.get('flags_wrong_flagged', 0)}/{f.get('flags_wrong', 0)} / "
            f"{f.get('flags_wrong_flagged', 0)}/{f.get('flags_flagged', 0)} "
            f"| {f.get('engine_background_run', 0)} / {f.get('baseline_background_run', 0)} |"
        )
    traced = [(r.name, r.figures["trace"]) for r in reports if "trace" in r.figures]
    total = flag_summary(reports)
    foot = (
        f"\nFlags (low-confidence or unresolved regions) over the set: recall {_share(total['recall'])} "
        f"({total['wrong_flagged']} of {total['wrong']} wrong regions flagged), precision "
        f"{_share(total['precision'])} ({total['wrong_flagged']} of {total['flagged']} flagged regions wrong)\n"
    )
    return head + "\n".join(rows) + "\n" + foot + ("\n" + trace_table(traced) if traced else "")


def flag_summary(reports: list[CaseReport]) -> dict[str, Any]:
    """Flag counts summed over cases, with recall (wrong regions flagged) and precision (flagged regions
    that are wrong); None where there is nothing to divide by."""
    total = {
        k: sum(int(r.figures.get(f"flags_{k}", 0)) for r in reports)
        for k in ("wrong", "wrong_flagged", "flagged")
    }
    return {
        **total,
        "recall": total["wrong_flagged"] / total["wrong"] if total["wrong"] else None,
        "precision": total["wrong_flagged"] / total["flagged"] if total["flagged"] else None,
    }


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _yes_no(value: bool | None) -> str:
    return "–" if value is None else "yes" if value else "**no**"
