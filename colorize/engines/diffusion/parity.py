"""Parity check against a fixture of official outputs (format: see `../shared/parity/README.md`).

The fixture gives the official config (`config.json`), the checkpoint key shapes (`keys.json`), a weight
generator (`make_weights.py`), inputs and expected outputs. We regenerate the weights with the fixture's
own script, convert them with the real converter, run every case and compare each expected tensor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from colorize.errors import MissingInputError, ModelError

from .config import ModelConfig, load_official_config
from .convert import convert_checkpoint, official_key_shapes

TOLERANCE = 1e-4
FIXTURE_FILES = ("config.json", "keys.json", "make_weights.py", "inputs.safetensors", "expected.safetensors")


@dataclass
class ParityRow:
    name: str
    shape: tuple[int, ...]
    rel_error: float | None  # None: no case produced this tensor

    @property
    def ok(self) -> bool:
        return self.rel_error is not None and self.rel_error <= TOLERANCE


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in float64."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if out.shape != ref.shape:
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def check_fixture(folder: Path) -> None:
    missing = [f for f in FIXTURE_FILES if not (folder / f).is_file()]
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: parity fixture folder not found")
    if missing:
        raise MissingInputError(f"{folder}: not a parity fixture, missing {', '.join(missing)}")


def make_weights(folder: Path, dest: Path, seed: int) -> None:
    """Run the fixture's own generator: `python make_weights.py keys.json OUT SEED`."""
    cmd = [sys.executable, str(folder / "make_weights.py"), str(folder / "keys.json"), str(dest), str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not dest.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"{folder / 'make_weights.py'}: failed (exit {done.returncode}): {tail[0]}")


def run_cases(model, inputs: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Every tensor the fixture README describes, computed with our modules."""
    s = config.settings
    out: dict[str, torch.Tensor] = {}
    x, t = inputs["x"], inputs["t"]
    b = x.shape[0]
    ref, bg_tokens = inputs["ref_tokens"], inputs["bg_tokens"]
    size = inputs["size_emb"]

    hints = model.encode_sketch(inputs["sketch"])
    out.update({f"control.{i}": h for i, h in enumerate(hints)})
    hs_bg = model.background_features(inputs["z_bg"], ref, size)
    out.update({f"hs_bg.{i}": h for i, h in enumerate(hs_bg)})
    style = model.style_vectors(inputs["z_ref"], ref, size)
    out.update({f"style.{i}": v for i, v in enumerate(style)})

    context = ref.expand(b, -1, -1)
    out["out.plain"] = model.predict_v(x, t, context=context, sketch_hints=hints, settings=s)
    out["out.style"] = model.predict_v(
        x, t, context=context, sketch_hints=hints, style_vectors=style, settings=s
    )
    out["out.v2"] = model.predict_v(
        x,
        t,
        context=model.character_context([ref], bg_tokens).expand(b, -1, -1),
        sketch_hints=hints,
        region_masks=inputs["smask"],
        background_features=hs_bg,
        style_vectors=style,
        settings=s,
    )
    mean = model.vae.encode(inputs["vae_image"]).latent_dist.mean
    out["vae.mean"] = mean
    out["vae.decoded"] = model.vae.decode(mean).sample
    return out


def run_parity(folder: str | Path, log: Callable[[str], None] = lambda _: None) -> list[ParityRow]:
    """Build, convert and run a fixture; one row per expected tensor (plus the size-embedding input check)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    check_fixture(folder)
    config = load_official_config(folder / "config.json")
    raw = json.loads((folder / "config.json").read_text())
    keys = json.loads((folder / "keys.json").read_text())
    ours = official_key_shapes(config)
    if {k: list(v) for k, v in keys.items()} != ours:
        diff = sorted(set(keys) ^ set(ours)) or [k for k in keys if list(keys[k]) != ours.get(k)]
        raise ModelError(
            f"{folder / 'keys.json'}: does not match the model built from config.json ({diff[:3]} ...)"
        )
    with tempfile.TemporaryDirectory(prefix="colorize-parity-") as tmp:
        weights = Path(tmp) / "weights.safetensors"
        log(f"generating weights with {folder / 'make_weights.py'} (seed {raw.get('weights_seed', 0)})")
        make_weights(folder, weights, int(raw.get("weights_seed", 0)))
        log("converting with the checkpoint converter")
        model = convert_checkpoint(weights, config, dtype=torch.float32)
    inputs = load_file(str(folder / "inputs.safetensors"))
    expected = load_file(str(folder / "expected.safetensors"))
    log("running the cases")
    with torch.inference_mode():
        got = run_cases(model, inputs, config)
        size = model.size_embedding(inputs["rh_rw"][0], inputs["rh_rw"][1]) if "rh_rw" in inputs else None
    rows = [
        ParityRow(name, tuple(ref.shape), relative_error(got[name], ref) if name in got else None)
        for name, ref in sorted(expected.items(), key=lambda kv: _natural(kv[0]))
    ]
    if size is not None and "size_emb" in inputs:
        rows.append(
            ParityRow(
                "(input) size_emb", tuple(inputs["size_emb"].shape), relative_error(size, inputs["size_emb"])
            )
        )
    return rows


def _natural(name: str) -> tuple:
    head, _, tail = name.rpartition(".")
    return (head, int(tail)) if tail.isdigit() else (name, -1)
