"""Line gaps that open between consecutive drawings of a shot (`colorize check --gaps`).

A keyframe's colors show where its own line art leaks (`regions.leaks.leaky_regions`, checked always).
Between keyframes, a gap that opens in a drawing shows against the drawing before it: two areas a line
kept apart become one region while most of that line is still drawn (`regions.leaks.merged_regions`).
It matters when the two areas are painted differently — the flat engine would carry one color into both;
a stroke end that stops short inside one paint area (a hair strand) changes nothing. So the keyframe's
region colors are carried from drawing to drawing (each region takes the color of the region before where
most of its pixels land: a rough carry, enough to tell whether two neighbours differ), and only joins of
differently colored areas are reported; before the first keyframe (no colors yet) every join is.

Each drawing is segmented as the flat engine does (`flat.*` settings) and matched with the one before by
the engine's correspondence: this reads and segments every drawing shown (about a second a frame at
1080p), which is why it is asked for rather than done by every `check`.
"""

from __future__ import annotations

import numpy as np

from colorize import images
from colorize.engines.flat_state import decode_key
from colorize.flow import correspondence
from colorize.regions.leaks import carried, landing_pairs, merged_regions
from colorize.regions.segment import Segmentation, segment
from colorize.shot import ShotPlan

_MOST_PAIRS = 50_000_000  # (regions × regions before) above this: not compared (memory)


def gap_warnings(plan: ShotPlan) -> list[str]:
    """One line per drawing (where it is first shown after another) that joins two differently painted
    areas of the drawing shown before it through a gap: the largest such region and where the line is
    missing. In frame order; a drawing held or shown again after the same drawing is not looked at twice."""
    fs = plan.settings.flat
    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    # The drawing shown last: (frame, drawing, segmentation, region colors or None).
    before: tuple[int, int, Segmentation, np.ndarray | None] | None = None
    for frame in plan.selected:
        drawing = plan.drawing(frame)
        if drawing is None or (before is not None and before[1] == drawing):
            continue  # a blank frame, or the same drawing held
        path = plan.lineart_paths[drawing]
        seg = segment(images.read_rgba(path), fs.gap_close, fs.min_region, fs.line_threshold, fs.close_breaks)
        colors = _key_colors(plan, drawing, seg)
        if (
            before is not None
            and before[2].labels.shape == seg.labels.shape
            and (seg.count + 1) * (before[2].count + 1) <= _MOST_PAIRS
        ):
            prev_frame, prev_drawing, prev_seg, prev_colors = before
            pairs, src = landing_pairs(seg, prev_seg, correspondence(seg.ink, prev_seg.ink)[0].full())
            if colors is None and prev_colors is not None:
                colors = carried(pairs, prev_colors)
            merges = [
                m
                for m in merged_regions(seg, prev_seg, pairs, src)
                if prev_colors is None or prev_colors[m.between[0]] != prev_colors[m.between[1]]
            ]
            if merges and (prev_drawing, drawing) not in seen:
                seen.add((prev_drawing, drawing))
                m = merges[0]
                x, y = m.at
                more = f" (and {len(merges) - 1} more)" if len(merges) > 1 else ""
                out.append(
                    f"frame {frame} ({path.name}): a {m.area} px region joins two areas that frame "
                    f"{prev_frame} kept apart{' and paints differently' if prev_colors is not None else ''}, "
                    f"through a gap in the line between them near x={x} y={y}{more}: close it, "
                    f"raise flat.gap_close (now {fs.gap_close}) or set flat.close_breaks"
                )
        before = (frame, drawing, seg, colors)
    return out


def _key_colors(plan: ShotPlan, drawing: int, seg: Segmentation) -> np.ndarray | None:
    """The keyframe's color per region when `drawing` has a keyframe (as the flat engine reads it:
    `engines.flat_state.decode_key`), else None."""
    path = plan.keyframe_paths.get(drawing)
    if path is None:
        return None
    return decode_key(seg, images.read_rgba(path), plan.palette).colors
