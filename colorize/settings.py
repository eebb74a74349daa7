"""Run settings: preset < manifest < command line, resolved once into one frozen object.

Each engine owns one section (`flat:`, `diffusion:`); top-level keys apply to every engine.
Unknown keys are rejected everywhere so a typo never silently falls back to a default.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _on_off(value: Any) -> Any:
    """YAML 1.1 reads a bare `on` / `off` as true / false: take them as the words they were."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


OutputAlpha = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]
OUTPUT_ALPHA_HELP = (
    "auto: RGBA output when the line art or the keyframes have transparency (transparent regions stay "
    "transparent, lines keep their alpha); on: always RGBA; off: RGB over white."
)
PALETTE_HELP = (
    "Colour model file (YAML: version 1, colors of id, name, #rrggbb[aa]): every painted pixel is a palette "
    "colour and keyframe colours not in it are errors. Relative to the file that names it."
)
OUTPUT_DEPTH_HELP = "Bits per channel of the written frames: 8 or 16 (PNG and TIFF)."
Timing = Literal["strict", "hold"]
TIMING_HELP = (
    "strict: one line-art file per frame, a missing frame number is an error; hold: a missing frame number "
    "is a hold (the frame shows the last drawing before it)."
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlatSettings(StrictModel):
    """Settings of the flat (cel paint-bucket) engine."""

    lines: Literal["keep", "fill"] = Field(
        "keep", description="keep: composite the original line layer on top; fill: paint lines over."
    )
    gap_close: int = Field(2, ge=0, le=32, description="Close line gaps up to about this radius (pixels).")
    min_region: int = Field(
        12,
        ge=0,
        description="Speckle size: regions smaller than this many pixels that only ink specks (isolated "
        "ink blobs under 4x this many pixels, scan noise) enclose become line and take a neighbour's color. "
        "Enclosures drawn by the lines are kept however small; unmatched ones take their neighbour's color "
        "when propagated. 0 or 1: keep everything.",
    )
    unresolved_color: str = Field(
        "#ff00ff", pattern=r"^#[0-9a-fA-F]{6}$", description="Fill of regions that cannot be matched."
    )
    colored_lines: Literal["keep", "fill"] = Field(
        "fill",
        description="Colored (shadow/highlight boundary) lines: fill: painted over with the region color "
        "as in cel finishing; keep: composited back like black lines. Only used with lines: keep.",
    )
    line_threshold: float = Field(
        0.4, gt=0, le=1, description="Ink strength (0-1) from which an anti-aliased pixel bounds regions."
    )
    match_threshold: float = Field(
        0.5, ge=0, le=1, description="Least vote share for a propagated region color; below it is unresolved."
    )
    fill: Literal["auto", "flat", "texture"] = Field(
        "auto",
        description="How a region is painted from its source: flat: one color (keyframe frames included); "
        "texture: the source region's pixels carried over (shading, texture), never across a line; auto: "
        "texture where the source region is not flat. Keyframe frames keep the keyframe's pixels off the "
        "lines unless flat.",
    )
    close_breaks: Literal[True, False, "auto"] = Field(
        "auto",
        description="Also close 1-2 px breaks in the lines for thin regions (hair strands, stripes) that "
        "gap_close's ball cannot reach: for scans and aliased or nearest-neighbour resampled line art. "
        "Closes a break only where it parts two regions of 2x min_region px or more. auto: per frame, "
        "where the line art is hard-edged (no anti-aliasing) with lines mostly one pixel thin, the lines "
        "that aliased resampling breaks; true: every frame; false: never.",
    )
    cut_joins: bool = Field(
        True,
        description="Between keyframes, cut a region that takes in two areas the drawing before painted "
        "differently, whole (a line the drawing or its extraction lost: trousers sliding over a fence of "
        "the same dark tone), along where those areas land, so each keeps its own paint. Judged drawing "
        "by drawing forward from the keyframe before, so --frames chunks come out the same.",
    )


LineRole = Annotated[str, Field(pattern=r"^(main|shadow|highlight|#[0-9a-fA-F]{6})$")]
LINE_ROLE_HELP = (
    "main: kept as drawn (a main line); shadow: filled with the darker of the colours it separates; "
    "highlight: the lighter; #rrggbb: filled with that fixed colour."
)


class TraceLineSettings(StrictModel):
    """Colour-trace lines: the role of each line colour (hue class of saturated, not dark, line pixels).

    Dark or neutral lines are always main lines. A trace stroke that bounds no region (a mark drawn inside
    one paint area) is kept as drawn, and so is a colour that makes up more than `max_share` of a frame's
    line pixels (a drawing traced in that colour is line work)."""

    red: LineRole = Field("highlight", description=LINE_ROLE_HELP)
    yellow: LineRole = Field("main", description=LINE_ROLE_HELP)
    green: LineRole = Field("shadow", description=LINE_ROLE_HELP)
    cyan: LineRole = Field("main", description=LINE_ROLE_HELP)
    blue: LineRole = Field("shadow", description=LINE_ROLE_HELP)
    magenta: LineRole = Field("main", description=LINE_ROLE_HELP)
    max_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A line colour making up more than this share of a frame's line pixels is that "
        "drawing's main line work: kept (check warns).",
    )


