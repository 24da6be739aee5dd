"""From one illustration to candidate face crops (runs in the worker processes).

Detection is nagadomi's documented recipe for lbpcascade_animeface: grayscale,
`cv2.equalizeHist`, `CascadeClassifier.detectMultiScale(gray, scaleFactor=1.1,
minNeighbors=5, minSize=(24, 24))`. Boxes are sorted by (y, x) so results do
not depend on OpenCV's threading. An image whose longer side exceeds
`detect_max_side` is downscaled (area interpolation) for detection only and the
boxes are mapped back to source pixels; crops always come from the full image.

Square crop (`square_box`): the detected box is widened by `margin` times its
side on every side (side * (1 + 2 * margin)), centred on the detection. A
square that sticks out of the image is SHIFTED back inside, never padded, so a
crop never contains invented border pixels (the face is then off-centre). If
the square is larger than the image's shorter side it is first shrunk to that
side. The crop is resized to `size` x `size` with area interpolation.

Per-face checks done here (the parent does duplicates):
- too_small: detected box side < min_face;
- monochrome: mean chroma (max - min over B, G, R per pixel) < min_chroma,
  i.e. a grayscale / manga / sketch crop;
- flat: standard deviation of the gray crop < min_std (a near-uniform crop).

The `dhash` (64-bit difference hash of the 9x8 gray thumbnail) is the
perceptual hash used for near-duplicate detection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import time

import cv2
import numpy as np

from data_tools import image_io
from illustration_gan import MAX_MEGAPIXELS  # a constant only: imports nothing heavy

Box = tuple[int, int, int, int]  # x, y, w, h in source pixels


@dataclasses.dataclass(frozen=True)
class CropSettings:
    """Everything a worker needs; picklable, identical in every process."""

    cascade_path: str
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    margin: float = 0.25
    size: int = 128
    min_face: int = 64
    min_chroma: float = 4.0
    min_std: float = 3.0
    encoding: str = "png"  # "png" or "jpg": how crops are encoded
    jpeg_quality: int = 95
    max_pixels: int = int(MAX_MEGAPIXELS * 1e6)  # one cap with the trainer's --max_megapixels
    detect_max_side: int = 4096  # 0: never downscale for detection
    thumbnail_side: int = 480  # for the preview's illustrations
    single_thread: bool = False  # cv2.setNumThreads(1) (when running in a pool)


@dataclasses.dataclass
class FaceCandidate:
    face_id: str  # stable name: source and square box
    detected_box: Box
    box: Box  # final square crop, inside the image
    encoded: bytes  # the crop, PNG or JPEG
    sha256: str  # of `encoded`
    phash: int  # 64-bit dHash
    chroma: float
    std: float
    reason: str | None  # None: passes the per-face checks


@dataclasses.dataclass
class SourceResult:
    source: str  # path relative to --input, with "/"
    status: str  # "ok" or "skipped"
    reason: str = ""  # why skipped
    width: int = 0
    height: int = 0
    file_size: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    faces: list[FaceCandidate] = dataclasses.field(default_factory=list)
    thumbnail: np.ndarray | None = None  # BGR, for the preview
    thumbnail_scale: float = 1.0
    seconds: float = 0.0


# ---------------------------------------------------------------------------
# Detection


def load_cascade(path: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ValueError(f"{path} is not a valid OpenCV cascade file")
    return cascade


def detect_faces(cascade: cv2.CascadeClassifier, bgr: np.ndarray, settings: CropSettings) -> list[Box]:
    """Detected boxes in source pixels, sorted by (y, x, w, h)."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    scale = 1.0
    longest = max(gray.shape)
    if settings.detect_max_side and longest > settings.detect_max_side:
        scale = settings.detect_max_side / longest
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    found = cascade.detectMultiScale(
        gray,
        scaleFactor=settings.scale_factor,
        minNeighbors=settings.min_neighbors,
        minSize=(settings.min_size, settings.min_size),
    )
    boxes = [tuple(int(round(v / scale)) for v in box) for box in found]
    return sorted(boxes, key=lambda b: (b[1], b[0], b[2], b[3]))


# ---------------------------------------------------------------------------
# Squares and crops


