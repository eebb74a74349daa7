"""Colour-trace lines on laughing_girl: the issue #17 figures.

    python bench/bench_trace.py [--realdata ../shared/realdata] [--out /tmp/bench_trace] [--code ROOT]

Colours the four laughing_girl frames with the flat engine (default settings, the real runner) from its
finished frame 0 as the keyframe, then prints, from `colorize.evaluate_trace` (figures measured from the
line art and the output alone):
- frame 0 against the finished frame: share of equal pixels, of equal trace pixels (and of all pencil
  pixels, marks included);
- every frame: pencil pixels left in their pencil colour, and the share of shadow and of highlight trace
  pixels on their role's side (the darker / lighter of the two colours their stroke separates).
`--code ROOT` runs another checkout's engine (e.g. /work/main, to compare), with this checkout's figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realdata", type=Path, default=HERE.parent / "shared" / "realdata")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_trace"))
    ap.add_argument("--code", type=Path, default=HERE, help="checkout whose engine runs (default: this one)")
    args = ap.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    spec = importlib.util.spec_from_file_location("evaluate_trace", HERE / "colorize" / "evaluate_trace.py")
    assert spec is not None and spec.loader is not None
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)

    from colorize import images
    from colorize.evaluate import run_case
    from colorize.evaluate_cases import write_case

    girl = args.realdata / "laughing_girl"
    if not girl.is_dir():
        sys.exit(f"{girl}: not found (the real data lives in ../shared/realdata)")
    lines = [images.read_rgba(girl / "line" / f"{i:04d}.png") for i in range(4)]
    gt = images.read_rgba(girl / "gt" / "0000.png")
    case = write_case(args.out / "case", lines, {0: gt}, {0: gt}, {}, "laughing_girl trace lines")
    run_case(case, args.out / "run")
    outs = [images.read_rgba(args.out / "run" / f"f.{i + 1:04d}.png") for i in range(4)]
    m = figures.trace_match(lines[0], outs[0], gt)
    print(f"engine: {args.code}")
    print(
        f"frame 0 vs finished: pixels equal {100 * m['pixels_equal']:.3f} %, trace pixels equal "
        f"{100 * m['trace_equal']:.2f} % of {m['trace_pixels']}, pencil pixels equal "
        f"{100 * m['pencil_equal']:.2f} % of {m['pencil_pixels']}"
    )
    for i, (line, out) in enumerate(zip(lines, outs, strict=True)):
        f = figures.trace_figures(line, out)
        print(
            f"frame {i}: trace pixels {f['trace_pixels']} in pencil colour {f['trace_kept']}; pencil pixels "
            f"{f['pencil_pixels']} in pencil colour {f['pencil_kept']} (marks: {f['marks']}); shadow on its side {100 * f['shadow_side']:.2f} % of "
            f"{f['shadow_pixels']}, highlight {100 * f['highlight_side']:.2f} % of {f['highlight_pixels']}"
        )


if __name__ == "__main__":
    main()
