"""Keys + flat against diffusion on every frame, with a tiny random model on CPU (the mechanics, not colours).

    python bench/bench_keys.py EVALSET_DIR [--cases syn_move_rotate,lg_pingpong] [--model DIR]
    python bench/bench_keys.py samples/shot001 --single

Per case (a shot folder of `python bench/make_eval_set.py`), through the real CLI:
  keys      the keys chosen (frames, drawings, reasons) and the time of `colorize keys`
  flat      `colorize shot --engine flat` from those keys: time, unresolved regions
  new       frames with a colour off the lines that no key of their span has (0 expected)
  repeats   frames whose line art repeats an earlier frame's with byte-identical pixels
  chunks    the flat pass in two --frames chunks (last first) gives the same pixels as the whole
  diffusion `colorize shot --engine diffusion --temporal none` on every frame: time; ratio = (keys + flat) /
            diffusion
The diffusion settings are the tests' small ones (resolution 128, 2 steps, batch 1): the ratio shows how
many frames diffusion paints, not a GPU's speed at full size.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from colorize import images
from colorize.regions.segment import line_layers, segment_ink
from colorize.shot import find_manifest, plan_shot

FAST = {"batch": 1, "diffusion": {"steps": 2, "resolution": 128}}


def colorize(*args: str) -> float:
    exe = Path(sys.executable).with_name("colorize")
    start = time.perf_counter()
    subprocess.run([str(exe), *args, "--progress", "none", "--quiet"], check=True)
    return time.perf_counter() - start


def clean_colors(image: np.ndarray, lineart: np.ndarray) -> set[tuple[int, ...]]:
    ink, _, _ = line_layers(lineart)
    seg = segment_ink(ink, 2, 12, 0.4)
    off = (seg.labels > 0) & (ink == 0)
    return set(map(tuple, np.unique(images.over_white(image)[off].reshape(-1, 3), axis=0)))


def run_case(src: Path, model: Path, work: Path) -> dict:
    shot = work / src.name
    shutil.copytree(src, shot, ignore=shutil.ignore_patterns("gt", "regions", "keys", "color", "key*"))
    manifest = yaml.safe_load((shot / "refs.yaml").read_text())
    if not manifest.get("characters") and not (manifest.get("background") or {}).get("reference"):
        # An evaluation case has keyframes, no references: its first keyframe stands in for the colour
        # model sheet (with a random model the colours mean nothing anyway).
        first = sorted((src / manifest["keyframes"]).parent.glob("*"))[0]
        (shot / "refs").mkdir(exist_ok=True)
        shutil.copyfile(first, shot / "refs" / f"model{first.suffix}")
        manifest["characters"] = {"model": {"reference": f"refs/model{first.suffix}"}}
    manifest.pop("keyframes", None)
    manifest.update(FAST)
    (shot / "refs.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    t_keys = colorize("keys", str(shot), "--model", str(model), "--write-manifest")
    t_flat = colorize("shot", str(shot), "--engine", "flat", "--out", str(work / "flat"))
    plan = plan_shot(find_manifest(shot, None), out_dir=work / "flat")
    keys = sorted(plan.keyframe_paths)
    line = {f: images.read_rgba(plan.lineart_paths[f]) for f in plan.frames}
    allowed = {k: clean_colors(images.read_rgba(plan.keyframe_paths[k]), line[k]) for k in keys}
    new = 0
    seen: dict[str, np.ndarray] = {}
    repeats = same = 0
    for f in plan.frames:
        out = images.read_image(plan.output.path(f))
        span = [k for k in plan.dependencies[f] if k in allowed]
        if clean_colors(out, line[f]) - set().union(*(allowed[k] for k in span)):
            new += 1
        digest = hashlib.sha1(line[f].tobytes()).hexdigest()
        if digest in seen:
            repeats += 1
            same += int(np.array_equal(seen[digest], out))
        else:
            seen[digest] = out
    frames = list(plan.frames)
    half = len(frames) // 2
    chunks = work / "chunks"
    for part in (frames[half:], frames[:half]):
        rng = f"{part[0]}-{part[-1]}"
        colorize("shot", str(shot), "--engine", "flat", "--out", str(chunks), "--frames", rng)
    chunked = all(
        np.array_equal(
            images.read_image(plan.output.path(f)), images.read_image(chunks / plan.output.path(f).name)
        )
        for f in frames
    )
    t_diff = colorize(
        "shot",
        str(shot),
        "--engine",
        "diffusion",
        "--temporal",
        "none",
        "--model",
        str(model),
        "--out",
        str(work / "diffusion"),
    )
    return {
        "case": src.name,
        "frames": len(frames),
        "drawings": len(seen),
        "keys": keys,
        "new": new,
        "repeats": f"{same}/{repeats}",
        "chunks": chunked,
        "keys_s": t_keys,
        "flat_s": t_flat,
        "diffusion_s": t_diff,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "folder", type=Path, help="an evaluation set (make_eval_set.py), or one shot with --single"
    )
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--single", action="store_true", help="FOLDER is one shot folder")
    ap.add_argument("--model", type=Path, help="a model folder (default: a tiny random one, made here)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_keys_") as tmp:
        model = args.model or Path(tmp) / "tiny"
        if args.model is None:
            colorize("model", "init-random", str(model), "--size", "tiny")
        cases = (
            [args.folder]
            if args.single
            else sorted(p for p in args.folder.iterdir() if (p / "refs.yaml").is_file())
        )
        wanted = set(filter(None, args.cases.split(",")))
        print(
            "| case | frames | drawings | keys | new colours | repeats identical | chunks = whole | keys + flat s | diffusion s | ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for case in cases:
            if wanted and case.name not in wanted:
                continue
            try:
                r = run_case(case, model, Path(tmp) / case.name)
            except subprocess.CalledProcessError as error:
                print(
                    f"| {case.name} | failed: {' '.join(error.cmd[1:3])} exited {error.returncode} |",
                    flush=True,
                )
                continue
            both = r["keys_s"] + r["flat_s"]
            print(
                f"| {r['case']} | {r['frames']} | {r['drawings']} | {len(r['keys'])} ({','.join(map(str, r['keys']))}) "
                f"| {r['new']} | {r['repeats']} | {'yes' if r['chunks'] else 'NO'} | {both:.1f} | "
                f"{r['diffusion_s']:.1f} | {both / r['diffusion_s']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
