"""Offline edits with OpenCV and Pillow: always available, nothing downloaded.

Every function takes the decoded upload and its params and returns the encoded result.
They block (pure CPU): call them in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from xintu.edit.operations import ID_PHOTO_SIZES

Pixels = NDArray[Any]
# Large photos are edited at this longest side; edits of 40-megapixel images would take
# seconds each and nobody looks at a cartoon at full sensor resolution.
MAX_SIDE = 2048
_JPEG_QUALITY = 92


@lru_cache(maxsize=1)
def _face_detector() -> cv2.CascadeClassifier | None:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless."""
    haarcascades = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not haarcascades:
        return None
    path = Path(haarcascades) / "haarcascade_frontalface_default.xml"
    if not path.exists():
        return None
    detector = cv2.CascadeClassifier(str(path))
    return None if detector.empty() else detector


def face_detector_available() -> bool:
    return _face_detector() is not None


def _to_bgr(image: Image.Image) -> Pixels:
    image = ImageOps.exif_transpose(image)
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    rgb = np.asarray(image, dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint8)


def _encode_jpeg(bgr: Pixels, dpi: int | None = None) -> bytes:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    buffer = io.BytesIO()
    extra: dict[str, Any] = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(rgb).save(buffer, "JPEG", quality=_JPEG_QUALITY, **extra)
    return buffer.getvalue()


def enhance(image: Image.Image, params: dict[str, Any]) -> bytes:
    """Local contrast (CLAHE on lightness), a little saturation and an unsharp mask."""
    strength = float(params["strength"])
    bgr = _to_bgr(image)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    lightness, a_channel, b_channel = cv2.split(lab)
    # Stretch the lightness range first, then equalise locally.
    low, high = np.percentile(lightness, (1, 99))
    if high > low:
        stretched = np.clip((lightness.astype(np.float32) - low) * 255.0 / (high - low), 0, 255)
        lightness = stretched.astype(np.uint8)
    clahe = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(8, 8))
    lightness = clahe.apply(lightness)
    enhanced = cv2.cvtColor(cv2.merge((lightness, a_channel, b_channel)), cv2.COLOR_LAB2BGR)
    hsv = cv2.cvtColor(enhanced, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.25, 0, 255)
    enhanced = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    blurred = cv2.GaussianBlur(enhanced, (0, 0), 2.0)
    sharpened = cv2.addWeighted(enhanced, 1.6, blurred, -0.6, 0)
    # ``strength`` blends between the photo as it was and the full enhancement.
    sharpened = cv2.addWeighted(sharpened, strength, bgr, 1.0 - strength, 0)
    return _encode_jpeg(sharpened.astype(np.uint8))


def cartoon(image: Image.Image, params: dict[str, Any]) -> bytes:
    """Edge-preserving smoothing, colours quantised to ``levels`` per channel, ink edges."""
    levels = int(params["levels"])
    bgr = _to_bgr(image)
    smooth = bgr
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 9, 75, 75)
    step = 256 // levels
    quantised = (smooth // step) * step + step // 2
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    gray = cv2.medianBlur(gray, 7)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    result = cv2.bitwise_and(quantised.astype(np.uint8), quantised.astype(np.uint8), mask=edges)
    return _encode_jpeg(result)


def sketch(image: Image.Image, params: dict[str, Any]) -> bytes:
    """Pencil sketch: the grey image colour-dodged with its blurred negative."""
    blur = float(params["blur"])
    gray = cv2.cvtColor(_to_bgr(image), cv2.COLOR_BGR2GRAY)
    inverted_blur = cv2.GaussianBlur(255 - gray, (0, 0), blur)
    drawn = cv2.divide(gray, 255 - inverted_blur, scale=256.0)
    return _encode_jpeg(cv2.cvtColor(drawn, cv2.COLOR_GRAY2BGR))


def find_face(bgr: Pixels) -> tuple[int, int, int, int] | None:
    """The largest frontal face as (x, y, w, h), or None."""
    detector = _face_detector()
    if detector is None:
        return None
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    side = max(24, min(gray.shape[:2]) // 12)
    faces, neighbours = detector.detectMultiScale2(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
    )
    if len(faces) == 0:
        return None
    # The best-supported detection (most overlapping hits), then the largest.
    best = max(
        range(len(faces)),
        key=lambda i: (int(neighbours[i]), int(faces[i][2]) * int(faces[i][3])),
    )
    x, y, w, h = faces[best]
    return int(x), int(y), int(w), int(h)


def id_photo_box(
    image_size: tuple[int, int], face: tuple[int, int, int, int] | None, aspect: float
) -> tuple[float, float, float, float]:
    """The crop (left, top, width, height) for an ID photo of ``aspect`` = width / height.

    With a face: the face is centred horizontally and sits a little above the middle;
    the detector's box (brows to mouth, about 60% of the head) fills 38% of the height,
    which puts the whole head at about two thirds of it, as ID photo rules ask. Without: the
    largest centred crop of that aspect.
    """
    width, height = image_size
    if face is None:
        crop_h = min(float(height), width / aspect)
        crop_w = crop_h * aspect
        return (width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h
    x, y, w, h = face
    crop_h = h / 0.38
    crop_w = crop_h * aspect
    centre_x = x + w / 2
    face_centre_y = y + h / 2
    top = face_centre_y - crop_h * 0.45
    return centre_x - crop_w / 2, top, crop_w, crop_h


def id_photo(image: Image.Image, params: dict[str, Any]) -> bytes:
    """A face-centred crop at 1-inch (295x413) or 2-inch (413x579), 300 dpi.

    Parts of the crop outside the photo are filled with the replicated border, so a face
    near an edge still ends up centred.
    """
    target_w, target_h = ID_PHOTO_SIZES[str(params["size"])]
    bgr = _to_bgr(image)
    height, width = bgr.shape[:2]
    left, top, crop_w, crop_h = id_photo_box((width, height), find_face(bgr), target_w / target_h)
    scale = target_w / crop_w
    # One affine warp crops, pads and scales in a single resampling step.
    matrix = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], dtype=np.float32)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    result = cv2.warpAffine(
        bgr, matrix, (target_w, target_h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
    )
    return _encode_jpeg(result.astype(np.uint8), dpi=300)


LOCAL_EDITS: dict[str, Callable[[Image.Image, dict[str, Any]], bytes]] = {
    "enhance": enhance,
    "cartoon": cartoon,
    "sketch": sketch,
    "id_photo": id_photo,
}


def run_local_edit(operation_id: str, image: Image.Image, params: dict[str, Any]) -> bytes:
    """Blocking: run in a thread."""
    return LOCAL_EDITS[operation_id](image, params)
