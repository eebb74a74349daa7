"""CLIP reference tokens from an OpenCLIP ViT file or a transformers folder, against an independent
computation of OpenCLIP's visual tower written here from its documented architecture:

    x = conv1(image) -> patch tokens; prepend class_embedding; + positional_embedding; ln_pre
    each resblock: x += attn(ln_1(x)) (nn.MultiheadAttention: in_proj, out_proj); x += c_proj(gelu(c_fc(ln_2(x))))
    "full" output: ln_post on every token, @ proj; v2 keeps tokens 1.. (the local tokens)

with OpenAI mean/std normalisation of the [0, 1] image.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

WIDTH, LAYERS, PATCH, GRID, PROJ = 128, 2, 14, 3, 32  # 2 heads of 64 (OpenCLIP's head width)
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def openclip_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny OpenCLIP-layout state dict (visual tower + a few text-tower keys that must be ignored)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.1) -> torch.Tensor:
        return torch.randn(shape, generator=g) * scale

    w = WIDTH
    s = {
        "visual.class_embedding": r(w),
        "visual.positional_embedding": r(GRID * GRID + 1, w),
        "visual.conv1.weight": r(w, 3, PATCH, PATCH, scale=0.02),
        "visual.ln_pre.weight": 1 + r(w),
        "visual.ln_pre.bias": r(w),
        "visual.ln_post.weight": 1 + r(w),
        "visual.ln_post.bias": r(w),
        "visual.proj": r(w, PROJ),
        "token_embedding.weight": r(10, w),
        "text_projection": r(w, PROJ),
        "logit_scale": torch.tensor(4.6),
    }
    for i in range(LAYERS):
        p = f"visual.transformer.resblocks.{i}."
        s.update(
            {
                p + "ln_1.weight": 1 + r(w),
                p + "ln_1.bias": r(w),
                p + "attn.in_proj_weight": r(3 * w, w),
                p + "attn.in_proj_bias": r(3 * w),
                p + "attn.out_proj.weight": r(w, w),
                p + "attn.out_proj.bias": r(w),
                p + "ln_2.weight": 1 + r(w),
                p + "ln_2.bias": r(w),
                p + "mlp.c_fc.weight": r(4 * w, w),
                p + "mlp.c_fc.bias": r(4 * w),
                p + "mlp.c_proj.weight": r(w, 4 * w),
                p + "mlp.c_proj.bias": r(w),
            }
        )
    return s


def openclip_local_tokens(s: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's visual tower, "full" output without its first token, for a [-1, 1] image at its size."""
    v = {k[len("visual.") :]: t.double() for k, t in s.items() if k.startswith("visual.")}
    x = ((image.double() + 1) / 2 - MEAN.double()) / STD.double()
    x = F.conv2d(x, v["conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)  # (B, grid², width)
    cls = v["class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + v["positional_embedding"]
    x = F.layer_norm(x, (WIDTH,), v["ln_pre.weight"], v["ln_pre.bias"], eps=1e-5)
    heads = WIDTH // 64
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (WIDTH,), v[p + "ln_1.weight"], v[p + "ln_1.bias"], eps=1e-5).transpose(0, 1)
        attn, _ = F.multi_head_attention_forward(
            h, h, h, WIDTH, heads, v[p + "attn.in_proj_weight"], v[p + "attn.in_proj_bias"],
            None, None, False, 0.0, v[p + "attn.out_proj.weight"], v[p + "attn.out_proj.bias"],
            need_weights=False,
        )  # fmt: skip
        x = x + attn.transpose(0, 1)
        h = F.layer_norm(x, (WIDTH,), v[p + "ln_2.weight"], v[p + "ln_2.bias"], eps=1e-5)
        h = F.linear(
            F.gelu(F.linear(h, v[p + "mlp.c_fc.weight"], v[p + "mlp.c_fc.bias"])),
            v[p + "mlp.c_proj.weight"],
            v[p + "mlp.c_proj.bias"],
        )
        x = x + h
    x = F.layer_norm(x, (WIDTH,), v["ln_post.weight"], v["ln_post.bias"], eps=1e-5)
    return (x @ v["proj"])[:, 1:].float()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def openclip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openclip")
    state = openclip_state()
    save_file(state, str(folder / "open_clip_model.safetensors"))
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    return folder, state


@pytest.mark.parametrize("name", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_openclip_file_gives_the_openclip_tokens(openclip_files, tmp_path, name):
    from colorize.engines.diffusion.reference import clip_tokens, load_clip

    folder, state = openclip_files
    encoder = load_clip(folder / name)
    assert (encoder.config.image_size, encoder.config.projection_dim) == (GRID * PATCH, PROJ)
    assert encoder.config.num_attention_heads == 2
    image = torch.rand(2, 3, GRID * PATCH, GRID * PATCH, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        tokens = clip_tokens(encoder, image)
    assert tokens.shape == (2, GRID * GRID, PROJ)
    assert _rel(tokens, openclip_local_tokens(state, image)) < 1e-5

    # Saved as a transformers folder (what a model folder's clip/ holds) and loaded back: same tokens.
    encoder.save_pretrained(tmp_path / "clip")
    with torch.inference_mode():
        again = clip_tokens(load_clip(tmp_path / "clip"), image)
    assert torch.equal(again, tokens)
    # Any other size is resized to the model's square input first.
    with torch.inference_mode():
        assert clip_tokens(encoder, torch.zeros(1, 3, 70, 50)).shape == (1, GRID * GRID, PROJ)


def test_an_unknown_visual_key_is_named(openclip_files, tmp_path):
    from colorize.engines.diffusion.reference import load_clip
    from colorize.errors import ModelError

    _, state = openclip_files
    path = tmp_path / "odd.safetensors"
    save_file({**state, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(WIDTH)}, str(path))
    with pytest.raises(ModelError, match="visual.transformer.resblocks.0.ls_1.gamma"):
        load_clip(path)
    save_file({"token_embedding.weight": torch.ones(2, 2)}, str(path))
    with pytest.raises(ModelError, match="not an OpenCLIP model"):
        load_clip(path)


def test_convert_with_an_openclip_file(openclip_files, tmp_path):
    """`model convert … --clip FILE`: the folder's CLIP gives the OpenCLIP tokens; a wrong width is one line."""
    from test_diffusion_convert import SMALL_OFFICIAL, _weights, invoke

    from colorize.engines.diffusion.config import ModelConfig
    from colorize.engines.diffusion.convert import official_key_shapes
    from colorize.engines.diffusion.pipeline import ColorizeDiffusionPipeline

    folder, state = openclip_files
    (tmp_path / "config.json").write_text(json.dumps(SMALL_OFFICIAL))  # context_dim 32 = PROJ
    save_file(
        _weights(official_key_shapes(ModelConfig.from_official(SMALL_OFFICIAL))),
        str(tmp_path / "ck.safetensors"),
    )
    args = ["convert", str(tmp_path / "ck.safetensors"), "--config", str(tmp_path / "config.json")]
    result = invoke(
        *args, "--out", str(tmp_path / "m"), "--clip", str(folder / "open_clip_model.safetensors")
    )
    assert result.exit_code == 0, result.output
    model = ColorizeDiffusionPipeline.load(tmp_path / "m")
    image = torch.rand(1, 3, 60, 44, generator=torch.Generator().manual_seed(2)) * 2 - 1
    square = F.interpolate(image, (GRID * PATCH,) * 2, mode="bicubic", align_corners=True, antialias=True)
    with torch.inference_mode():
        assert _rel(model.reference_tokens(square), openclip_local_tokens(state, square)) < 1e-5

    wide = {k: v for k, v in state.items()}
    wide["visual.proj"] = torch.ones(WIDTH, 16)
    save_file(wide, str(tmp_path / "wide.safetensors"))
    bad = invoke(*args, "--out", str(tmp_path / "m2"), "--clip", str(tmp_path / "wide.safetensors"))
    assert bad.exit_code == 65 and bad.stderr.count("\n") == 1 and "projection_dim 16" in bad.stderr
    assert not (tmp_path / "m2").exists()
