"""The per-shot functions of conditioning.py: bleaching, reference resizing, what each encoder reads, modes."""

from __future__ import annotations

import pytest
import torch

from colorize.engines.diffusion import conditioning


def test_bleach_whitens_where_the_mask_reaches_the_threshold():
    reference = torch.full((1, 3, 4, 4), -0.5)
    mask = torch.tensor([0.0, 0.49, 0.5, 0.9]).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = conditioning.bleach(reference, mask, 0.5)
    assert out[0, :, 0].tolist() == [[-0.5, -0.5, 1.0, 1.0]] * 3  # exactly 0.5 is bleached


def test_dilation_grows_the_mask_by_five_pixels():
    mask = torch.zeros(1, 1, 21, 21)
    mask[0, 0, 10, 10] = 0.7
    grown = conditioning.dilate_mask(mask)
    assert grown.shape == mask.shape
    assert grown[0, 0, 5:16, 5:16].eq(0.7).all() and grown.sum() == pytest.approx(0.7 * 121)


def test_reference_resize_is_bicubic_without_antialias_or_clamp():
    image = torch.zeros(1, 3, 8, 8)
    image[..., ::2, :] = 1.0  # stripes: bicubic overshoots, an antialiased resize would not
    out = conditioning.resize_reference(image, (12, 12))
    assert out.shape == (1, 3, 12, 12) and out.max() > 1.0


class _Recorder:
    """Stands in for the model: records what each encoder reads (by the token tensor's id)."""

    def __init__(self):
        self.calls: list[tuple[str, float]] = []

    def encode_image(self, image):
        return image[:, :1, :2, :2] * 0 + image.mean()

    def encode_sketch(self, sketch):
        self.calls.append(("sketch", float(sketch.mean())))
        return [sketch]

    def size_embedding(self, rh, rw):
        return torch.stack([rh, rw])[None]

    def background_features(self, z, tokens, emb):
        self.calls.append(("background", float(tokens.mean())))
        return [z]

    def style_vectors(self, z, tokens, emb):
        self.calls.append(("style", float(tokens.mean())))
        return [z * 0 + float(tokens.mean())]

    character_context = staticmethod(lambda refs, bg: torch.cat([*refs, bg], dim=1))


def _tokens(image):
    return image.mean().expand(1, 2, 3).clone()  # 2 tokens of width 3 carrying the image's mean


def test_v2_the_background_encoder_reads_the_references_tokens_when_it_bleaches():
    model = _Recorder()
    ref = torch.full((1, 3, 8, 8), -1.0)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1.0  # half the reference is the character: bleached to +1
    cond = conditioning.encode_references(model, _tokens, [ref], bleach_mask=mask, latent_size=(16, 16))
    assert ("background", -1.0) in model.calls  # the reference's tokens, not the bleached (mean 0)
    assert float(cond.steps["bg_tokens"].mean()) == 0.0 and cond.split
    assert ("sketch", -1.0) in model.calls and cond.blank_hints[0].shape == (1, 3, 16, 16)  # a blank sketch
    assert cond.context.shape == (1, 4, 3) and torch.equal(cond.zero_context, torch.zeros(1, 4, 3))

    model.calls.clear()
    background = torch.full((1, 3, 8, 8), 0.25)
    conditioning.encode_references(model, _tokens, [ref], background=background, latent_size=(16, 16))
    assert ("background", 0.25) in model.calls  # a background image: its own tokens


def test_style_is_averaged_over_characters_and_plain_mode_has_no_extras():
    model = _Recorder()
    refs = [torch.full((1, 3, 8, 8), v) for v in (-1.0, 0.5)]
    background = torch.zeros(1, 3, 8, 8)
    cond = conditioning.encode_references(model, _tokens, refs, background=background, latent_size=(8, 8))
    assert float(cond.style_vectors[0].mean()) == pytest.approx(-0.25)
    assert cond.context.shape == (1, 6, 3)  # two characters then the background

    plain = conditioning.encode_references(
        model, _tokens, refs, background=background, latent_size=(8, 8), mode="plain"
    )
    assert plain.background_features is None and plain.style_vectors is None and not plain.split
    assert plain.context.shape == (1, 4, 3)  # the references' tokens only
