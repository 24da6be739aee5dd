"""Reading one illustration, whatever its format, as an 8-bit BGR array.

`read_image` never raises anything but `UnreadableImage`, whose message is the
reason shown to the user. It reads the file's bytes once (the input folder is
only ever read), checks the pixel count in the PNG/JPEG header *before*
decoding (so a decompression bomb is refused without allocating it), decodes
with `cv2.imdecode(..., IMREAD_UNCHANGED)` and normalises:

- 16-bit (PNG/TIFF) -> 8-bit by rounding value * 255 / 65535;
- float images -> [0, 1] scaled to 8-bit (or clipped to [0, 255] if larger);
- grayscale -> BGR; gray+alpha and BGRA -> composited on white;
- CMYK JPEG: OpenCV's decoder already converts it to BGR;
- JPEG EXIF orientation is applied (IMREAD_UNCHANGED ignores it), so boxes
  refer to the picture as a viewer displays it.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# What the tool tries to read; other files are listed as ignored, not opened.
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
    ".ppm", ".pgm", ".pbm", ".pnm",
)


class UnreadableImage(Exception):
    """The file cannot be used; the message says why (one line)."""


@dataclasses.dataclass
class LoadedImage:
    bgr: np.ndarray  # uint8, (height, width, 3)
    notes: list[str]  # conversions applied, e.g. "16-bit -> 8-bit"


def read_image(path: str, max_pixels: int) -> LoadedImage:
    """Reads `path` as uint8 BGR, or raises UnreadableImage with the reason."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UnreadableImage(f"cannot read file: {e.strerror or e}") from None
    return decode_image(data, max_pixels)


def decode_image(data: bytes, max_pixels: int) -> LoadedImage:
    if not data:
        raise UnreadableImage("empty file")
    kind = sniff_format(data)
    header = jpeg_header(data) if kind == "jpeg" else None
    size = png_size(data) if kind == "png" else (header.size if header else None)
    if size is not None:
        _check_pixels(*size, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise UnreadableImage(f"OpenCV cannot decode it: {str(e).strip().splitlines()[-1]}") from None
    if image is None:
        raise UnreadableImage(_why_undecodable(data, kind, header))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    _check_pixels(image.shape[1], image.shape[0], max_pixels)
    notes: list[str] = []
    image = _to_uint8(image, notes)
    image = _to_bgr(image, notes)
    if header is not None and header.orientation not in (None, 1):
        image = apply_exif_orientation(image, header.orientation)
        notes.append(f"EXIF orientation {header.orientation} applied")
    return LoadedImage(np.ascontiguousarray(image), notes)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise UnreadableImage(f"invalid size {width}x{height} in the file header")
    if width * height > max_pixels:
        raise UnreadableImage(
            f"too large: {width}x{height} = {width * height / 1e6:.1f} megapixels "
            f"> --max_megapixels {max_pixels / 1e6:g} (decompression-bomb guard)"
        )


def _to_uint8(image: np.ndarray, notes: list[str]) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        notes.append("16-bit -> 8-bit")
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if image.dtype in (np.float32, np.float64, np.float16):
        image = np.nan_to_num(image.astype(np.float32))
        scale = 255.0 if image.max(initial=0.0) <= 1.0 else 1.0
        notes.append("float -> 8-bit")
        return np.clip(image * scale + 0.5, 0, 255).astype(np.uint8)
    raise UnreadableImage(f"unsupported pixel type {image.dtype}")


def _to_bgr(image: np.ndarray, notes: list[str]) -> np.ndarray:
    if image.ndim == 2:
        notes.append("grayscale -> BGR")
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels in (2, 4):
        color = image[:, :, :-1]
        if channels == 2:
            color = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_GRAY2BGR)
        alpha = image[:, :, -1:]
        if alpha.min() == 255:
            return np.ascontiguousarray(color)
        notes.append("alpha composited on white")
        a = alpha.astype(np.float32) / 255.0
        return (color.astype(np.float32) * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    raise UnreadableImage(f"unsupported number of channels: {channels}")


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turns the stored pixels into the displayed picture (EXIF tag 0x0112)."""
    ops = {
        2: lambda im: cv2.flip(im, 1),
        3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
        4: lambda im: cv2.flip(im, 0),
        5: lambda im: cv2.transpose(im),
        6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
        7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
        8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    op = ops.get(orientation)
    return op(image) if op else image


# ---------------------------------------------------------------------------
# Headers: enough parsing to know the size before decoding, and why a file
# fails when it does.

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"),
    (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
)


def sniff_format(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:1] == b"P" and data[1:2] in b"123456":
        return "pnm"
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@dataclasses.dataclass
class JpegHeader:
    size: tuple[int, int] | None  # (width, height) from the first SOF marker
    orientation: int | None  # EXIF orientation, 1..8
    scan_offset: int | None  # where the first SOS (entropy-coded data) starts


def jpeg_header(data: bytes) -> JpegHeader:
    """Walks the JPEG markers up to the first scan (never raises)."""
    header = JpegHeader(None, None, None)
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        segment = data[i + 4:i + 2 + length]
        if marker == 0xDA:
            header.scan_offset = i
            break
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(segment) >= 5:
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            header.size = header.size or (width, height)
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and header.orientation is None:
            header.orientation = _exif_orientation(segment[6:])
        i += 2 + length
    return header


def _exif_orientation(tiff: bytes) -> int | None:
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for k in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        entry = tiff[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[0:2], order) == 0x0112:
            value = int.from_bytes(entry[8:10], order)
            return value if 1 <= value <= 8 else None
    return None


def _why_undecodable(data: bytes, kind: str | None, header: JpegHeader | None) -> str:
    if kind is None:
        return "not an image (unknown file signature)"
    if kind == "jpeg" and header is not None:
        if header.scan_offset is None or data.rfind(b"\xff\xd9") < header.scan_offset:
            return "truncated or corrupt JPEG (no image data end marker)"
    if kind == "png" and b"IEND" not in data[-64:]:
        return "truncated or corrupt PNG (no IEND chunk)"
    return f"corrupt or unsupported {kind.upper()} data (OpenCV cannot decode it)"