def square_box(box: Box, margin: float, image_width: int, image_height: int) -> Box:
    """The square crop for a detection: widened, then shifted inside the image."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1.0 + 2.0 * margin)))
    side = max(1, min(side, image_width, image_height))
    cx, cy = x + w / 2.0, y + h / 2.0
    left = int(np.floor(cx - side / 2.0 + 0.5))
    top = int(np.floor(cy - side / 2.0 + 0.5))
    left = min(max(left, 0), image_width - side)
    top = min(max(top, 0), image_height - side)
    return left, top, side, side


def crop_square(bgr: np.ndarray, box: Box, size: int) -> np.ndarray:
    x, y, side, _ = box
    crop = bgr[y:y + side, x:x + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def dhash(bgr: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of the 9x8 gray thumbnail brighter than its left neighbour."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def colour_stats(bgr: np.ndarray) -> tuple[float, float]:
    """(mean chroma, gray std): 0 chroma means gray; low std means a flat crop."""
    chroma = (bgr.max(axis=2).astype(np.int16) - bgr.min(axis=2)).mean()
    gray_std = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).std()
    return float(chroma), float(gray_std)


def encode(bgr: np.ndarray, encoding: str, jpeg_quality: int = 95) -> bytes:
    if encoding == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for {encoding}")
    return buf.tobytes()


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def face_id(source: str, box: Box) -> str:
    """Stable, file-system safe name of a face: readable source stem, a hash of
    the exact relative path (so `a.jpg`, `a.png`, `x/a.jpg` never collide) and
    the square box."""
    stem = _UNSAFE.sub("-", os.path.splitext(source)[0].replace("/", "__")).strip("-")[:80]
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    x, y, side, _ = box
    return f"{stem or 'image'}_{digest}_x{x}_y{y}_s{side}"


# ---------------------------------------------------------------------------
# The worker

_WORKER: dict = {}


def init_worker(settings: CropSettings) -> None:
    """Per-process set-up: one cascade per process, OpenCV threads pinned if asked."""
    if settings.single_thread:  # a pool worker: one OpenCV thread, Ctrl-C is the parent's business
        cv2.setNumThreads(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["settings"] = settings
    _WORKER["cascade"] = load_cascade(settings.cascade_path)


def process_source(input_root: str, source: str, want_thumbnail: bool = False) -> SourceResult:
    """Reads, detects and crops one illustration; never raises."""
    start = time.perf_counter()
    result = SourceResult(source=source, status="ok")
    try:
        _process(input_root, source, want_thumbnail, result)
    except image_io.UnreadableImage as e:
        result.status, result.reason = "skipped", str(e)
    except Exception as e:  # one bad file must not stop the run
        result.status, result.reason = "skipped", f"unexpected error: {type(e).__name__}: {e}"
        result.faces = []
    result.seconds = time.perf_counter() - start
    return result


def _process(input_root: str, source: str, want_thumbnail: bool, result: SourceResult) -> None:
    settings: CropSettings = _WORKER["settings"]
    path = os.path.join(input_root, *source.split("/"))
    result.file_size = os.path.getsize(path)
    loaded = image_io.read_image(path, settings.max_pixels)
    bgr = loaded.bgr
    result.height, result.width = bgr.shape[:2]
    result.notes = loaded.notes
    smallest = max(settings.min_face, settings.min_size)
    if min(result.width, result.height) < smallest:
        raise image_io.UnreadableImage(
            f"too small: {result.width}x{result.height} cannot hold a face of --min_face {smallest} px"
        )
    for detected in detect_faces(_WORKER["cascade"], bgr, settings):
        result.faces.append(_candidate(bgr, source, detected, settings))
    if want_thumbnail:
        scale = min(1.0, settings.thumbnail_side / max(bgr.shape[:2]))
        result.thumbnail = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        result.thumbnail_scale = scale


def _candidate(bgr: np.ndarray, source: str, detected: Box, settings: CropSettings) -> FaceCandidate:
    height, width = bgr.shape[:2]
    box = square_box(detected, settings.margin, width, height)
    crop = crop_square(bgr, box, settings.size)
    chroma, std = colour_stats(crop)
    reason = None
    if min(detected[2], detected[3]) < settings.min_face:
        reason = "too_small"
    elif chroma < settings.min_chroma:
        reason = "monochrome"
    elif std < settings.min_std:
        reason = "flat"
    encoded = encode(crop, settings.encoding, settings.jpeg_quality)
    return FaceCandidate(
        face_id=face_id(source, box),
        detected_box=tuple(int(v) for v in detected),
        box=box,
        encoded=encoded,
        sha256=hashlib.sha256(encoded).hexdigest(),
        phash=dhash(crop),
        chroma=round(chroma, 2),
        std=round(std, 2),
        reason=reason,
    )
