"""Diffusion-engine speed on a GPU: the measurement behind issue 12, reproducible on any CUDA machine.

    python bench/bench_gpu.py                       # full-size random model, 1080p shot, 768, 20 steps
    python bench/bench_gpu.py --model /models/random-full --frames 64 --batches 4,8 --log gpu.jsonl
    python bench/bench_gpu.py --size tiny --device cpu --frames 4 --width 192 --height 108 \\
        --resolution 64 --steps 1 --batches 1,2 --unet-calls 2     # CPU smoke test (seconds)

What it does, all in one process (see bench/README.md for running it on an offline GPU machine):

1. a random-weight model folder (`colorize model init-random DIR --size full`: the released v2 sizes, so
   the compute of real weights; made once under --work, or --model DIR), loaded once;
2. a shot of --frames frames at --width × --height (the sample's line art, masks and keyframe enlarged;
   two characters with masks, a background reference, a keyframe at the first frame);
3. for each temporal mode × --batch: the real stream (`colorize.runner.run_shot`: reader threads with the
   engine's preprocessing, the engine, writer threads, PNG files) with the default settings otherwise
   (resolution 768, 20 dpmpp steps, reference guidance: 2 branches, warp anchors every 8, strength 0.6);
   the engine is built on the loaded model, so the time is the shot's (reference encoding, CUDA-graph
   capture included), not the model load. Prints frames/s end to end, the model-time floor (frames/s if
   only the engine's UNet batches ran: sketch encoder, VAE encode, denoising loop, VAE decode), the UNet
   batches and their padding, and the peak GPU memory of the run;
4. per batch size, one UNet call of the shot's shape (batch × guidance branches), measured through the
   engine's own batch function (the pipeline's `__call__`, nothing assembled here): a run of 1 step and one
   of 1 + --unet-calls steps, the difference per step is one UNet call (and a scheduler step). ms eager
   (median of 3), ms replayed as a CUDA graph, whether the two runs' latents are bitwise equal, FLOPs per
   call (`torch.utils.flop_counter`, 2 steps minus 1), TFLOP/s, and ms per call under each attention
   backend;
5. with CUDA: the warp run at the largest batch again with `diffusion.cuda_graph: true`, and whether its
   frames' pixels equal the eager run's (the condition for making CUDA graphs the default); with
   --offload also a run with `diffusion.offload: true` (frames/s, peak memory, same pixels).

Every measurement also goes to --log as a JSON line; the short table is printed last.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "shot001"
WORKER = (sys.executable, "-c", "from colorize_cli.app import main; main()")


def make_model(folder: Path, size: str) -> Path:
    """A random-weight model folder made by the real CLI (skipped when the folder already holds one)."""
    if (folder / "model_index.json").is_file():
        return folder
    subprocess.run([*WORKER, "model", "init-random", str(folder), "--size", size], check=True)
    return folder


def make_shot(folder: Path, frames: int, width: int, height: int) -> Path:
    """The sample shot's drawings, masks and keyframe resized to width × height, cycled to `frames`."""
    shot = folder / f"shot-{width}x{height}-{frames}"
    if shot.is_dir():
        return shot
    for sub in ("lineart", "masks/hero", "masks/cat", "keys"):
        (shot / sub).mkdir(parents=True)
    shutil.copytree(SAMPLE / "refs", shot / "refs")
    sources = sorted((SAMPLE / "lineart").glob("*.png"))

    def resized(path: Path, interpolation: int) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return cv2.resize(image, (width, height), interpolation=interpolation)

    for i in range(frames):
        src = sources[i % len(sources)]
        name = f"sh001.{1001 + i:04d}.png"
        cv2.imwrite(str(shot / "lineart" / name), resized(src, cv2.INTER_LINEAR))
        for c in ("hero", "cat"):
            cv2.imwrite(
                str(shot / "masks" / c / name), resized(SAMPLE / "masks" / c / src.name, cv2.INTER_NEAREST)
            )
    key = sorted((SAMPLE / "keys").glob("*.png"))[0]
    cv2.imwrite(str(shot / "keys" / key.name), resized(key, cv2.INTER_CUBIC))
    (shot / "refs.yaml").write_text((SAMPLE / "refs.yaml").read_text())
    return shot


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        import torch

        from colorize.engines.diffusion.engine import choose_device
        from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

        self.args, self.work, self.torch = args, work, torch
        self.model_dir = (
            Path(args.model) if args.model else make_model(work / f"model-{args.size}", args.size)
        )
        self.shot = make_shot(work, args.frames, args.width, args.height)
        self.device, dtype, full = choose_device(args.device, "auto")
        self.cuda = self.device.type == "cuda"
        self.log_file = open(args.log, "a") if args.log else None  # noqa: SIM115 (closed in main)
        start = time.perf_counter()
        self._reset_peak()
        self.model = ColorizeDiffusionPipeline.load(
            self.model_dir, device=self.device, dtype=dtype, full_precision_dtype=full
        )
        self.log(
            "load",
            seconds=round(time.perf_counter() - start, 2),
            peak_gib=self._peak(),
            device=str(self.device),
            card=torch.cuda.get_device_name(self.device) if self.cuda else "cpu",
            torch=torch.__version__,
        )

    def log(self, what: str, **fields: Any) -> dict[str, Any]:
        record = {"what": what, **fields}
        if self.log_file:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()
        print(json.dumps(record), file=sys.stderr)
        return record

    def _reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def _peak(self) -> float | None:
        return round(self.torch.cuda.max_memory_allocated() / 2**30, 2) if self.cuda else None

    def plan(self, temporal: str, batch: int, out: Path, **diffusion: Any):
        from colorize.shot import plan_shot
        from colorize.validate import validate_plan

        a = self.args
        overrides = {
            "engine": "diffusion",
            "model": str(self.model_dir),
            "batch": batch,
            "temporal": temporal,
            "diffusion": {"resolution": a.resolution, "steps": a.steps, "device": a.device, **diffusion},
        }
        plan = plan_shot(self.shot / "refs.yaml", out_dir=out, overrides=overrides)
        return plan, validate_plan(plan, deep=False)

    def run(self, temporal: str, batch: int, **diffusion: Any) -> dict[str, Any]:
        """One run of the real stream; frames/s, model-time floor, peak memory, the output folder."""
        from colorize.engines.diffusion.engine import DiffusionEngine
        from colorize.events import Events
        from colorize.runner import run_shot

        tag = "-".join([temporal, f"b{batch}", *(k for k, v in diffusion.items() if v)])
        out = self.work / f"out-{tag}"
        shutil.rmtree(out, ignore_errors=True)
        plan, size = self.plan(temporal, batch, out, **diffusion)
        if diffusion.get("offload"):  # its own model, in CPU memory: the shared one leaves the GPU for good
            self.model.to("cpu")
            gc.collect()
            if self.cuda:
                self.torch.cuda.empty_cache()
        engine = DiffusionEngine(plan.settings, model=None if diffusion.get("offload") else self.model)
        inside = {"seconds": 0.0}
        denoise = engine._denoise

        def timed(*a: Any, **k: Any) -> Any:
            begin = time.perf_counter()
            try:
                return denoise(*a, **k)  # ends with the copy back: the device is done
            finally:
                inside["seconds"] += time.perf_counter() - begin

        engine._denoise = timed
        gc.collect()
        self._reset_peak()
        begin = time.perf_counter()
        summary = run_shot(plan, engine, Events(), size=size, overwrite=True)
        wall = time.perf_counter() - begin
        frames = len(plan.selected)
        record = self.log(
            "run",
            temporal=temporal,
            batch=batch,
            **diffusion,
            frames=frames,
            done=summary.done,
            exit_code=int(summary.exit_code),
            seconds=round(wall, 3),
            fps=round(summary.done / wall, 3),
            floor_fps=round(summary.done / max(inside["seconds"], 1e-9), 3),
            unet_batches=engine.counts["unet_batches"],
            padding=engine.counts["padding"],
            peak_gib=self._peak(),
            notes=list(engine.notes),
        )
        record["out"] = out
        del engine
        return record

    def unet(self, batch: int) -> dict[str, Any]:
        """One UNet call of the shot's shape at `batch` through the pipeline's batch function: eager, CUDA graph, FLOPs,
        attention backends (see the module docstring)."""
        torch = self.torch
        from torch.utils.flop_counter import FlopCounterMode

        from colorize.engines.diffusion.engine import DiffusionEngine
        from colorize.engines.diffusion.pipeline import ATTENTION_BACKENDS
        from colorize.engines.diffusion.sampling import branches
        from colorize.runner import shot_context

        plan, size = self.plan("none", batch, self.work / "out-unet")
        engine = DiffusionEngine(plan.settings, model=self.model)
        engine.prepare(shot_context(plan, size))
        _, cache = engine._require_cache()
        m, o = self.model, plan.settings.diffusion
        width = batch * len(branches(o.ref_scale, o.sketch_scale))
        regions = torch.zeros(batch, len(plan.characters), *cache.latent)
        regions[:, 0, : cache.latent[0] // 2] = 1.0
        generator = torch.Generator().manual_seed(0)
        frames = {
            "sketch": torch.zeros(batch, *cache.geometry.padded),
            "noise": torch.randn(batch, m.unet.config["in_channels"], *cache.latent, generator=generator),
            "region_masks": regions,
        }
        calls = self.args.unet_calls

        def run(steps: int, **options: Any) -> Any:
            return m(
                cache.conditioning,
                **frames,
                steps=steps,
                ref_scale=o.ref_scale,
                sketch_scale=o.sketch_scale,
                batch_size=batch,
                **options,
            )

        def per_call_ms(**options: Any) -> float:
            """(ms of 1 + calls steps − ms of 1 step) / calls, medians of 3 runs each."""

            def ms(steps: int) -> float:
                times = []
                for _ in range(3):
                    if self.cuda:
                        torch.cuda.synchronize()
                    begin = time.perf_counter()
                    run(steps, **options).latents.cpu()
                    times.append((time.perf_counter() - begin) * 1000)
                return statistics.median(times)

            run(1, **options)  # warm-up (a CUDA graph is captured here)
            return round((ms(1 + calls) - ms(1)) / calls, 2)

        eager_ms = per_call_ms()
        counted = []
        for steps in (1, 2):
            with FlopCounterMode(display=False) as counter:
                run(steps)
            counted.append(counter.get_total_flops())
        flops = counted[1] - counted[0]
        graph_ms, same = None, None
        if self.cuda:
            graph_ms = per_call_ms(cuda_graph=True)
            same = bool(torch.equal(run(2, cuda_graph=True).latents, run(2).latents))
        backends = {}
        if self.cuda:
            for name in (*ATTENTION_BACKENDS[:2], "CUDNN_ATTENTION", "MATH"):
                try:
                    backends[name.lower()] = per_call_ms(attention=(name,))
                except (RuntimeError, AttributeError) as error:
                    backends[name.lower()] = f"unavailable ({str(error).splitlines()[0][:60]})"
        engine.close()
        return self.log(
            "unet",
            batch=batch,
            call_batch=width,
            eager_ms=eager_ms,
            graph_ms=graph_ms,
            graph_equals_eager=same,
            tflop_per_call=round(flops / 1e12, 4),
            eager_tflops=round(flops / 1e12 / (max(eager_ms, 1e-6) / 1000), 2),
            graph_tflops=round(flops / 1e12 / (graph_ms / 1000), 2) if graph_ms else None,
            backends_ms=backends,
        )


def same_pixels(a: Path, b: Path) -> bool:
    """Whether two output folders hold frames of the same pixels (their records differ with the settings)."""
    from colorize.images import read_rgba

    names = sorted(p.name for p in a.glob("*.png"))
    return names == sorted(p.name for p in b.glob("*.png")) and all(
        np.array_equal(read_rgba(a / n), read_rgba(b / n)) for n in names
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="full", choices=["tiny", "full"], help="random model size")
    parser.add_argument("--model", help="an existing model folder (instead of making one)")
    parser.add_argument(
        "--work", help="folder for the model, the shot and the outputs (default: a temp folder)"
    )
    parser.add_argument("--frames", type=int, default=64, help="shot length (64 fills --batch 8 warp chains)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--resolution", type=int, default=768)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--temporals", default="none,warp")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--unet-calls", type=int, default=10, help="timed UNet calls per measurement")
    parser.add_argument(
        "--offload", action="store_true", help="also run warp at the largest batch with offload"
    )
    parser.add_argument("--log", help="append every measurement to this JSON-lines file")
    args = parser.parse_args(argv)

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="colorize-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    batches = [int(b) for b in args.batches.split(",")]
    temporals = args.temporals.split(",")
    try:
        runs = [bench.run(t, b) for t in temporals for b in batches]
        unets = [bench.unet(b) for b in batches]
        checks = []
        largest = max(batches)
        eager = next((r for r in runs if r["temporal"] == temporals[-1] and r["batch"] == largest), None)
        variants = [{"cuda_graph": True}] if bench.cuda else []
        if args.offload:
            variants.append({"offload": True})
        for variant in variants:
            r = bench.run(temporals[-1], largest, **variant)
            same = same_pixels(eager["out"], r["out"]) if eager else None
            checks.append(bench.log("same_pixels", **variant, equal=same))
            runs.append(r)
    finally:
        if bench.log_file:
            bench.log_file.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    card = "cpu" if not bench.cuda else bench.torch.cuda.get_device_name(bench.device)
    print(
        f"\n{card}, {args.size} random model, {args.frames} frames {args.width}x{args.height}, "
        f"resolution {args.resolution}, {args.steps} steps"
    )
    print(
        f"{'temporal':>8} {'batch':>5} {'variant':>10} {'frames/s':>9} {'floor':>7} {'UNet batches':>12} {'pad':>4} {'peak GiB':>8}"
    )
    for r in runs:
        variant = "graph" if r.get("cuda_graph") else "offload" if r.get("offload") else "eager"
        print(
            f"{r['temporal']:>8} {r['batch']:>5} {variant:>10} {r['fps']:>9.2f} {r['floor_fps']:>7.2f} "
            f"{r['unet_batches']:>12} {r['padding']:>4} {r['peak_gib'] if r['peak_gib'] is not None else '-':>8}"
        )
    print(
        f"{'batch':>5} {'UNet ms eager':>13} {'graph':>7} {'equal':>5} {'TFLOP/call':>10} {'TFLOP/s':>8}  attention backends (ms)"
    )
    for u in unets:
        print(
            f"{u['batch']:>5} {u['eager_ms']:>13} {u['graph_ms'] or '-':>7} {str(u['graph_equals_eager']):>5} "
            f"{u['tflop_per_call']:>10} {u['eager_tflops']:>8}  {u['backends_ms'] or '-'}"
        )
    for c in checks:
        print(
            f"same pixels as eager with {', '.join(k for k, v in c.items() if v is True and k != 'equal')}: {c['equal']}"
        )
    return runs + unets + checks


if __name__ == "__main__":
    main()
