"""The v2 modules on a tiny random model: model folders (diffusers' loaders, component by component),
every conditioning input mattering, the N-character region rule, precision."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from colorize.engines.diffusion.model_folder import random_model
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    folder = tmp_path_factory.mktemp("tiny") / "model"
    model = random_model("tiny", seed=1, with_clip=True)
    model.save(folder, source="test")
    return model, ColorizeDiffusionPipeline.load(folder), folder


def _conditions(model, n_chars: int = 2, batch: int = 2, size: tuple[int, int] = (64, 96)):
    g = torch.Generator().manual_seed(0)
    h, w = size[0] // 8, size[1] // 8
    refs = [torch.rand(1, 3, 80, 60, generator=g) * 2 - 1 for _ in range(n_chars + 1)]
    tokens = [model.reference_tokens(r) for r in refs]
    size_emb = model.size_embedding(1.25, 0.625)
    z = model.encode_image(refs[-1])
    z = torch.nn.functional.interpolate(z, (h, w), mode="bilinear")
    masks = torch.zeros(batch, n_chars, h, w)
    for k in range(n_chars):
        masks[:, k, :, k * w // n_chars : (k + 1) * w // n_chars] = 1
    return {
        "context": model.character_context(tokens[:-1], tokens[-1]).expand(batch, -1, -1),
        "sketch_hints": model.encode_sketch(torch.rand(batch, 3, *size, generator=g) * 2 - 1),
        "region_masks": masks,
        "background_features": model.background_features(z, tokens[-1], size_emb),
        "style_vectors": model.style_vectors(z, tokens[0], size_emb),
    }, torch.randn(batch, 4, h, w, generator=g)


def test_model_folder_round_trip(tiny):
    model, loaded, _ = tiny
    for name in ("unet", "sketch_encoder", "background_encoder", "style_encoder", "vae"):
        a, b = getattr(model, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert loaded.clip is not None and loaded.scheduler.config["timestep_spacing"] == "leading"
    with torch.inference_mode():
        cond, x = _conditions(model)
        cond_loaded, _ = _conditions(loaded)
        t = torch.tensor([900, 100])
        a, b = model.predict_v(x, t, **cond), loaded.predict_v(x, t, **cond_loaded)
        # Same weights; only float summation order may differ (memory layout of loaded tensors).
        assert float((a - b).norm() / a.norm()) < 1e-5


def test_each_component_loads_with_its_own_diffusers_class(tiny):
    """model_index.json names each component's class; `<Class>.from_pretrained(folder, subfolder=…)` loads it."""
    import importlib
    import json

    from diffusers import DPMSolverMultistepScheduler

    model, _, folder = tiny
    index = json.loads((folder / "model_index.json").read_text())
    for name in ("unet", "sketch_encoder", "background_encoder", "style_encoder", "vae"):
        library, class_name = index[name]
        cls = getattr(importlib.import_module(library), class_name)
        part = cls.from_pretrained(folder, subfolder=name, torch_dtype=torch.bfloat16)
        assert part.dtype == torch.bfloat16, name
        want = getattr(model, name).state_dict()
        assert all(torch.equal(v, want[k].to(torch.bfloat16)) for k, v in part.state_dict().items()), name
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    scheduler = DPMSolverMultistepScheduler.from_pretrained(folder, subfolder="scheduler")
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.steps_offset == 1
    assert index["clip"] == ["transformers", "CLIPVisionModelWithProjection"]


def test_every_feature_changes_the_prediction(tiny):
    _, model, _ = tiny
    with torch.inference_mode():
        cond, x = _conditions(model)
        t = torch.tensor([500, 500])
        full = model.predict_v(x, t, **cond)
        assert full.shape == x.shape and torch.isfinite(full).all()
        for drop in ("sketch_hints", "background_features", "style_vectors"):
            other = model.predict_v(x, t, **{k: v for k, v in cond.items() if k != drop})
            assert not torch.allclose(other, full), drop


def test_region_rule_for_overlaps():
    from colorize.engines.diffusion.attention import assign_regions

    masks = torch.tensor([[[0.0, 0.0], [0.9, 0.2], [0.3, 0.6], [0.5, 0.5], [0.04, 0.01]]])  # (1, 5, N=2)
    assert assign_regions(masks, 0.05).tolist() == [[0, 1, 2, 1, 0]]


def test_precision_as_the_official_app(tiny):
    """UNet and encoders in bf16, VAE and CLIP in float32; the prediction stays close to float32's."""
    _, model, folder = tiny
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    half = ColorizeDiffusionPipeline.load(folder, dtype=torch.bfloat16, full_precision_dtype=torch.float32)
    assert {half.unet.dtype, half.sketch_encoder.dtype, half.style_encoder.dtype} == {torch.bfloat16}
    assert half.vae.dtype == torch.float32 and half.clip.dtype == torch.float32
    with torch.inference_mode():
        cond, x = _conditions(model)
        ref = model.predict_v(x, torch.tensor([300, 300]), **cond)
        got = half.predict_v(x, torch.tensor([300, 300]), **cond)
        assert half.encode_image(torch.zeros(1, 3, 64, 64)).dtype == torch.float32
    assert got.dtype == x.dtype
    assert float((got - ref).norm() / ref.norm()) < 0.1


def test_old_layout_loads_and_a_folder_never_brings_code(tiny, tmp_path):
    """A folder written before the pipeline (`_class_name` ColorizeDiffusionModel, keys in its order) loads
    as it is; an entry naming another class, or a Python file in the folder, is one ModelError line and
    nothing of it is imported."""
    import json
    import shutil

    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline
    from colorize.errors import ModelError

    model, _, folder = tiny
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    index = json.loads((old / "model_index.json").read_text())
    first = [
        "_class_name",
        "unet",
        "sketch_encoder",
        "background_encoder",
        "style_encoder",
        "vae",
        "scheduler",
    ]
    legacy = {k: index[k] for k in first} | {k: v for k, v in index.items() if k not in first}
    legacy["_class_name"] = "ColorizeDiffusionModel"
    (old / "model_index.json").write_text(json.dumps(legacy, indent=2))
    loaded = ColorizeDiffusionPipeline.load(old)
    assert torch.equal(
        loaded.unet.state_dict()["conv_out.weight"], model.unet.state_dict()["conv_out.weight"]
    )

    (old / "model_index.json").write_text(json.dumps({**legacy, "unet": ["os", "system"]}))
    with pytest.raises(ModelError, match=r"unet is \['os', 'system'\], expected"):
        ColorizeDiffusionPipeline.load(old)
    (old / "model_index.json").write_text(json.dumps(legacy))
    (old / "unet" / "colorize.engines.diffusion.unet.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(ModelError, match=r"holds Python code \(unet/colorize.engines.diffusion.unet.py\)"):
        ColorizeDiffusionPipeline.load(old)
