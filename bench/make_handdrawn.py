"""Build evaluation cases from public clips of hand-drawn animation (colour frames) in a local copy.

    python bench/make_handdrawn.py SRC OUT [--clips lvcd_1,op_luffy] [--min-frames 40]

SRC is a local copy of the clips (never committed, never downloaded by this script); a missing file is
reported with the repository, path and commit to get it from. Each clip becomes a case folder for
`colorize eval set OUT` (see `colorize.evaluate`):

- truth (`gt/`): the colour frames as they are (RGB, the lines included);
- line art (`line/`): extracted from each colour frame by `extract_lines` (below): black on white;
- keyframe (`keys/`): the first frame's colours, the only one;
- no region maps: the clips have none, so the case is scored off the lines (PSNR off the lines, the
  background-colour check), not by region accuracy.

A clip is one shot: frames are cut at scene changes (mean absolute difference of consecutive frames over
CUT, 0-255 grey levels); a clip is its source's first shot of at least --min-frames frames (op_luffy: the
second). Holds: a frame whose colours differ from the previous frame's by less than HOLD everywhere (the largest 7×7 mean of the absolute grey difference: codec noise
stays under ~12, the smallest drawn change seen, a mouth flap, reaches 60+) is the same drawing
re-encoded by the video codec; it is written as an exact repeat of the previous frame (line art and
truth), as a drawing held on twos or threes is in production.

Line extraction (`extract_lines`, parameters DARK, THICK, CANNY): a pixel is line when it is
  - dark (grey < DARK) and part of a dark stroke thinner than THICK px (the dark mask minus its
    morphological opening with a THICK×THICK ellipse): drawn lines;
  - on the 1-px rim of a dark area wider than THICK (black hair, dark clothes): the outline a drawing has;
  - or a colour edge (Canny, thresholds CANNY, on each of R, G and B of the frame blurred 3×3): boundaries
    between paints, where the colour-trace lines of the drawing vanished in the finished frame (Canny on
    grey alone misses edges between paints of one brightness: a red shirt against dark wood).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from colorize.evaluate_cases import write_case  # noqa: E402

DARK = 90  # grey level under which a pixel can be a drawn line
THICK = 5  # dark strokes thinner than this (px) are lines; wider dark areas get a 1-px outline
CANNY = (80, 160)  # colour-edge thresholds (OpenCV Canny on each channel of the 3×3-blurred frame)
CUT = 30.0  # mean absolute grey difference of consecutive frames that marks a scene change
HOLD = 20.0  # largest 7×7 mean absolute grey difference under which a frame repeats the previous one


@dataclass(frozen=True)
class Clip:
    name: str
    repo: str
    commit: str
    path: str  # in the repository; `{i}` for numbered frames
    local: str  # under SRC
    count: int  # numbered frames 0..count-1 (0: a video file)
    licence: str
    description: str


CLIPS = [
    Clip(
        "lvcd_1",
        "luckyhzt/LVCD",
        "eb7eced5483b6e3a5ec70a007636533c921c6cf2",
        "inference/test/sample_1/{i}.png",
        "lvcd/sample_1/{i}.png",
        75,
        "none stated",
        "LVCD test clip 1: a girl sits down at a fence and drinks (feature-film hand-drawn 2D, 576x320)",
    ),
    Clip(
        "lvcd_2",
        "luckyhzt/LVCD",
        "eb7eced5483b6e3a5ec70a007636533c921c6cf2",
        "inference/test/sample_2/{i}.png",
        "lvcd/sample_2/{i}.png",
        85,
        "none stated",
        "LVCD test clip 2: a hand on a girl's head, she turns and hides her face (hand-drawn 2D, 576x320)",
    ),
    Clip(
        "op_coby",
        "xinntao/Real-ESRGAN",
        "a4abfb2979a7bbff3f69f58f58ae324608821e27",
        "inputs/video/onepiece_demo.mp4",
        "realesrgan/onepiece_demo.mp4",
        0,
        "BSD-3-Clause (repository)",
        "One Piece TV demo, shot 1: Luffy and Coby talking, small moves (hand-drawn TV, 640x480, subtitles)",
    ),
    Clip(
        "op_luffy",
        "xinntao/Real-ESRGAN",
        "a4abfb2979a7bbff3f69f58f58ae324608821e27",
        "inputs/video/onepiece_demo.mp4",
        "realesrgan/onepiece_demo.mp4",
        0,
        "BSD-3-Clause (repository)",
        "One Piece TV demo, shot 2: Luffy turns and laughs, on threes (hand-drawn TV, 640x480, subtitles)",
    ),
]


def extract_lines(rgb: np.ndarray, dark: int = DARK, thick: int = THICK, canny=CANNY) -> np.ndarray:
    """H×W bool line mask of a finished colour frame (RGB uint8); see the module docstring."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dark_mask = (grey < dark).astype(np.uint8)
    wide = cv2.morphologyEx(
        dark_mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thick, thick))
    )
    rim = wide & ~cv2.erode(wide, np.ones((3, 3), np.uint8))
    lines = (dark_mask & ~wide) | rim
    if canny:  # per channel: a red shirt against dark wood has an edge in red, hardly in grey
        blurred = cv2.GaussianBlur(rgb, (3, 3), 0)
        for channel in range(3):
            lines |= (cv2.Canny(np.ascontiguousarray(blurred[..., channel]), *canny) > 0).astype(np.uint8)
    return lines.astype(bool)


