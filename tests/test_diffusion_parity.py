"""ColorizeDiffusion v2 port against the official outputs in ../shared/parity.

* `colorize model parity ../shared/parity` passes (every tensor within 1e-4);
* the N-character split with N = 1 is the official `out.v2`, and an extra character with an empty mask
  changes nothing;
* N = 2 with disjoint masks: changing character 2's reference changes each split attention layer's output
  only in character 2's region; the leak into the prediction (through self-attention and convolutions)
  is measured and printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PARITY = SHARED / "parity"


def _needs_fixture() -> Path:
    if not (PARITY / "expected.safetensors").is_file():
        pytest.skip("needs ../shared/parity (not in this clone)")
    return PARITY


def _cli_app():
    from colorize_cli import app as app_module

    if not any(group.name == "model" for group in app_module.app.registered_groups):
        app_module._mount()
    return app_module.app


@pytest.fixture(scope="module")
def fixture_model(tmp_path_factory):
    """The fixture's weights (generated once by its own script) converted by the real converter."""
    from safetensors.torch import load_file

    from colorize.engines.diffusion.config import load_official_config
    from colorize.engines.diffusion.convert import convert_checkpoint

    folder = _needs_fixture()
    config = load_official_config(folder / "config.json")
    import json

    seed = json.loads((folder / "config.json").read_text()).get("weights_seed", 0)
    weights = tmp_path_factory.mktemp("parity") / "weights.safetensors"
    subprocess.run(
        [sys.executable, str(folder / "make_weights.py"), str(folder / "keys.json"), str(weights), str(seed)],
        check=True,
    )
    model = convert_checkpoint(weights, config, dtype=torch.float32)
    weights.unlink()
    inputs = load_file(str(folder / "inputs.safetensors"))
    expected = load_file(str(folder / "expected.safetensors"))
    with torch.inference_mode():
        cond = {
            "hints": model.encode_sketch(inputs["sketch"]),
            "hs_bg": model.background_features(inputs["z_bg"], inputs["ref_tokens"], inputs["size_emb"]),
            "style": model.style_vectors(inputs["z_ref"], inputs["ref_tokens"], inputs["size_emb"]),
        }
    return model, config, inputs, expected, cond


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_parity_command_passes():
    folder = _needs_fixture()
    result = CliRunner().invoke(_cli_app(), ["model", "parity", str(folder)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in (
        "control.0",
        "control.4",
        "hs_bg.11",
        "style.11",
        "out.plain",
        "out.style",
        "out.v2",
        "vae.mean",
        "vae.decoded",
    ):
        assert any(line.startswith(name + " ") and line.endswith("ok") for line in lines), name
    assert "FAIL" not in result.stdout
    assert "parity ok" in result.stdout


def test_parity_command_on_a_missing_fixture(tmp_path):
    result = CliRunner().invoke(_cli_app(), ["model", "parity", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and "colorize: error:" in result.stderr


def _predict(model, config, inputs, cond, refs, masks, settings=None):
    b = inputs["x"].shape[0]
    context = model.character_context(refs, inputs["bg_tokens"]).expand(b, -1, -1)
    return model.predict_v(
        inputs["x"],
        inputs["t"],
        context=context,
        sketch_hints=cond["hints"],
        region_masks=masks,
        background_features=cond["hs_bg"],
        style_vectors=cond["style"],
        settings=settings or config.settings,
    )


def test_one_character_split_is_the_official_v2(fixture_model):
    model, config, inputs, expected, cond = fixture_model
    with torch.inference_mode():
        out = _predict(model, config, inputs, cond, [inputs["ref_tokens"]], inputs["smask"])
        assert rel(out, expected["out.v2"]) <= 1e-4
        # A second character whose mask is empty everywhere changes nothing.
        empty = torch.zeros_like(inputs["smask"])
        two = _predict(
            model,
            config,
            inputs,
            cond,
            [inputs["ref_tokens"], torch.randn_like(inputs["ref_tokens"])],
            torch.cat([inputs["smask"], empty], dim=1),
        )
        assert rel(two, expected["out.v2"]) <= 1e-4


def _disjoint_masks(b: int, h: int, w: int) -> torch.Tensor:
    """Character 1 on the left, character 2 on the right, background strip between."""
    masks = torch.zeros(b, 2, h, w)
    masks[:, 0, :, : w * 5 // 12] = 1.0
    masks[:, 1, :, w * 7 // 12 :] = 1.0
    return masks


def test_two_characters_change_only_their_own_region(fixture_model):
    from colorize.engines.diffusion.attention import assign_regions

    model, config, inputs, expected, cond = fixture_model
    b, _, h, w = inputs["x"].shape
    masks = _disjoint_masks(b, h, w)
    ref1 = inputs["ref_tokens"]
    ref2 = torch.roll(inputs["ref_tokens"], 3, dims=1) * 0.5 + 0.3
    ref2_changed = torch.randn(ref1.shape, generator=torch.Generator().manual_seed(7))

    # Record every split layer's inputs during the run with the first reference 2.
    calls = []
    hooks = []
    split_layers = [
        (name, m)
        for name, m in model.unet.named_modules()
        if name.endswith("attn2") and hasattr(m, "processor")
    ]
    for name, layer in split_layers:

        def hook(module, args, kwargs, output, name=name):
            calls.append((name, module, args[0], kwargs, output))

        hooks.append(layer.register_forward_hook(hook, with_kwargs=True))
    try:
        with torch.inference_mode():
            base = _predict(model, config, inputs, cond, [ref1, ref2], masks)
    finally:
        for handle in hooks:
            handle.remove()
    assert len(calls) == len(split_layers) == len(model.unet.attention_scale_factors)

    changed_context = model.character_context([ref1, ref2_changed], inputs["bg_tokens"]).expand(b, -1, -1)
    with torch.inference_mode():
        for name, module, hidden, kwargs, output in calls:
            region = assign_regions(kwargs["region_masks"], config.settings.mask_threshold)
            kw = {k: v for k, v in kwargs.items() if k != "encoder_hidden_states"}
            redo = module(hidden, encoder_hidden_states=changed_context, **kw)
            delta = (redo - output).abs().amax(dim=-1)  # (B, L)
            outside = delta[region != 2]
            assert torch.equal(outside, torch.zeros_like(outside)), (
                f"{name}: change leaked outside character 2"
            )
            if (region == 2).any():
                assert delta[region == 2].max() > 0, f"{name}: character 2's reference had no effect"

        # The whole prediction: character 2's reference reaches other regions only through self-attention
        # and convolutions (their receptive fields); measure it.
        changed = _predict(model, config, inputs, cond, [ref1, ref2_changed], masks)
    delta = (changed - base).double()
    inside = masks[:, 1:2].expand_as(delta) > 0.5
    char1 = masks[:, 0:1].expand_as(delta) > 0.5
    ratio_outside = float(delta[~inside].norm() / delta[inside].norm())
    ratio_char1 = float(delta[char1].norm() / delta[inside].norm())
    rms_inside = float(delta[inside].pow(2).mean().sqrt())
    rms_char1 = float(delta[char1].pow(2).mean().sqrt())
    print(
        f"\nN=2 leak: |Δ outside char 2| / |Δ inside| = {ratio_outside:.3f}; "
        f"into char 1: norm ratio {ratio_char1:.3f}, rms {rms_char1:.3e} vs {rms_inside:.3e} inside"
    )
    assert delta[inside].norm() > 0