class DiffusionSettings(StrictModel):
    """Settings of the ColorizeDiffusion v2 engine."""

    steps: int = Field(20, ge=1, le=1000)
    sampler: Literal["dpmpp", "ddim", "euler"] = "dpmpp"
    resolution: int = Field(
        768,
        ge=0,
        le=8192,
        description="Long side of the frame as the model sees it, in pixels (aspect kept, padded to a "
        "multiple of 64; the result is resized back to the frame's size). Frames are shrunk or enlarged "
        "to it, so results do not depend on the line art's size. 0 = native size.",
    )
    mode: Literal["v2", "plain"] = Field(
        "v2",
        description="v2: split cross-attention with the character masks, background injection and style "
        "(the official app with style and background enhancement on); plain: the references' tokens only "
        "(enhancements off), to compare.",
    )
    ref_scale: float = Field(
        4.0, ge=0, description="Reference guidance scale (on above 1; the official app's default is 4)."
    )
    sketch_scale: float = Field(1.0, ge=0, description="Sketch guidance scale (on above 1).")
    strength: float = Field(0.6, gt=0, le=1, description="Denoising strength from the warped previous frame.")
    cel_finish: bool = Field(False, description="Snap the result to one colour per line-art region.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="auto: float32 on CPU; on a GPU the UNet and encoders in bfloat16 (float16 without bf16 "
        "support), the VAE and CLIP in float32, as the official app. Any other value: every component.",
    )
    mask_dilation: int = Field(
        4, ge=0, le=64, description="Character masks grow by this many pixels before merging."
    )
    mask_source: Literal["auto", "lineart", "anime_seg"] = Field(
        "auto",
        description="Masks of characters the manifest gives none for: from the line-art regions, or the "
        "model folder's anime-segmentation network (auto: the network when the folder has one).",
    )
    warp_anchor_every: int = Field(
        8,
        ge=1,
        description="temporal warp: the chain restarts from noise every this many frames of the shot.",
    )
    occlusion_threshold: float = Field(
        1.5,
        gt=0,
        description="temporal warp: flow that does not round-trip within this many pixels is occluded.",
    )
    cuda_graph: bool = Field(
        False,
        description="Replay the UNet call as a CUDA graph (one capture per shot and batch shape): several "
        "times faster on a GPU at small batches, where the eager UNet is bound by kernel launches. Off until "
        "a GPU run shows it gives the same bytes as the eager path; ignored (with a message) without CUDA "
        "or with offload.",
    )
    offload: bool = Field(
        False,
        description="Keep the model's components in CPU memory and move each to the GPU when it runs "
        "(diffusers' model offload): fits ~12 GB cards, slower. Same bytes as without; no effect on the CPU.",
    )

    @field_validator("resolution")
    @classmethod
    def _resolution_is_native_or_64(cls, value: int) -> int:
        if 0 < value < 64:
            raise ValueError("0 (native size) or at least 64 pixels")
        return value


class KeysSettings(StrictModel):
    """How `colorize keys` (and `engine: hybrid`) choose the key drawings of a shot from its line art."""

    max_gap: int = Field(
        48,
        ge=1,
        description="A key at least every this many frames: the first new drawing (not a repeat of an "
        "earlier one) this many frames or more after the last key becomes one.",
    )
    max_count: int = Field(16, ge=1, description="At most this many keys per shot (the first ones).")
    min_carried: float = Field(
        0.7,
        gt=0,
        le=1,
        description="A drawing becomes a key when the flat engine, run from the last key, carries less than "
        "this share of its regions with confidence (the rest unresolved or low-confidence).",
    )


class Settings(StrictModel):
    """Everything that changes the result of a run."""

    engine: Literal["auto", "flat", "diffusion", "hybrid"] = "auto"
    seed: int = 0
    batch: int = Field(4, ge=1, le=256)
    temporal: Literal["none", "locked", "warp"] = "warp"
    model: str | None = Field(None, description="Model folder for the diffusion engine.")
    output_compression: int = Field(
        1,
        ge=0,
        le=9,
        description="PNG compression level of the outputs (zlib 0-9): 1 (default) writes fast, as farm "
        "intermediates want; 9 makes files a few percent smaller and writing several times slower. The pixels "
        "are the same at every level; other formats ignore it.",
    )
    max_unresolved: int | None = Field(
        None,
        ge=0,
        description="Quality gate: a frame with more unresolved regions than this is written, then reported "
        "as failed (exit code 3) so the shot can go to a painter. None: no gate.",
    )
    output_alpha: OutputAlpha = Field("auto", description=OUTPUT_ALPHA_HELP)
    output_depth: Literal[8, 16] = Field(8, description=OUTPUT_DEPTH_HELP)
    timing: Timing = Field("strict", description=TIMING_HELP)
    flat: FlatSettings = FlatSettings()
    palette: str | None = Field(None, description=PALETTE_HELP)
    diffusion: DiffusionSettings = DiffusionSettings()
    trace_lines: TraceLineSettings = Field(
        TraceLineSettings(), description="Colour-trace lines: which line colours are filled, and how."
    )
    keys: KeysSettings = KeysSettings()


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge plain dicts, later layers winning; None values do not override."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge_layers(out[key], value)
            else:
                out[key] = value
    return out
