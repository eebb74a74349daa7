"""Drawings and their keys: does a colored keyframe show the drawing of the frame it is named by?

A keyframe saved under the wrong frame number is an everyday slip, and the wrong paint then spreads to
its neighbours. A finished frame's colour boundaries (and its kept main lines) lie on its drawing's lines,
so the check compares, on a thumbnail, the keyframe's colour edges with the line art's ink: the F-measure
of edge pixels near ink (precision) and ink pixels near an edge (recall), each within two thumbnail pixels.
The right drawing scores about 0.93-0.99 (the bundled sample, the real frames in shared/realdata); a drawing
a few frames away scores 0.55-0.85, an unrelated one about 0.25.

A keyframe that scores below `MATCHES` on its own drawing is a mismatch when another drawing of the shot
scores at least `MARGIN` more (it names that frame), or when it scores below `UNRELATED` (no drawing of
the shot is near it).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from colorize import images
from colorize.errors import ColorizeError, InputDataError
from colorize.regions.segment import ink_u8

if TYPE_CHECKING:
    from colorize.shot import ShotPlan

THUMBNAIL = 384  # long side of the compared images (never enlarged)
MATCHES = 0.85  # a keyframe at least this alike its drawing matches it
MARGIN = 0.1  # another drawing this much more alike is the one the keyframe shows
UNRELATED = 0.5  # below this the keyframe shows no drawing near its own
SEARCH = 48  # drawings on each side of the keyframe's own compared when it does not match
_EDGE = 24  # colour step (0-255, any channel) between neighbouring pixels that makes an edge
_INK = 80  # ink strength (0-255) of a line pixel
_NEAR = np.ones((5, 5), np.uint8)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = THUMBNAIL / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def line_mask(lineart: np.ndarray) -> np.ndarray:
    """The line art's ink (main and colour-trace lines) on the thumbnail, as bool."""
    return _thumbnail(images.to_uint8(ink_u8(lineart))) > _INK


def colour_edges(keyframe: np.ndarray) -> np.ndarray:
    """Where the keyframe's colour changes between neighbouring pixels (composited over white), on the
    thumbnail, as bool."""
    rgb = images.to_uint8(images.over_white(keyframe) if keyframe.shape[2] == 4 else keyframe)
    small = _thumbnail(np.ascontiguousarray(rgb[..., :3])).astype(np.int16)
    dx = np.abs(np.diff(small, axis=1)).max(axis=-1) > _EDGE
    dy = np.abs(np.diff(small, axis=0)).max(axis=-1) > _EDGE
    edges = np.zeros(small.shape[:2], bool)
    edges[:, :-1] |= dx
    edges[:, 1:] |= dx
    edges[:-1] |= dy
    edges[1:] |= dy
    return edges


def alike(edges: np.ndarray, lines: np.ndarray) -> float:
    """0-1: how well a keyframe's colour edges and a drawing's lines coincide (F-measure)."""
    if edges.shape != lines.shape or not edges.any() or not lines.any():
        return 0.0
    near_lines = cv2.dilate(lines.view(np.uint8), _NEAR) > 0
    near_edges = cv2.dilate(edges.view(np.uint8), _NEAR) > 0
    precision = np.count_nonzero(edges & near_lines) / np.count_nonzero(edges)
    recall = np.count_nonzero(lines & near_edges) / np.count_nonzero(lines)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


class LineMasks:
    """Drawings' line masks (`line_mask`) by drawing number, each line art read once while it is near the
    keyframes being checked (the last 2·SEARCH+1 are kept: thumbnails, a few MB)."""

    def __init__(self, load_lineart: Callable[[int], np.ndarray]):
        self.load = load_lineart
        self._masks: OrderedDict[int, np.ndarray] = OrderedDict()

    def read(self, drawing: int) -> np.ndarray:
        """The drawing's line art (full size, for a check that needs it), its mask kept."""
        line = self.load(drawing)
        self._keep(drawing, line_mask(line))
        return line

    def __call__(self, drawing: int) -> np.ndarray:
        mask = self._masks.get(drawing)
        if mask is None:
            return self._keep(drawing, line_mask(self.load(drawing)))
        self._masks.move_to_end(drawing)
        return mask

    def _keep(self, drawing: int, mask: np.ndarray) -> np.ndarray:
        self._masks[drawing] = mask
        self._masks.move_to_end(drawing)
        while len(self._masks) > 2 * SEARCH + 1:
            self._masks.popitem(last=False)
        return mask


def matching_drawing(
    keyframe: np.ndarray, drawing: int, drawings: tuple[int, ...], load_lineart: Callable[[int], np.ndarray]
) -> tuple[float, int | None, float]:
    """(how alike the keyframe is to `drawing`, the drawing it shows instead or None, how alike that one
    is). Other drawings are looked at only when the keyframe does not match its own, nearest first."""
    return _matching(colour_edges(keyframe), drawing, drawings, lambda d: line_mask(load_lineart(d)))


def _matching(
    edges: np.ndarray, drawing: int, drawings: Sequence[int], lines: Callable[[int], np.ndarray]
) -> tuple[float, int | None, float]:
    """`matching_drawing` of a keyframe's colour edges, with the drawings' line masks from `lines`."""
    own = alike(edges, lines(drawing))
    if own >= MATCHES:
        return own, None, own
    best, best_score = None, own
    for d in _nearest(drawings, drawing):
        score = alike(edges, lines(d))
        if score > best_score:
            best, best_score = d, score
    if best is not None and best_score >= own + MARGIN:
        return own, best, best_score
    return own, None, own


def _nearest(drawings: Sequence[int], drawing: int) -> Iterator[int]:
    """The SEARCH drawings on each side of `drawing` in the (sorted) sequence, nearest first, the earlier
    one first at the same distance."""
    i = bisect.bisect_left(drawings, drawing)
    if i == len(drawings) or drawings[i] != drawing:
        i = list(drawings).index(drawing)  # (not sorted: found the slow way)
    for step in range(1, SEARCH + 1):
        if i - step >= 0:
            yield drawings[i - step]
        if i + step < len(drawings):
            yield drawings[i + step]


def check_keyframe(
    plan: ShotPlan,
    drawing: int,
    keyframe: np.ndarray,
    lines: Callable[[int], np.ndarray],
    problems: list[ColorizeError],
) -> None:
    """The keyframe of `drawing` (read) must show the drawing of the frame it is named by: a mismatch is one
    problem naming the frame whose drawing it shows, if any. `lines`: drawing -> line mask (`LineMasks`)."""
    path = plan.keyframe_paths[drawing]
    try:
        own, other, score = _matching(colour_edges(keyframe), drawing, plan.frames, lines)
    except ColorizeError:
        return  # (a bad line-art file: reported where it is read)
    timing = plan.exposures
    d = drawing
    f = plan.keyframe_frames.get(d, d)
    which = f"frame {f}" if timing.kind == "strict" else f"frame {f} (drawing {d})"
    if other is not None:
        g = timing.first_frame(other)
        shows = f"frame {g}" if timing.kind == "strict" else f"frame {g} (drawing {other})"
        problems.append(
            InputDataError(
                f"{path}: keyframe {f} does not show the drawing of {which} (line work {own:.2f} alike); "
                f"it matches {shows} ({score:.2f}): saved under the wrong frame number?"
            )
        )
    elif own < UNRELATED:
        problems.append(
            InputDataError(
                f"{path}: keyframe {f} does not show the drawing of {which} (line work {own:.2f} alike, "
                f"{UNRELATED} at least expected) nor any drawing near it"
            )
        )
