"""Check that bytes are a supported, decodable image within the pixel limit."""

from __future__ import annotations

import hashlib
import io
import re
import warnings

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from xintu.errors import InvalidHash, InvalidImage, UnsupportedMediaType
from xintu.inference.base import PreparedImage

pillow_heif.register_heif_opener()
# We enforce our own pixel limit before decoding; Pillow's warning/error would fire first.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

_HASH_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
_MIME = {
    "jpeg": "image/jpeg",
    "mpo": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "heif": "image/heif",
}
_EXIF_MAKE = 0x010F
_EXIF_MODEL = 0x0110


def normalize_hash(value: str) -> str:
    """A SHA-256 hex digest in lowercase, or 422 ``invalid_hash``."""
    if not isinstance(value, str) or not _HASH_RE.match(value.strip()):
        raise InvalidHash()
    return value.strip().lower()


def sniff_format(data: bytes) -> str | None:
    """The image format by magic bytes (never by filename or Content-Type)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Cheap checks without decoding pixels: known type, readable header, pixel limit.
    Returns the width and height."""
    if sniff_format(data) is None:
        raise UnsupportedMediaType()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = Image.open(io.BytesIO(data)).size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImage(f"The image cannot be decoded: {type(exc).__name__}") from exc
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise InvalidImage(f"The image has {width}x{height} pixels; the limit is {max_pixels}")
    return width, height


def header_pixels(data: bytes) -> int:
    """The pixel count a header announces; 0 when it cannot be read (decoding fails fast)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = Image.open(io.BytesIO(data)).size
    except Exception:  # noqa: BLE001 - whatever the reason, the decoder will report it
        return 0
    return max(0, width) * max(0, height)


def prepare_image(data: bytes, max_pixels: int) -> PreparedImage:
    """Validate and fully decode ``data``. Blocking: call it in a worker thread."""
    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedMediaType()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise InvalidImage(
                    f"The image has {width}x{height} pixels; the limit is {max_pixels} pixels"
                )
            if image.format == "MPO":
                image_format = "mpo"
            image.load()
            has_camera_exif = _has_camera_exif(image)
    except (InvalidImage, UnsupportedMediaType):
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImage(f"The image cannot be decoded: {type(exc).__name__}") from exc
    except Image.DecompressionBombError as exc:  # pragma: no cover - limit disabled above
        raise InvalidImage(str(exc)) from exc
    return PreparedImage(
        data=data,
        sha256=sha256_hex(data),
        format=image_format,
        mime=_MIME[image_format],
        width=width,
        height=height,
        image=image,
        has_camera_exif=has_camera_exif,
    )


def _has_camera_exif(image: Image.Image) -> bool:
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF is common and harmless here
        return False
    return bool(exif.get(_EXIF_MAKE) or exif.get(_EXIF_MODEL))
