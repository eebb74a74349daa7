"""Checkpoint converter and model folders, on a small official-layout checkpoint (no ../shared needed).

A broken checkpoint (missing key, extra key, wrong shape, truncated, not safetensors, another model) must
give exit != 0 and exactly one `colorize: error:` line naming the file and the key(s).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

# A small model in the official config format (the fixture's config.json layout).
SMALL_OFFICIAL = {
    "unet": {
        "in_channels": 4,
        "model_channels": 32,
        "attention_resolutions": [1, 2],
        "num_res_blocks": 1,
        "channel_mult": [1, 2],
        "num_head_channels": 32,
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": 32,
        "use_checkpoint": False,
        "out_channels": 4,
        "warp_module": True,
        "style_modulation": True,
        "lora_rank_fg": 2,
        "lora_rank_bg": 2,
    },
    "encoders": {
        "in_channels": 4,
        "model_channels": 32,
        "attention_resolutions": [1, 2],
        "num_res_blocks": 1,
        "channel_mult": [1, 2],
        "num_head_channels": 32,
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": 32,
        "use_checkpoint": False,
        "adm_in_channels": 32,
    },
    "control_encoder": {"in_ch": 3, "model_channels": 32, "ch_mults": [1, 2]},
    "vae": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 4, "embed_dim": 4},
    "settings": {
        "control_scale": 1.0,
        "mask_scale": 1.0,
        "fg_scale": 1.0,
        "bg_scale": 1.0,
        "merge_scale": 0.0,
        "mask_threshold": 0.05,
        "threshold": 0.05,
    },
}


def invoke(*args: str):
    from colorize_cli.app import app

    return CliRunner().invoke(app, ["model", *args])


def _schedule() -> dict[str, torch.Tensor]:
    """The official schedule buffers, written out here from the LDM formulas (not from the converter)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    var = betas * (1 - prev) / (1 - ac)
    out = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - ac).log(),
        "sqrt_recip_alphas_cumprod": ac.rsqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(),
        "posterior_variance": var,
        "posterior_log_variance_clipped": torch.log(torch.clamp(var, min=1e-20)),
        "posterior_mean_coef1": betas * prev.sqrt() / (1 - ac),
        "posterior_mean_coef2": (1 - prev) * (1 - betas).sqrt() / (1 - ac),
    }
    return {k: v.float() for k, v in out.items()}


SCHEDULE_KEYS = ("betas", "alphas_cumprod", "alphas_cumprod_prev")


