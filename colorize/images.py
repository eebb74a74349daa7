"""Read and write frames: the one image I/O module of production, evaluation and previews.

Every input is normalised to RGBA (8-bit for the engines; `read_image` keeps 16 bits), every output is
written atomically. Reading goes through Pillow, whose errors are Python exceptions (a truncated PNG never
prints library noise on stderr), except 16-bit color PNG/TIFF, which Pillow reduces to 8 bits and OpenCV
decodes at full depth; writing goes through OpenCV, whose PNG encoder is fast and byte-stable.
Formats: PNG, TIFF, TGA, JPEG, WebP, BMP (what Pillow reads); EXR is not supported. TGA is written by
`tga_bytes` (Pillow's RLE encoder, with colorize's record).
"""

from __future__ import annotations

import os
import secrets
import stat
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
# File types frames may have (what `read_image` decodes); EXR is not among them.
IMAGE_EXTS = (".png", ".tif", ".tiff", ".tga", ".jpg", ".jpeg", ".webp", ".bmp")


def _open(path: Path) -> Image.Image:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: file not found") from None
    except OSError as error:
        raise IOFailure(f"{path}: cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(info.st_mode):
        raise MissingInputError(f"{path}: a folder, not an image file")
    if info.st_size == 0:
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


def read_image(path: Path) -> np.ndarray:
    """Decode any supported image to H×W×4 RGBA at its own depth: uint8, or uint16 for 16-bit files.

    Gray, gray+alpha and palette images (with their transparency) are expanded to RGBA. 16-bit color
    PNG/TIFF, which Pillow reduces to 8 bits, are decoded by OpenCV at full depth.
    """
    path = Path(path)
    with _open(path) as im:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if _is_16bit_color(path, im):
                    return _decode_16bit(path)
                im.load()
                return _to_rgba(im)
        except (OSError, ValueError, SyntaxError) as error:
            raise InputDataError(f"{path}: damaged or truncated image ({_reason(error)})") from None


def read_rgba(path: Path) -> np.ndarray:
    """Decode any supported image to H×W×4 uint8 RGBA (16-bit rounded to 8, gray/palette expanded)."""
    return to_uint8(read_image(path))


def read_rgb(path: Path) -> np.ndarray:
    """Decode to H×W×3 uint8 RGB; transparent pixels are composited over white."""
    return over_white(read_rgba(path))


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask to H×W bool: alpha where the image has transparency, else brightness > 50 %."""
    rgba = read_rgba(path)
    if has_transparency(rgba):
        return rgba[..., 3] >= 128
    return rgba[..., :3].max(axis=-1) >= 128


def has_transparency(rgba: np.ndarray) -> bool:
    """Whether an RGBA image has any pixel that is not fully opaque."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return False
    return cv2.minMaxLoc(cv2.extractChannel(rgba, 3))[0] < np.iinfo(rgba.dtype).max


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding (v * 255 / 65535); uint8 unchanged."""
    if image.dtype == np.uint8:
        return image
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """uint8 -> uint16 exactly (v * 257: 255 becomes 65535); uint16 unchanged."""
    if image.dtype == np.uint16:
        return image
    return image.astype(np.uint16) * np.uint16(257)


def over_white(image: np.ndarray) -> np.ndarray:
    """RGBA (uint8 or uint16) composited over white -> RGB of the same depth; RGB is returned as is.

    The one compositing function: evaluation, previews, the engines and JPEG output all use it.
    """
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    rgb, alpha = image[..., :3], image[..., 3:4]
    top = np.iinfo(image.dtype).max
    if alpha.min() == top:
        return np.ascontiguousarray(rgb)
    wide = np.uint64 if image.dtype == np.uint16 else np.uint32
    a = alpha.astype(wide)
    out = (rgb.astype(wide) * a + top * (top - a) + top // 2) // top
    return out.astype(image.dtype)


def output_array(image: np.ndarray, alpha: str = "auto", depth: int = 8) -> np.ndarray:
    """Convert an engine's frame to what gets written under `output_alpha` and `output_depth`.

    alpha: "auto" keeps what the engine made (RGBA when the inputs had transparency), "on" adds an opaque
    alpha channel to RGB, "off" composites RGBA over white. depth: 8 or 16 bits per channel.
    """
    if alpha == "off":
        image = over_white(image)
    elif alpha == "on" and image.shape[2] == 3:
        top = np.iinfo(image.dtype).max
        image = np.dstack([image, np.full(image.shape[:2], top, image.dtype)])
    return to_uint16(image) if depth == 16 else to_uint8(image)


def _is_16bit_color(path: Path, im: Image.Image) -> bool:
    """16 bits per channel with color or alpha (Pillow would reduce it to 8 bits)."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)  # RGB, gray+alpha, RGBA
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258, (8,))  # TIFF BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) == 16 and len(bits) >= 2
    return False


