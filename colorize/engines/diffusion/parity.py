"""Parity checks against fixtures of official outputs. Two kinds, told apart by their `config.json`:

* module fixture (`../shared/parity`, config.json has `unet`): single forward passes of every network
  module on the fixture's tiny model; every tensor must be within the tolerance.
* end-to-end fixture (`../shared/parity-e2e`, config.json has `sampling`): whole sampling runs of the
  official app from raw inputs (reference, its mask, sketch, sketch mask, start noise) to final latents
  and decoded images, on the module fixture's model. It runs what `colorize shot` runs: the engine's
  per-shot `conditioning.encode_references` and its batch function (the pipeline's `__call__`), which owns the
  whole sampling run. What the official run fixes from outside goes in through their documented
  arguments only: the fixture's fake CLIP as the token function, the fixture's start noise as `noise`.
  The model is configured as the official run's (its conditioning scales and scheduler fields). The
  final latents decide (within the fixture's tolerance); every other tensor is printed to find where a
  mismatch starts.

Every size, setting, threshold, step count, guidance and scheduler field comes from the fixture's
config.json and inputs. The weights are regenerated with the fixture's own script and converted with the
real converter.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from colorize.errors import MissingInputError, ModelError

from .conditioning import Mode, encode_references
from .config import ConditioningScales, ModelConfig, load_official_config
from .convert import convert_checkpoint, official_key_shapes
from .pipeline import ColorizeDiffusionPipeline
from .sampling import make_scheduler

TOLERANCE = 1e-4
MODEL_FILES = ("config.json", "keys.json", "make_weights.py")
DATA_FILES = ("inputs.safetensors", "expected.safetensors")


@dataclass
class ParityRow:
    name: str
    shape: tuple[int, ...]
    rel_error: float | None  # worst relative error (over steps for per-step tensors); None: not produced
    decisive: bool = True  # counts for the verdict (else printed to locate a mismatch)
    tolerance: float = TOLERANCE
    worst_step: int | None = None

    @property
    def ok(self) -> bool:
        return self.rel_error is not None and self.rel_error <= self.tolerance


@dataclass
class ParityReport:
    kind: str  # "module" or "end-to-end"
    rows: list[ParityRow]

    @property
    def failed(self) -> list[ParityRow]:
        return [r for r in self.rows if r.decisive and not r.ok]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in float64 (inf when the shapes differ)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if out.shape != ref.shape:
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def run_parity(folder: str | Path, log: Callable[[str], None] = lambda _: None) -> ParityReport:
    """Run a fixture of either kind; one row per expected tensor."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"{folder}: parity fixture folder not found")
    config = _read_json(folder / "config.json")
    if "sampling" in config:
        return _run_end_to_end(folder, config, log)
    if "unet" in config:
        return _run_modules(folder, config, log)
    raise ModelError(
        f"{folder / 'config.json'}: neither a module fixture (`unet`) nor an end-to-end one (`sampling`)"
    )


# ---- shared: the fixture's model ----------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingInputError(f"{path.parent}: not a parity fixture, missing {path.name}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from None


def _check_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [f for f in names if not (folder / f).is_file()]
    if missing:
        raise MissingInputError(f"{folder}: not a parity fixture, missing {', '.join(missing)}")


def _fixture_model(
    folder: Path, seed: int, log: Callable[[str], None]
) -> tuple[ColorizeDiffusionPipeline, ModelConfig, list[str]]:
    """The model of a module fixture: its weights from its own generator, through the real converter."""
    _check_files(folder, MODEL_FILES)
    key = (str(folder.resolve()), seed, *((folder / f).stat().st_mtime_ns for f in MODEL_FILES))
    if key not in _MODELS:
        _MODELS.clear()  # one fixture model at a time (a test session runs both kinds several times)
        _MODELS[key] = _build_fixture_model(folder, seed, log)
    else:
        log(f"reusing the model generated from {folder} (seed {seed})")
    return _MODELS[key]


_MODELS: dict[tuple, tuple[ColorizeDiffusionPipeline, ModelConfig, list[str]]] = {}