def _weights(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    out = {}
    for name, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        out[name] = torch.randn(shape, generator=g) / max(1, (torch.Size(shape).numel() // shape[0])) ** 0.5
    schedule = _schedule()
    out.update({k: schedule[k] for k in SCHEDULE_KEYS})
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from colorize.engines.diffusion.config import ModelConfig
    from colorize.engines.diffusion.convert import official_key_shapes

    folder = tmp_path_factory.mktemp("small")
    (folder / "config.json").write_text(json.dumps(SMALL_OFFICIAL))
    config = ModelConfig.from_official(SMALL_OFFICIAL)
    tensors = _weights(official_key_shapes(config))
    save_file(tensors, str(folder / "ok.safetensors"))
    return folder, tensors


def _one_error_line(result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorize: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_fixture_key_layout_is_what_we_expect():
    keys = Path(__file__).resolve().parents[1].parent / "shared" / "parity" / "keys.json"
    if not keys.is_file():
        pytest.skip("needs ../shared/parity (not in this clone)")
    from colorize.engines.diffusion.config import load_official_config
    from colorize.engines.diffusion.convert import official_key_shapes

    config = load_official_config(keys.parent / "config.json")
    assert official_key_shapes(config) == json.loads(keys.read_text())


def test_convert_info_and_round_trip(small, tmp_path):
    from colorize.engines.diffusion.convert import official_key_map
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    folder, tensors = small
    out = tmp_path / "model"
    result = invoke(
        "convert", str(folder / "ok.safetensors"), "--out", str(out), "--config", str(folder / "config.json")
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # nothing ignored, nothing to note
    info = invoke("info", str(out))
    assert info.exit_code == 0, info.output
    assert "model_channels 32" in info.stdout and "spacing leading, steps_offset 1" in info.stdout

    model = ColorizeDiffusionPipeline.load(out, load_clip=False)
    # Every official tensor landed somewhere, unchanged.
    for official, (component, ours, _) in official_key_map(model).items():
        got = getattr(model, component).state_dict()[ours]
        assert torch.equal(got.reshape(tensors[official].shape), tensors[official]), official
    # Writing over an existing model folder is refused.
    again = invoke(
        "convert", str(folder / "ok.safetensors"), "--out", str(out), "--config", str(folder / "config.json")
    )
    _one_error_line(again, str(out))


def test_the_official_extras_convert_with_one_note(small, tmp_path):
    """Derived schedule buffers are checked and dropped; the EMA copy and the CLIP tower are ignored."""
    folder, tensors = small
    extras = {**tensors, **_schedule(), "model_ema.decay": torch.tensor(0.9999)}
    extras["cond_stage_model.model.visual.proj"] = torch.ones(4, 4)
    path = tmp_path / "full.safetensors"
    save_file(extras, str(path))
    config = str(folder / "config.json")
    result = invoke("convert", str(path), "--out", str(tmp_path / "m"), "--config", config)
    assert result.exit_code == 0, result.output
    notes = result.stderr.splitlines()
    assert len(notes) == 1 and notes[0].startswith(f"note: {path}: ignored"), result.stderr
    assert "1 model_ema.* tensor" in notes[0] and "1 cond_stage_model.* tensor" in notes[0]

    # A derived buffer that does not follow from betas is an error naming it.
    extras["posterior_mean_coef2"] = extras["posterior_mean_coef2"] * 1.01
    save_file(extras, str(path))
    bad = invoke("convert", str(path), "--out", str(tmp_path / "m2"), "--config", config)
    _one_error_line(bad, str(path), "posterior_mean_coef2")


def test_the_full_size_official_key_set_converts_on_the_meta_device(shared):
    """Every key and shape of the released checkpoint (1 884 entries) maps onto ModelConfig.v2()."""
    from colorize.engines.diffusion.config import ModelConfig
    from colorize.engines.diffusion.convert import convert_state_dict
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    shapes = json.loads((shared / "parity" / "official_keys_full.json").read_text())
    assert len(shapes) == 1884
    schedule = _schedule()
    tensors = {k: schedule[k] if k in schedule else torch.empty(v, device="meta") for k, v in shapes.items()}
    state, betas, notes = convert_state_dict(tensors, ModelConfig.v2(), "full")
    assert betas is None and notes == []
    model = ColorizeDiffusionPipeline.from_state_dicts(ModelConfig.v2(), state)
    parts = [part for part in model.components.values() if isinstance(part, torch.nn.Module)]
    params = sum(p.numel() for part in parts for p in part.parameters())
    official = sum(torch.Size(v).numel() for k, v in shapes.items() if k not in schedule)
    assert params == official
    assert model.unet.config.context_dim == 1024 and model.unet.config.model_channels == 320


def test_torch_checkpoints_are_read_without_unpickling_code(small, tmp_path):
    folder, tensors = small
    config = str(folder / "config.json")
    # A Lightning checkpoint: the weights under state_dict, plain numbers around them (weights_only loads it).
    ckpt = tmp_path / "v2.ckpt"
    torch.save({"state_dict": tensors, "epoch": 3, "global_step": 1000}, ckpt)
    ok = invoke("convert", str(ckpt), "--out", str(tmp_path / "m"), "--config", config)
    assert ok.exit_code == 0, ok.output
    # One that needs a Python object to unpickle is refused, with the safe way out.
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tensors, "callback": Path("x")}, evil)
    refused = invoke("convert", str(evil), "--out", str(tmp_path / "m2"), "--config", config)
    _one_error_line(refused, str(evil), "never unpickles", "save_file")
    assert not (tmp_path / "m2").exists()


def _broken(small, tmp_path, edit) -> Path:
    _, tensors = small
    tensors = dict(tensors)
    edit(tensors)
    path = tmp_path / "broken.safetensors"
    save_file(tensors, str(path))
    return path


def _convert(small, tmp_path, path: Path):
    folder, _ = small
    return invoke(
        "convert", str(path), "--out", str(tmp_path / "out"), "--config", str(folder / "config.json")
    )


def test_missing_key(small, tmp_path):
    key = "model.diffusion_model.output_blocks.2.1.transformer_blocks.0.attn2.to_k.lora_up_bg.weight"
    path = _broken(small, tmp_path, lambda t: t.pop(key))
    _one_error_line(_convert(small, tmp_path, path), str(path), "1 missing", key)


def test_extra_key(small, tmp_path):
    path = _broken(
        small, tmp_path, lambda t: t.update({"model.diffusion_model.surprise.weight": torch.ones(2)})
    )
    _one_error_line(_convert(small, tmp_path, path), "1 unexpected", "model.diffusion_model.surprise.weight")


def test_wrong_shape(small, tmp_path):
    key = "bg_encoder.zero_layers.3.weight"
    path = _broken(small, tmp_path, lambda t: t.update({key: torch.ones(3, 3, 1, 1)}))
    _one_error_line(_convert(small, tmp_path, path), "wrong shape", key)


def test_truncated_file(small, tmp_path):
    folder, _ = small
    data = (folder / "ok.safetensors").read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    _one_error_line(_convert(small, tmp_path, path), str(path), "truncated")


def test_not_a_safetensors_file(small, tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("this is not a checkpoint\n" * 10)
    _one_error_line(_convert(small, tmp_path, path), str(path), "not a valid safetensors")


def test_other_model(small, tmp_path):
    path = tmp_path / "sd15.safetensors"
    save_file({"cond_stage_model.transformer.x.weight": torch.ones(2)}, str(path))
    _one_error_line(_convert(small, tmp_path, path), "not a ColorizeDiffusion checkpoint")


def test_a_folder_or_a_file_of_another_kind_is_named_as_such(small, tmp_path):
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    result = _convert(small, tmp_path, folder)
    _one_error_line(result, f"{folder}: a folder, not a checkpoint file", "use it as --model")
    assert result.exit_code == 66
    notes = tmp_path / "refs.yaml"
    notes.write_text("version: 1\n")
    _one_error_line(_convert(small, tmp_path, notes), f"{notes}: not a checkpoint (neither safetensors nor")


def test_missing_checkpoint(small, tmp_path):
    result = _convert(small, tmp_path, tmp_path / "nowhere.safetensors")
    _one_error_line(result, "not found")
    assert result.exit_code == 66


def test_broken_model_folder(tmp_path):
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline
    from colorize.errors import ModelError

    result = invoke("init-random", str(tmp_path / "m"), "--size", "tiny", "--no-clip")
    assert result.exit_code == 0, result.output
    weights = tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="unet"):
        ColorizeDiffusionPipeline.load(tmp_path / "m")
    _one_error_line(invoke("info", str(tmp_path / "m")), "unet")
    _one_error_line(invoke("info", str(tmp_path / "nothing")), "not found")
    _one_error_line(invoke("info", str(weights)), "a file, not a model folder", "colorize model convert")


def test_model_info_checks_every_weight_file(tmp_path):
    from fake_engines import fake_model_folder

    folder = fake_model_folder(tmp_path / "m")
    clip = folder / "clip" / "model.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    clip.write_bytes(len(header).to_bytes(8, "little") + header + bytes(10))  # 6 bytes short
    _one_error_line(invoke("info", str(folder)), f"{clip}: truncated (", "the header says")