def _decode_16bit(path: Path) -> np.ndarray:
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16:
        raise InputDataError(f"{path}: damaged or truncated 16-bit image")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGBA)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGBA)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def _to_rgba(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit) grayscale: kept at 16 bits (32-bit values above 65535 are clipped).
        arr = np.asarray(im, dtype=np.uint32)
        if mode == "I" and arr.max() <= 255:
            gray = arr.astype(np.uint8)
            return np.dstack([gray, gray, gray, np.full_like(gray, 255)])
        gray = np.minimum(arr, 65535).astype(np.uint16)
        return np.dstack([gray, gray, gray, np.full_like(gray, 65535)])
    if mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        gray = np.round(arr * 65535).astype(np.uint16)
        return np.dstack([gray, gray, gray, np.full_like(gray, 65535)])
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
    """Encode RGB/RGBA/gray, uint8 or uint16, to the format named by `suffix` (".png", ".tif", ".jpg", …).

    PNG and TIFF keep alpha and 16 bits; JPEG takes neither: RGBA is composited over white, 16 bits rounded.
    `compression` is the PNG zlib level (0-9): it changes the file size and the time to write, never the
    pixels.
    """
    if suffix.lower() in (".jpg", ".jpeg"):
        image = to_uint8(over_white(image))
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
        if isinstance(error, (PermissionError, IsADirectoryError)):  # not the disk's fault: exit 73, not 74
            raise OutputError(f"{path}: cannot write ({error.strerror})") from None
        raise IOFailure(f"{path}: write failed ({error.strerror or error})") from None


METADATA_KEY = "colorize"  # PNG tEXt keyword of the provenance record
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = struct.pack(">I4sI", 0, b"IEND", zlib.crc32(b"IEND"))


def write_image(path: Path, image: np.ndarray, *, compression: int = 1, metadata: str | None = None) -> None:
    """Encode and atomically write one frame, with an optional metadata text (the provenance record).

    PNG: the text is a `tEXt` chunk (keyword `colorize`) right after the header, in the same atomic write,
    so it travels with the frame and reading it costs a few hundred bytes. TGA: a developer-area field
    (`tga_bytes`), likewise. Other formats: a hidden sidecar `.NAME.colorize` beside the frame, removed
    before the frame is replaced and written after it, so a frame never pairs with another frame's record.
    """
    write_frames([(path, image)], compression=compression, metadata=metadata)


def write_frames(
    files: list[tuple[Path, np.ndarray]], *, compression: int = 1, metadata: str | None = None
) -> None:
    """`write_image` of several files that belong together (a frame and its layers) in one step.

    Every file is encoded and written to its temporary name first; only then are they renamed into place,
    in the given order (the main output last). A failure before the renames leaves every old file as it
    was; a crash during them leaves files whose records say which run made them, so a rerun finds the
    frame stale or missing, never fresh with a half-written file.
    """
    encoded = encode_frames([(path.suffix, image) for path, image in files], compression, metadata)
    write_encoded([path for path, _ in files], encoded, metadata)


def encode_frames(
    files: list[tuple[str, np.ndarray]], compression: int = 1, metadata: str | None = None
) -> list[bytes]:
    """The bytes `write_frames` writes for each (suffix, image): encoded once, they can be written to
    every frame that shows the same drawing (`write_encoded`). The record goes inside PNG and TGA files."""
    encoded = []
    for suffix, image in files:
        suffix = (suffix or ".png").lower()
        if suffix == ".tga":
            data = tga_bytes(image, metadata)
        else:
            data = encode_image(image, suffix, compression)
            if suffix == ".png" and metadata is not None:
                data = _with_png_text(data, METADATA_KEY, metadata)
        encoded.append(data)
    return encoded


