"""Read and write frames: every input normalised to 8-bit RGBA, every output written atomically.

Reading goes through Pillow, whose errors are Python exceptions (a truncated PNG never prints library
noise on stderr); writing goes through OpenCV, whose PNG encoder is fast and byte-stable.
"""

from __future__ import annotations

import os
import secrets
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from colorize.errors import InputDataError, IOFailure, MissingInputError, OutputError

# Line art may legitimately be huge (4K+ plates); Pillow's decompression-bomb guard is for untrusted web input.
Image.MAX_IMAGE_PIXELS = None

TMP_MARK = ".colorize-tmp-"


def _open(path: Path) -> Image.Image:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MissingInputError(f"{path}: file not found") from None
    except OSError as error:
        raise IOFailure(f"{path}: cannot read ({error.strerror or error})") from None
    if size == 0:
        raise InputDataError(f"{path}: empty file (0 bytes)")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise InputDataError(f"{path}: not an image Pillow can read") from None
    except OSError as error:
        if error.errno is None:  # Pillow's own complaint about the data, not the operating system's
            raise InputDataError(f"{path}: damaged or truncated image ({_reason(error)})") from None
        raise IOFailure(f"{path}: cannot read ({error.strerror or error})") from None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding pixels."""
    with _open(path) as im:
        return im.height, im.width


def verify_image(path: Path) -> tuple[int, int]:
    """Check the whole file is intact (chunk CRCs, no truncation) without decoding; return (h, w)."""
    with _open(path) as im:
        h, w = im.height, im.width
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.verify()
        except Exception as error:  # Pillow raises several types for damaged data
            raise InputDataError(f"{path}: damaged or truncated image ({_reason(error)})") from None
    return h, w


def read_rgba(path: Path) -> np.ndarray:
    """Decode any supported image to H×W×4 uint8 RGBA (16-bit reduced, gray/palette expanded)."""
    with _open(path) as im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
                return _to_rgba(im)
        except (OSError, ValueError, SyntaxError) as error:
            raise InputDataError(f"{path}: damaged or truncated image ({_reason(error)})") from None


def read_rgb(path: Path) -> np.ndarray:
    """Decode to H×W×3 uint8 RGB; transparent pixels are composited over white."""
    return rgba_over_white(read_rgba(path))


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask to H×W bool: alpha where the image has transparency, else brightness > 50 %."""
    rgba = read_rgba(path)
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        return alpha >= 128
    return rgba[..., :3].max(axis=-1) >= 128


def rgba_over_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _to_rgba(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit) grayscale: scale to 8 bits by the range the format can hold.
        arr = np.asarray(im, dtype=np.uint32)
        top = 65535 if mode.startswith("I;16") or arr.max() > 255 else 255
        gray = ((arr * 255 + top // 2) // top).astype(np.uint8)
        return np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    if mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        gray = np.round(arr * 255).astype(np.uint8)
        return np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    if mode != "RGBA":
        im = im.convert("RGBA")  # palette (with tRNS), L, LA, RGB, CMYK, 1-bit
    return np.asarray(im, dtype=np.uint8).copy()


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def temp_path_for(path: Path) -> Path:
    """A unique temporary name beside `path` (same folder, so the final rename is atomic)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_file(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def encode_image(image: np.ndarray, suffix: str, compression: int = 1) -> bytes:
    """Encode RGB/RGBA/gray (uint8 or uint16) to the format named by `suffix` (".png", ".tif", ".jpg", …).

    `compression` is the PNG zlib level (0-9): it changes the file size and the time to write, never the
    pixels.
    """
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    params: list[int] = []
    if suffix.lower() == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, compression]
    elif suffix.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:
        raise OutputError(f"cannot encode an image as {suffix}")
    return data.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that `path` either does not exist or holds the complete file.

    The bytes go to a temporary file in the same folder, are flushed to disk, then renamed over `path`.
    """
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, PermissionError):
            raise OutputError(f"{path}: cannot write ({error.strerror})") from None
        raise IOFailure(f"{path}: write failed ({error.strerror or error})") from None


METADATA_KEY = "colorize"  # PNG tEXt keyword of the provenance record
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = struct.pack(">I4sI", 0, b"IEND", zlib.crc32(b"IEND"))


def write_image(path: Path, image: np.ndarray, *, compression: int = 1, metadata: str | None = None) -> None:
    """Encode and atomically write one frame, with an optional metadata text (the provenance record).

    PNG: the text is a `tEXt` chunk (keyword `colorize`) right after the header, in the same atomic write,
    so it travels with the frame and reading it costs a few hundred bytes. Other formats: a hidden sidecar
    `.NAME.colorize` beside the frame, removed before the frame is replaced and written after it, so a
    frame never pairs with another frame's record.
    """
    suffix = (path.suffix or ".png").lower()
    data = encode_image(image, suffix, compression)
    if suffix == ".png":
        if metadata is not None:
            data = _with_png_text(data, METADATA_KEY, metadata)
        write_atomic(path, data)
        return
    sidecar = _sidecar(path)
    sidecar.unlink(missing_ok=True)
    write_atomic(path, data)
    if metadata is not None:
        write_atomic(sidecar, metadata.encode("utf-8"))


def read_metadata(path: Path) -> str | None:
    """The metadata text `write_image` stored with a frame; None if there is none or the frame is incomplete."""
    if path.suffix.lower() == ".png" or not path.suffix:
        return _png_text(path, METADATA_KEY)
    sidecar = _sidecar(path)
    try:
        return sidecar.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.{METADATA_KEY}")


def _with_png_text(data: bytes, keyword: str, text: str) -> bytes:
    """PNG bytes with a tEXt chunk inserted after IHDR (which always ends at byte 33)."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise OutputError("PNG encoder returned an unexpected stream")
    body = keyword.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:33] + chunk + data[33:]


def _png_text(path: Path, keyword: str) -> str | None:
    """The text of a PNG's tEXt chunk before the image data; None if absent or the file is incomplete."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return None
                if kind != b"tEXt":
                    f.seek(length + 4, os.SEEK_CUR)
                    continue
                key, _, text = f.read(length).partition(b"\0")
                if key != keyword.encode("latin-1"):
                    f.seek(4, os.SEEK_CUR)
                    continue
                f.seek(-len(_PNG_IEND), os.SEEK_END)  # a truncated frame is not done, whatever it says
                return text.decode("latin-1") if f.read(len(_PNG_IEND)) == _PNG_IEND else None
    except OSError:
        return None


def remove_stale_temps(outputs: list[Path]) -> list[Path]:
    """Delete temporary files a killed run left for these outputs; return what was removed.

    Only temporaries of the given outputs are touched: another chunk of the same shot may be writing
    its own frames into the same folder right now.
    """
    removed = []
    by_folder: dict[Path, set[str]] = {}
    for out in outputs:
        by_folder.setdefault(out.parent, set()).add(out.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name
            if is_temp_file(name) and name[1:].split(TMP_MARK)[0] in names and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