def _build_fixture_model(
    folder: Path, seed: int, log: Callable[[str], None]
) -> tuple[ColorizeDiffusionPipeline, ModelConfig, list[str]]:
    config = load_official_config(folder / "config.json")
    keys = json.loads((folder / "keys.json").read_text())
    ours = official_key_shapes(config)
    if {k: list(v) for k, v in keys.items()} != ours:
        diff = sorted(set(keys) ^ set(ours)) or [k for k in keys if list(keys[k]) != ours.get(k)]
        raise ModelError(
            f"{folder / 'keys.json'}: does not match the model built from config.json ({diff[:3]} ...)"
        )
    with tempfile.TemporaryDirectory(prefix="colorize-parity-") as tmp:
        weights = Path(tmp) / "weights.safetensors"
        log(f"generating weights with {folder / 'make_weights.py'} (seed {seed})")
        cmd = [
            sys.executable,
            str(folder / "make_weights.py"),
            str(folder / "keys.json"),
            str(weights),
            str(seed),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not weights.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"{folder / 'make_weights.py'}: failed (exit {done.returncode}): {tail[0]}")
        log("converting with the checkpoint converter")
        model, notes = convert_checkpoint(weights, config, dtype=torch.float32)
    for note in notes:
        log(note)
    return model, config, notes


