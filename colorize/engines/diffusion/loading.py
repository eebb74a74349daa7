"""Reading weight files safely: safetensors, or torch files through `torch.load(weights_only=True)` only.

Nothing here unpickles arbitrary objects: a `.ckpt`/`.pt`/`.bin` that needs more than tensors and plain
containers is refused with a line saying how to turn it into safetensors on a machine the user trusts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from colorize.errors import MissingInputError, ModelError

TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def short_error(error: BaseException, limit: int = 160) -> str:
    """An exception as one short line."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def device_map(device: str | torch.device) -> dict[str, str] | None:
    """`device_map` for diffusers/transformers loaders: straight onto an accelerator (needs accelerate)."""
    from diffusers.utils import is_accelerate_available

    device = torch.device(device)
    return {"": str(device)} if device.type != "cpu" and is_accelerate_available() else None


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors or torch state-dict file; one-line errors, never unpickling code."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: checkpoint not found")
    if path.is_dir():
        already = (
            " (it is a model folder already: use it as --model)"
            if (path / "model_index.json").is_file()
            else ""
        )
        raise MissingInputError(
            f"{path}: a folder, not a checkpoint file (.safetensors, {', '.join(TORCH_SUFFIXES)}){already}"
        )
    if not path.is_file():
        raise MissingInputError(f"{path}: not a file")
    if path.suffix in TORCH_SUFFIXES:
        return _read_torch(path)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except SafetensorError as error:
        if path.suffix != ".safetensors":
            raise ModelError(
                f"{path}: not a checkpoint (neither safetensors nor a torch file: {', '.join(TORCH_SUFFIXES)})"
            ) from None
        raise ModelError(
            f"{path}: not a valid safetensors file, corrupt or truncated ({short_error(error)})"
        ) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise ModelError(
            f"{path}: cannot read tensors, corrupt or truncated ({short_error(error)})"
        ) from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error) and "Weights only" not in str(error):
            raise ModelError(f"{path}: not a readable torch checkpoint ({short_error(error)})") from None
        raise ModelError(
            f"{path}: holds Python objects besides tensors, which colorize never unpickles (it could run "
            'code); on a machine you trust, save its tensors as safetensors: python -c "import torch, '
            "safetensors.torch as s; d = torch.load('IN', weights_only=False); d = d.get('state_dict', d); "
            "s.save_file({k: v.contiguous() for k, v in d.items() if torch.is_tensor(v)}, 'OUT.safetensors')\""
        ) from None
    except Exception as error:  # torch raises many unrelated types for a broken file
        raise ModelError(f"{path}: not a readable torch checkpoint ({short_error(error)})") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]  # a Lightning checkpoint: epoch, global_step, ... around the weights
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a state dict (a {type(data).__name__})")
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError(f"{path}: holds no tensors")
    return tensors
