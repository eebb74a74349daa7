"""Preprocessing of the ColorizeDiffusion v2 paper: masks, background bleaching, sketch normalisation.

Mask merging (`merge_character_masks`). Each character's mask is dilated by `dilation` pixels (a disc)
so that the character's outline and anti-aliasing fall inside it. The *foreground mask* is the union of
the dilated masks. The *split masks* (one per character, what the split cross-attention reads) share the
dilated union without overlap: a pixel claimed by several characters goes to the character whose
undilated mask holds it (the first in manifest order if several do: manifest order = front to back), and
a pixel only in dilated margins goes to the character whose undilated mask is nearest.

Masks a manifest does not give (`character_foreground`): the whole line-art foreground, either the
regions enclosed by the outline (flat engine's segmentation: regions not connected to the frame border,
plus the lines around them) or, when the model folder holds one, an anime-segmentation network
(`anime_seg/model.pt`, TorchScript, ISNet-style: (1, 3, S, S) RGB in [0, 1] -> (1, 1, S, S) foreground).
Minus the given masks, it is the mask of the characters without one (all of them share it).

Reference masks (`reference_foreground`). Bleaching (pipeline.py) whitens the character in the first
reference when the manifest gives no background; without a manifest `reference_mask` or a segmentation
network, the character is what is not the flat backdrop connected to the image border (a heuristic that
fails on painted backgrounds: `colorize check` warns when it takes more than 90 % or less than 2 %).

Working resolution (`frame_geometry`). The model sees every frame at one working size whatever the
frame's size: the long side is `diffusion.resolution` pixels (0: the frame's own size), the aspect kept,
rounded to whole pixels; smaller frames are enlarged too, so a result does not depend on the size the
line art was drawn at. Images are resized by area averaging when shrinking and bicubically when
enlarging (`resize_image`); masks by area (soft, they become soft latent masks anyway) when shrinking and
nearest when enlarging. The decoded result is cropped to the working size and resized back to the
frame's size (bicubic, clipped to uint8: `Geometry.to_frame`).

Sketch normalisation (`sketch_plane`). Line strength inverted (lines 1, paper 0) mapped to [-1, 1]
on three channels, padded on the right and bottom with paper to a multiple of 64 (the aspect is kept;
the model's latent grid must divide evenly through the UNet); results are cropped back (`crop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from colorize.images import over_white
from colorize.regions.segment import segment

MULTIPLE = 64


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


# ---- masks -------------------------------------------------------------------------------------------


@dataclass
class MergedMasks:
    foreground: np.ndarray  # H×W bool: union of the dilated character masks
    split: np.ndarray  # N×H×W bool: one mask per character, no overlaps, union = foreground


def merge_character_masks(masks: list[np.ndarray], dilation: int) -> MergedMasks:
    """Merge per-character masks (manifest order) into the foreground and split masks; see the docstring."""
    if not masks:
        raise ValueError("no character masks to merge")
    h, w = masks[0].shape
    raw = np.stack([m.astype(bool) for m in masks])
    if dilation > 0:
        grown = np.stack([cv2.dilate(m.view(np.uint8), _disc(dilation)).astype(bool) for m in raw])
    else:
        grown = raw.copy()
    foreground = np.asarray(grown.any(axis=0))
    # Owner of each pixel: first character whose own mask holds it, else the nearest own mask.
    inside = raw.any(axis=0)
    owner = np.where(inside, raw.argmax(axis=0), -1)
    margin = foreground & ~inside
    if margin.any():
        distances = np.stack(
            [
                cv2.distanceTransform((~m).view(np.uint8), cv2.DIST_L2, 5)
                if m.any()
                else np.full((h, w), np.inf, np.float32)
                for m in raw
            ]
        )
        distances[~grown] = np.inf  # a margin pixel goes only to a character that reaches it
        owner = np.where(margin, distances.argmin(axis=0), owner)
    split = np.stack([(owner == i) & foreground for i in range(len(masks))])
    return MergedMasks(foreground=foreground, split=split)


def lineart_foreground(lineart: np.ndarray, gap_close: int = 2, line_threshold: float = 0.4) -> np.ndarray:
    """Regions enclosed by the outline (not connected to the frame border) and the lines bounding them."""
    seg = segment(lineart, gap_close=gap_close, min_region=0, line_threshold=line_threshold)
    labels = seg.labels
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.ones(seg.count + 1, bool)
    enclosed[border] = False
    enclosed[0] = False
    inner = enclosed[labels]
    # The outline itself: line pixels next to an enclosed region (lines are a few pixels wide).
    near = cv2.dilate(inner.view(np.uint8), _disc(3)).astype(bool)
    return inner | (near & (labels == 0))


class AnimeSegmenter:
    """An anime-segmentation network from the model folder (local TorchScript weights only).

    `anime_seg/config.json` may give `image_size` (default 1024) and `mean` / `std` (input normalisation,
    default none: RGB in [0, 1], as ISNet anime-seg expects; RMBG-style networks want ImageNet's).
    """

    def __init__(
        self,
        path: Path,
        image_size: int = 1024,
        device: str | torch.device = "cpu",
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ):
        self.path = path
        self.image_size = image_size
        self.device = torch.device(device)
        self.mean, self.std = mean, std
        self.net = torch.jit.load(str(path), map_location=self.device).eval()

    @classmethod
    def from_model_folder(
        cls, folder: str | Path, device: str | torch.device = "cpu"
    ) -> AnimeSegmenter | None:
        import json

        sub = Path(folder) / "anime_seg"
        if not (sub / "model.pt").is_file():
            return None
        config = json.loads((sub / "config.json").read_text()) if (sub / "config.json").is_file() else {}
        return cls(
            sub / "model.pt",
            int(config.get("image_size", 1024)),
            device,
            config.get("mean"),
            config.get("std"),
        )

    @torch.inference_mode()
    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """Soft foreground (H×W float32 in [0, 1]) of an H×W×3 uint8 (or float [0, 1]) RGB image."""
        h, w = rgb.shape[:2]
        image = rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)
        s = self.image_size
        x = torch.from_numpy(cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
        if self.mean is not None and self.std is not None:
            x = (x - torch.tensor(self.mean).view(1, 3, 1, 1)) / torch.tensor(self.std).view(1, 3, 1, 1)
        out = self.net(x.to(self.device))
        if isinstance(out, (list, tuple)):  # ISNet returns side outputs too; the first is the final one
            out = out[0]
            if isinstance(out, (list, tuple)):
                out = out[0]
        prob = out.float()[0, 0]
        if prob.min() < 0 or prob.max() > 1:  # logits
            prob = prob.sigmoid()
        return np.clip(cv2.resize(prob.cpu().numpy(), (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)

    def __call__(self, lineart: np.ndarray) -> np.ndarray:
        """Foreground (H×W bool) of an RGBA line-art frame composited over white."""
        return self.probability(over_white(lineart)) > 0.5


# ---- references --------------------------------------------------------------------------------------


def reference_foreground(reference: np.ndarray, tolerance: int = 24) -> np.ndarray:
    """The character in a reference: what is not the flat backdrop connected to the image border."""
    border = np.concatenate([reference[0], reference[-1], reference[:, 0], reference[:, -1]])
    backdrop = np.median(border, axis=0)
    close = (np.abs(reference.astype(np.int16) - backdrop.astype(np.int16)).max(axis=-1) <= tolerance).view(
        np.uint8
    )
    _, labels = cv2.connectedComponents(close, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])
    return ~background


def heuristic_mask_warning(
    reference: Path, character: str, low: float = 0.02, high: float = 0.9
) -> str | None:
    """A line for `colorize check` when the flat-backdrop heuristic is unlikely to find the character:
    its mask covers more than `high` or less than `low` of the reference (None when it looks plausible)."""
    from colorize.images import read_rgb

    coverage = float(reference_foreground(read_rgb(reference)).mean())
    if low <= coverage <= high:
        return None
    what = "almost all" if coverage > high else "almost none"
    return (
        f"{reference}: the background heuristic takes {coverage:.0%} of the reference of {character!r} as "
        f"the character ({what} of it), so bleaching it for the background encoder will be wrong; give "
        f"characters.{character}.reference_mask, a background reference, or anime_seg/ in the model folder"
    )


# ---- sketches ----------------------------------------------------------------------------------------


def working_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(rows, columns) with the long side `resolution` and the aspect kept (0: the size unchanged)."""
    if resolution <= 0:
        return height, width
    long = max(height, width)
    # Integer rounding (half up): the same size on every machine.
    return (
        max(1, (height * resolution + long // 2) // long),
        max(1, (width * resolution + long // 2) // long),
    )


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (rows, columns): area averaging when shrinking, bicubic when enlarging.

    uint8 images saturate (cv2 clips bicubic overshoot); float images are returned unclipped.
    """
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    mode = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_CUBIC
    return cv2.resize(image, (size[1], size[0]), interpolation=mode)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask (bool or [0, 1]) as float32 at `size`: area averaging (soft) shrinking, nearest enlarging."""
    m = mask.astype(np.float32)
    h, w = m.shape
    if (h, w) == tuple(size):
        return m
    mode = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_NEAREST
    return cv2.resize(m, (size[1], size[0]), interpolation=mode)


@dataclass(frozen=True)
class Geometry:
    """Frame size, working size (what the model sees) and padded size (multiples of 64)."""

    size: tuple[int, int]  # the frame (H, W)
    work: tuple[int, int]  # the frame resized for the model, aspect kept
    padded: tuple[int, int]  # the model input: `work` padded on the right and bottom

    def to_work(self, image: np.ndarray) -> np.ndarray:
        """A frame-sized image at the working size (unchanged at resolution 0)."""
        return resize_image(image, self.work)

    def to_frame(self, image: np.ndarray) -> np.ndarray:
        """A padded model result (H×W×3 uint8) cropped to the working size and resized to the frame's size.

        Bicubic whichever way (the result is smooth; it is the sharpest of OpenCV's resamplers), clipped
        to uint8 by OpenCV's saturation.
        """
        image = crop(image, self.work)
        if self.work == self.size:
            return image
        return cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_CUBIC)


def frame_geometry(height: int, width: int, resolution: int, multiple: int = MULTIPLE) -> Geometry:
    """Where a height×width frame goes for the model at `resolution` (long side; 0: native)."""
    work = working_size(height, width, resolution)
    return Geometry(size=(height, width), work=work, padded=padded_size(*work, multiple))


def padded_size(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """The size a frame is padded to (multiples of `multiple`, aspect kept: padding, no resizing)."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def sketch_plane(ink: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """(Hp, Wp) float32 sketch in [-1, 1], lines bright (inverted), padded with paper (NumPy only)."""
    h, w = ink.shape
    hp, wp = padded_size(h, w, multiple)
    padded = np.zeros((hp, wp), np.float32)
    padded[:h, :w] = ink
    return padded * 2.0 - 1.0


def pad_image(image: np.ndarray, size: tuple[int, int], fill: int = 255) -> np.ndarray:
    """Pad an H×W(×C) image on the right and bottom to `size` (rows, columns)."""
    h, w = image.shape[:2]
    out = np.full((size[0], size[1], *image.shape[2:]), fill, image.dtype)
    out[:h, :w] = image
    return out


def crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Undo the padding of `sketch_plane` / `pad_image`."""
    return image[: size[0], : size[1]]


def to_model_image(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(…)×H×W×3 uint8 -> (…, 3, H, W) float32 in [-1, 1] (a batch may already be a tensor on a GPU)."""
    x = torch.from_numpy(rgb) if isinstance(rgb, np.ndarray) else rgb
    return x.movedim(-1, -3).float() / 127.5 - 1.0


def from_model_image(image: torch.Tensor) -> np.ndarray:
    """(…, 3, H, W) in [-1, 1] -> …×H×W×3 uint8 (rounded, so the bytes are well defined); a batch is
    converted on its device and copied back once."""
    x = ((image.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(x.movedim(-3, -1).cpu().numpy())


def latent_masks(split: np.ndarray, geometry: Geometry, latent: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) float32 region masks at latent resolution (area-averaged: soft at the edges).

    `split` is at the frame's size; each mask goes to the working size (`resize_mask`), is padded with
    zeros to the padded size, then area-averaged down to the latent grid.
    """
    out = []
    for m in split:
        work = resize_mask(m, geometry.work)
        full = np.zeros(geometry.padded, np.float32)
        full[: work.shape[0], : work.shape[1]] = work
        out.append(cv2.resize(full, (latent[1], latent[0]), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(out))