def _load_tensors(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    _check_files(folder, DATA_FILES)
    return load_file(str(folder / "inputs.safetensors")), load_file(str(folder / "expected.safetensors"))


def _rows(
    expected: dict[str, torch.Tensor],
    got: dict[str, torch.Tensor],
    order: Callable[[str], Any],
    decisive: Callable[[str], bool],
    tolerance: float,
    per_step: Callable[[str], bool] = lambda _: False,
) -> list[ParityRow]:
    rows = []
    for name in sorted(expected, key=order):
        ref = expected[name]
        row = ParityRow(name, tuple(ref.shape), None, decisive(name), tolerance)
        if name in got:
            if per_step(name) and got[name].shape == ref.shape and ref.ndim > 1:
                errors = [relative_error(a, b) for a, b in zip(got[name], ref, strict=True)]
                row.rel_error = max(errors)
                row.worst_step = errors.index(row.rel_error)
            else:
                row.rel_error = relative_error(got[name], ref)
        rows.append(row)
    return rows


# ---- module fixture -------------------------------------------------------------------------------------


def _run_modules(folder: Path, raw: dict[str, Any], log: Callable[[str], None]) -> ParityReport:
    _check_files(folder, DATA_FILES)
    model, config, _ = _fixture_model(folder, int(raw.get("weights_seed", 0)), log)
    inputs, expected = _load_tensors(folder)
    log("running the module cases")
    with torch.inference_mode():
        got = _module_cases(model, inputs, config.scales)
        if "rh_rw" in inputs:
            got["(input) size_emb"] = model.size_embedding(inputs["rh_rw"][0], inputs["rh_rw"][1])
    if "rh_rw" in inputs and "size_emb" in inputs:
        expected = {**expected, "(input) size_emb": inputs["size_emb"]}
    rows = _rows(expected, got, _natural, lambda _: True, TOLERANCE)
    return ParityReport("module", rows)


def _module_cases(
    model: ColorizeDiffusionPipeline, inputs: dict[str, torch.Tensor], scales: ConditioningScales
) -> dict[str, torch.Tensor]:
    """Every tensor the module fixture's README describes, computed with our modules."""
    out: dict[str, torch.Tensor] = {}
    x, t = inputs["x"], inputs["t"]
    b = x.shape[0]
    ref, bg_tokens, size = inputs["ref_tokens"], inputs["bg_tokens"], inputs["size_emb"]
    hints = model.encode_sketch(inputs["sketch"])
    out.update({f"control.{i}": h for i, h in enumerate(hints)})
    hs_bg = model.background_features(inputs["z_bg"], ref, size)
    out.update({f"hs_bg.{i}": h for i, h in enumerate(hs_bg)})
    style = model.style_vectors(inputs["z_ref"], ref, size)
    out.update({f"style.{i}": v for i, v in enumerate(style)})
    context = ref.expand(b, -1, -1)
    out["out.plain"] = model.predict_v(x, t, context=context, sketch_hints=hints, scales=scales)
    out["out.style"] = model.predict_v(
        x, t, context=context, sketch_hints=hints, style_vectors=style, scales=scales
    )
    out["out.v2"] = model.predict_v(
        x,
        t,
        context=model.character_context([ref], bg_tokens).expand(b, -1, -1),
        sketch_hints=hints,
        region_masks=inputs["smask"],
        background_features=hs_bg,
        style_vectors=style,
        scales=scales,
    )
    mean = model.vae.encode(inputs["vae_image"]).latent_dist.mean
    out["vae.mean"] = mean
    out["vae.decoded"] = model.vae.decode(mean).sample
    return out


def _natural(name: str) -> tuple:
    head, _, tail = name.rpartition(".")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


# ---- end-to-end fixture ---------------------------------------------------------------------------------

# README order of the expected tensors (how the run goes, step by step).
E2E_ORDER = (
    "timesteps",
    "ref_tokens",
    "reference_bleached",
    "bg_tokens",
    "z_ref",
    "z_bg",
    "size_ratios",
    "size_emb",
    "style",
    "hs_bg",
    "control",
    "control_blank",
    "step0",
    "v",
    "latents",
    "final_latent",
    "image",
)


def _e2e_order(name: str) -> tuple:
    m = re.match(r"g(\d+)\.(.+)$", name)
    guidance, rest = (int(m[1]), m[2]) if m else (-1, name)
    stem, _, tail = rest.partition(".")
    rank = E2E_ORDER.index(stem) if stem in E2E_ORDER else len(E2E_ORDER)
    index = int(tail) if tail.isdigit() else 0
    return (guidance, rank, index, rest)


def fake_clip(spec: dict[str, Any], weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fixture's stand-in for CLIP: resize, cut into patches (channel, row, column), project.

    Returns the local tokens (the "full" output without its first token), as `reference_tokens` does.
    """
    size = tuple(spec["resize"])
    patch = int(spec["patch"])
    mode = spec.get("resize_mode", "bilinear")
    align = spec.get("align_corners", False) if mode in ("bilinear", "bicubic") else None

    def tokens(image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(
            image.float(), size, mode=mode, align_corners=align, antialias=spec.get("antialias", False)
        )
        b, c = x.shape[:2]
        patches = x.unfold(2, patch, patch).unfold(3, patch, patch).permute(0, 2, 3, 1, 4, 5)
        return patches.reshape(b, -1, c * patch * patch) @ weight

    return tokens


def _e2e_mode(settings: dict[str, Any], where: Path) -> Mode:
    """The engine mode of the official enhancement switches (only the combinations the engine has)."""
    style, background = settings.get("style_enhance", True), settings.get("bg_enhance", True)
    unsupported = []
    if settings.get("fg_enhance", False):
        unsupported.append("fg_enhance")
    if settings.get("reference_strength", 1.0) != 1.0:
        unsupported.append(f"reference_strength {settings['reference_strength']}")
    if settings.get("cond_aug", 0.0):
        unsupported.append(f"cond_aug {settings['cond_aug']}")
    if style != background:
        unsupported.append("style_enhance without bg_enhance (or the reverse)")
    if unsupported:
        raise ModelError(f"{where}: settings the engine does not have: {', '.join(unsupported)}")
    return "v2" if style else "plain"


def _run_end_to_end(folder: Path, raw: dict[str, Any], log: Callable[[str], None]) -> ParityReport:
    model_spec = raw["model"]
    module = _module_fixture(folder, str(model_spec.get("fixture", "")))
    log(f"end-to-end fixture; model from {module}")
    model, _, _ = _fixture_model(module, int(model_spec.get("weights_seed", 0)), log)
    inputs, expected = _load_tensors(folder)
    settings = raw["settings"]
    mode = _e2e_mode(settings, folder / "config.json")
    known = set(ConditioningScales.__dataclass_fields__)
    scales = ConditioningScales.from_dict({k: v for k, v in settings.items() if k in known}, "settings")
    sampling, scheduler_spec = raw["sampling"], raw["scheduler"]
    # The converted model's scheduler config with the fields the official config and code set.
    scheduler_config = {
        **model.scheduler.config,
        **scheduler_spec.get("dpm_yaml", {}),
        **scheduler_spec.get("set_in_code", {}),
    }
    sampler = {"diffuser_dpm": "dpmpp", "diffuser_ddim": "ddim"}.get(sampling["sampler"])
    if sampler is None:
        raise ModelError(
            f"{folder / 'config.json'}: sampler {sampling['sampler']!r} is not one the engine has"
        )
    ours = make_scheduler(sampler, model.scheduler.config).config
    differ = sorted(k for k, v in scheduler_spec.get("resolved", {}).items() if str(ours.get(k)) != str(v))
    if differ:  # the run below uses the fixture's fields; a converted folder would sample differently
        log(f"note: a converted model folder's scheduler differs from the fixture's in {', '.join(differ)}")
    tokens = fake_clip(model_spec["clip"], inputs["clip_w"])
    height, width = int(raw["height"]), int(raw["width"])
    got: dict[str, torch.Tensor] = {}
    log(f"running {len(sampling['guidance'])} sampling runs of {sampling['steps']} steps ({mode})")
    with torch.inference_mode(), _configured(model, scales, scheduler_config):
        conditioning = encode_references(
            model,
            tokens,
            [inputs["reference"]],
            bleach_mask=inputs["rmask"],
            latent_size=(height, width),
            mode=mode,
            bleach_threshold=float(settings["reference_mask_threshold"]),
        )
        got.update(conditioning.steps)
        got.update({f"style.{i}": v for i, v in enumerate(conditioning.style_vectors or [])})
        got.update({f"hs_bg.{i}": h for i, h in enumerate(conditioning.background_features or [])})
        got.update({f"control.{i}": h for i, h in enumerate(model.encode_sketch(inputs["sketch"]))})
        got.update({f"control_blank.{i}": h for i, h in enumerate(conditioning.blank_hints or [])})
        for guidance in sampling["guidance"]:
            g = guidance["name"]
            states: list[dict[str, Any]] = []
            result = model(
                conditioning,
                sketch=inputs["sketch"],
                noise=inputs["x0"],
                region_masks=inputs["smask"],
                sampler=sampler,
                steps=int(sampling["steps"]),
                ref_scale=float(guidance["reference"]),
                sketch_scale=float(guidance["sketch"]),
                callback=states.append,
            )
            got.update({f"{g}.step0.v.{name}": v for name, v in states[0]["branches"].items()})
            got["timesteps"] = torch.stack([s["t"] for s in states])  # what the run stepped through
            got[f"{g}.v"] = torch.stack([s["v"] for s in states])
            got[f"{g}.latents"] = torch.stack([s["x"] for s in states])
            got[f"{g}.final_latent"] = result.latents
            got[f"{g}.image"] = result.images
    tolerance = float(raw.get("tolerance", {}).get("final_latent_relative_error", TOLERANCE))
    rows = _rows(
        expected,
        got,
        _e2e_order,
        decisive=lambda name: name.endswith(".final_latent"),
        tolerance=tolerance,
        per_step=lambda name: re.match(r"g\d+\.(v|latents)$", name) is not None,
    )
    return ParityReport("end-to-end", rows)


@contextmanager
def _configured(
    model: ColorizeDiffusionPipeline, scales: ConditioningScales, scheduler_config: dict[str, Any]
) -> Iterator[None]:
    """The fixture model configured as the official run's (conditioning scales, scheduler fields); the
    cached model gets its own configuration back afterwards (the module fixture reuses it)."""
    from diffusers import DPMSolverMultistepScheduler

    saved = model.scales, model.scheduler
    model.scales = scales
    model.register_modules(scheduler=DPMSolverMultistepScheduler.from_config(scheduler_config))
    try:
        yield
    finally:
        model.scales = saved[0]
        model.register_modules(scheduler=saved[1])


def _module_fixture(folder: Path, named: str) -> Path:
    """The module fixture the end-to-end fixture's model comes from (`shared/parity`: a sibling folder)."""
    token = Path(named.split()[0]) if named.strip() else Path("parity")
    for candidate in (folder.parent / token.name, folder / token, folder.parent.parent / token):
        if all((candidate / f).is_file() for f in MODEL_FILES):
            return candidate
    raise MissingInputError(
        f"{folder}: the model fixture {named.split()[0] if named.strip() else 'parity'!r} "
        f"(config.json, keys.json, make_weights.py) is not beside it"
    )
