"""Images with GPS EXIF, made in memory for the tests."""

from __future__ import annotations

import io
from typing import Any

from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

import xintu.images.validation  # noqa: F401  (registers the HEIF plugin)


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def gps_tags(latitude: float, longitude: float) -> dict[int, Any]:
    return {
        1: "N" if latitude >= 0 else "S",
        2: dms(abs(latitude)),
        3: "E" if longitude >= 0 else "W",
        4: dms(abs(longitude)),
    }


def image_with_exif(
    image_format: str,
    gps: dict[int, Any] | None = None,
    exif_tags: dict[int, Any] | None = None,
) -> bytes:
    exif = Image.Exif()
    if gps is not None:
        exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
    if exif_tags:
        exif.get_ifd(ExifTags.IFD.Exif).update(exif_tags)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 80, 40)).save(buffer, image_format, exif=exif.tobytes())
    return buffer.getvalue()