def write_encoded(paths: list[Path], encoded: list[bytes], metadata: str | None = None) -> None:
    """Write `encode_frames`' bytes to `paths` (the same suffixes, in the same order) as `write_frames`
    does: every temporary file first, then the renames; other formats' records in sidecars after."""
    staged: list[tuple[Path, Path, bool]] = []  # (temporary, final, record in a sidecar)
    try:
        for path, data in zip(paths, encoded, strict=True):
            suffix = (path.suffix or ".png").lower()
            tmp = temp_path_for(path)
            staged.append((tmp, path, suffix not in _RECORD_INSIDE))
            _write_file(tmp, path, data)
        for _, path, sidecar in staged:
            if sidecar:
                _sidecar(path).unlink(missing_ok=True)
        for tmp, path, _ in staged:
            _replace(tmp, path)
    except BaseException:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    if metadata is not None:
        for _, path, sidecar in staged:
            if sidecar:
                write_atomic(_sidecar(path), metadata.encode("utf-8"))


_RECORD_INSIDE = (".png", ".tga")  # formats that carry the record in the file


def _write_file(tmp: Path, path: Path, data: bytes) -> None:
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        tmp.unlink(missing_ok=True)
        _raise_write(path, error)


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        _raise_write(path, error)


def _raise_write(path: Path, error: OSError) -> None:
    if isinstance(error, (PermissionError, IsADirectoryError)):  # not the disk's fault: exit 73, not 74
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None
    raise IOFailure(f"{path}: write failed ({error.strerror or error})") from None


def read_metadata(path: Path) -> str | None:
    """The metadata text `write_image` stored with a frame; None if there is none or the frame is incomplete."""
    suffix = path.suffix.lower()
    if suffix == ".png" or not path.suffix:
        return _png_text(path, METADATA_KEY)
    if suffix == ".tga":
        return _tga_text(path)
    sidecar = _sidecar(path)
    try:
        return sidecar.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


# TGA (Truevision TGA 2.0): RLE true colour, origin bottom-left (the format's default, what Pillow and
# After Effects expect), 32-bit BGRA with 8 alpha bits (straight alpha: the extension area says so,
# attributes type 3) or 24-bit BGR without alpha; 8 bits per channel (16-bit frames are rounded). The
# provenance record is a developer-area field (tag TGA_RECORD_TAG) that readers skip; the footer at the
# very end points at it, so a truncated file has no record.
TGA_RECORD_TAG = 0x434C  # "CL": a developer tag (0-32767 are free for applications)
_TGA_SIGNATURE = b"TRUEVISION-XFILE.\0"
_TGA_EXTENSION_SIZE = 495


def tga_bytes(image: np.ndarray, metadata: str | None = None) -> bytes:
    """A TGA file (see above) of an RGB/RGBA/gray uint8 or uint16 image."""
    import io

    image = to_uint8(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "TGA", compression="tga_rle")
    data = buffer.getvalue()
    if data.endswith(_TGA_SIGNATURE):
        data = data[:-26]
    out = bytearray(data)
    dev_offset = 0
    if metadata is not None:
        text = metadata.encode("utf-8")
        field_at = len(out)
        out += text
        dev_offset = len(out)
        out += struct.pack("<HHII", 1, TGA_RECORD_TAG, field_at, len(text))
    ext_offset = len(out)
    ext = bytearray(_TGA_EXTENSION_SIZE)
    struct.pack_into("<H", ext, 0, _TGA_EXTENSION_SIZE)
    ext[426 : 426 + 8] = b"colorize"
    ext[494] = 3 if image.shape[2] == 4 else 0  # alpha: 3 = straight ("useful"), 0 = none
    out += ext
    out += struct.pack("<II", ext_offset, dev_offset) + _TGA_SIGNATURE
    return bytes(out)


def _tga_text(path: Path) -> str | None:
    """The record in a TGA's developer area; None if absent or the file is incomplete (no footer)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size < 26 + 18:
                return None
            f.seek(size - 26)
            footer = f.read(26)
            if footer[8:] != _TGA_SIGNATURE:
                return None
            _, dev = struct.unpack("<II", footer[:8])
            if not dev or dev + 2 > size:
                return None
            f.seek(dev)
            (count,) = struct.unpack("<H", f.read(2))
            for _ in range(count):
                tag, offset, length = struct.unpack("<HII", f.read(10))
                if tag == TGA_RECORD_TAG and offset + length <= size:
                    f.seek(offset)
                    return f.read(length).decode("utf-8")
    except (OSError, struct.error, UnicodeDecodeError):
        return None
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