def read_clip(src: Path, clip: Clip) -> list[np.ndarray]:
    """The clip's RGB frames from the local copy; exits with where to get them when missing."""
    paths = [src / clip.local.format(i=i) for i in range(clip.count)] if clip.count else [src / clip.local]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        where = clip.path.format(i=f"0..{clip.count - 1}") if clip.count else clip.path
        sys.exit(
            f"{missing[0]}: not found ({len(missing)} file(s) missing). Get {where} from "
            f"github.com/{clip.repo} at commit {clip.commit} (e.g. `git show {clip.commit}:PATH`) and put it "
            f"at {src / clip.local}"
        )
    if clip.count:
        return [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]
    video = cv2.VideoCapture(str(paths[0]))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    video.release()
    if not frames:
        sys.exit(f"{paths[0]}: OpenCV decoded no frame")
    return frames


def shots(frames: list[np.ndarray], cut: float = CUT) -> list[tuple[int, int]]:
    """[start, end) of each shot: cut where consecutive frames differ by more than `cut` on average."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.int16) for f in frames]
    cuts = [i for i in range(1, len(grey)) if np.abs(grey[i] - grey[i - 1]).mean() > cut]
    bounds = [0, *cuts, len(frames)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def with_holds(frames: list[np.ndarray], hold: float = HOLD) -> tuple[list[np.ndarray], int]:
    """Frames with codec re-encodings of the same drawing replaced by exact repeats; (frames, holds)."""
    out, holds = [frames[0]], 0
    for frame in frames[1:]:
        diff = np.abs(
            cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.int16)
            - cv2.cvtColor(out[-1], cv2.COLOR_RGB2GRAY).astype(np.int16)
        )
        if cv2.blur(diff.astype(np.float32), (7, 7)).max() < hold:
            out.append(out[-1])
            holds += 1
        else:
            out.append(frame)
    return out, holds


def build(src: Path, out: Path, clip: Clip, min_frames: int) -> str:
    frames = read_clip(src, clip)
    spans = [s for s in shots(frames) if s[1] - s[0] >= min_frames]
    if not spans:
        return f"{clip.name}: no shot of {min_frames}+ frames"
    # A video holds several shots: op_coby is the first long one, op_luffy the second.
    index = 1 if clip.name == "op_luffy" else 0
    if index >= len(spans):
        return f"{clip.name}: only {len(spans)} shot(s) of {min_frames}+ frames"
    start, end = spans[index]
    shot, holds = with_holds(frames[start:end])
    lines = [np.where(extract_lines(f), 0, 255).astype(np.uint8) for f in shot]
    lines = [np.dstack([m, m, m]) for m in lines]
    description = (
        f"{clip.description}; frames {start}-{end - 1} of github.com/{clip.repo} {clip.path} "
        f"@ {clip.commit[:10]}; line art extracted (dark {DARK}, thick {THICK}, canny {CANNY})"
    )
    write_case(out / clip.name, lines, {0: shot[0]}, dict(enumerate(shot)), {}, description)
    return f"{clip.name}: {len(shot)} frames ({start}-{end - 1}), {holds} holds -> {out / clip.name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="local copy of the clips (see CLIPS for the layout)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--clips", default=",".join(c.name for c in CLIPS))
    ap.add_argument("--min-frames", type=int, default=40)
    args = ap.parse_args()
    wanted = args.clips.split(",")
    unknown = sorted(set(wanted) - {c.name for c in CLIPS})
    if unknown:
        sys.exit(f"--clips: unknown clip(s) {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for clip in CLIPS:
        if clip.name in wanted:
            print(build(args.src, args.out, clip, args.min_frames), flush=True)


if __name__ == "__main__":
    main()
