"""GPS position and capture time from an image's EXIF (JPEG, HEIC/HEIF, PNG, WebP).

Pure functions: no web, no database, nothing written anywhere. Opening an image with
Pillow reads its header and metadata only; pixels are decoded only for a PNG whose
``eXIf`` chunk follows the image data, and then only within the pixel limit.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from PIL import Image, UnidentifiedImageError

# Importing validation registers the HEIF opener with Pillow.
from xintu.images.validation import sniff_format

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET_TIME = 0x9010
_GPS_LATITUDE_REF = 1
_GPS_LATITUDE = 2
_GPS_LONGITUDE_REF = 3
_GPS_LONGITUDE = 4
_GPS_TIMESTAMP = 7
_GPS_DATESTAMP = 29

_EXIF_FORMATS = {"jpeg", "mpo", "png", "webp", "heif"}


class GpsError(ValueError):
    """The image carries GPS tags that do not describe a valid position."""


@dataclass(frozen=True, slots=True)
class ExifInfo:
    """What an image's EXIF says about where and when it was taken.

    ``latitude``/``longitude`` are WGS-84 degrees (what GPS receivers record), both set or
    both None. ``gps_error`` explains why GPS tags that are present were rejected.
    """

    latitude: float | None = None
    longitude: float | None = None
    gps_error: str | None = None
    captured_at: datetime | None = None

    @property
    def has_gps(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def read_exif(data: bytes, *, max_pixels: int = 40_000_000) -> ExifInfo:
    """GPS position and capture time of an encoded image; an empty ExifInfo when absent.

    Blocking: call it in a worker thread. Never raises for bad or missing metadata.
    """
    if sniff_format(data) not in _EXIF_FORMATS:
        return ExifInfo()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if "exif" not in image.info and image.format == "PNG":
                    # A PNG's eXIf chunk may follow the pixels: Pillow finds it on load.
                    if width * height > max_pixels:
                        return ExifInfo()
                    image.load()
                exif = image.getexif()
                gps_tags = dict(exif.get_ifd(_GPS_IFD))
                exif_tags = dict(exif.get_ifd(_EXIF_IFD))
                base_datetime = exif.get(_DATETIME)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError):
        return ExifInfo()
    except Exception:  # noqa: BLE001 - a malformed EXIF block must never fail a request
        return ExifInfo()
    return parse_exif_tags(gps_tags, exif_tags, base_datetime)


def parse_exif_tags(
    gps_tags: dict[int, Any], exif_tags: dict[int, Any], base_datetime: Any = None
) -> ExifInfo:
    """Interpret raw GPS and EXIF IFD tags (as Pillow returns them)."""
    latitude: float | None = None
    longitude: float | None = None
    gps_error: str | None = None
    try:
        position = parse_gps(gps_tags)
    except GpsError as exc:
        gps_error = str(exc)
    else:
        if position is not None:
            latitude, longitude = position
    captured_at = parse_capture_time(exif_tags, base_datetime, gps_tags)
    return ExifInfo(latitude, longitude, gps_error, captured_at)


def parse_gps(gps_tags: dict[int, Any]) -> tuple[float, float] | None:
    """(latitude, longitude) in signed decimal degrees; None when there is no position.

    Raises GpsError for a position that is present but broken: a missing coordinate or
    reference, a zero denominator, minutes or seconds outside [0, 60), a reference other
    than N/S or E/W, or degrees out of range.
    """
    keys = (_GPS_LATITUDE_REF, _GPS_LATITUDE, _GPS_LONGITUDE_REF, _GPS_LONGITUDE)
    present = [key in gps_tags and gps_tags[key] not in (None, b"", "", ()) for key in keys]
    if not any(present):
        return None
    if not all(present):
        missing = [
            name
            for name, ok in zip(
                ("GPSLatitudeRef", "GPSLatitude", "GPSLongitudeRef", "GPSLongitude"),
                present,
                strict=True,
            )
            if not ok
        ]
        raise GpsError(f"GPS position is incomplete: missing {', '.join(missing)}")
    latitude = _degrees(gps_tags[_GPS_LATITUDE], "GPSLatitude")
    longitude = _degrees(gps_tags[_GPS_LONGITUDE], "GPSLongitude")
    latitude_ref = _reference(gps_tags[_GPS_LATITUDE_REF])
    longitude_ref = _reference(gps_tags[_GPS_LONGITUDE_REF])
    if latitude_ref not in ("N", "S"):
        raise GpsError(f"GPSLatitudeRef must be N or S, not {latitude_ref!r}")
    if longitude_ref not in ("E", "W"):
        raise GpsError(f"GPSLongitudeRef must be E or W, not {longitude_ref!r}")
    if latitude > 90:
        raise GpsError(f"Latitude {latitude} is beyond 90 degrees")
    if longitude > 180:
        raise GpsError(f"Longitude {longitude} is beyond 180 degrees")
    if latitude_ref == "S":
        latitude = -latitude
    if longitude_ref == "W":
        longitude = -longitude
    if latitude == 0 and longitude == 0:
        # Receivers without a fix write zeros; 0°N 0°E is open sea, never a photo spot.
        return None
    return round(float(latitude), 7), round(float(longitude), 7)


def _reference(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise GpsError(f"GPS reference has the wrong type: {type(value).__name__}")
    return value.strip("\x00 ").upper()


def _degrees(value: Any, name: str) -> Fraction:
    """Degrees, minutes and seconds as one exact value in degrees."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if len(parts) != 3:
        raise GpsError(f"{name} must have degrees, minutes and seconds, got {len(parts)} parts")
    degrees, minutes, seconds = (_rational(part, name) for part in parts)
    if minutes >= 60 or seconds >= 60:
        raise GpsError(f"{name} minutes and seconds must be below 60")
    return degrees + minutes / 60 + seconds / 3600


def _rational(value: Any, name: str) -> Fraction:
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if isinstance(value, tuple) and len(value) == 2:
        numerator, denominator = value
    if (
        isinstance(numerator, int)
        and isinstance(denominator, int)
        and not isinstance(value, (bool, float))
    ):
        if denominator == 0:
            raise GpsError(f"{name} has a zero denominator")
        result = Fraction(numerator, denominator)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise GpsError(f"{name} is not a finite number")
        result = Fraction(value)
    else:
        raise GpsError(f"{name} has the wrong type: {type(value).__name__}")
    if result < 0:
        raise GpsError(f"{name} is negative; the reference gives the hemisphere")
    return result


def parse_capture_time(
    exif_tags: dict[int, Any], base_datetime: Any = None, gps_tags: dict[int, Any] | None = None
) -> datetime | None:
    """When the photo was taken, with its UTC offset where the EXIF allows one.

    The offset comes from OffsetTimeOriginal (EXIF 2.31) or, failing that, from the GPS
    UTC time stamp compared with the local clock; without either the time stays naive
    (camera local time, zone unknown).
    """
    local: datetime | None = None
    offset_tag = _OFFSET_TIME
    for tag, tag_offset in (
        (_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL),
        (_DATETIME_DIGITIZED, _OFFSET_TIME),
    ):
        local = _exif_datetime(exif_tags.get(tag))
        if local is not None:
            offset_tag = tag_offset
            break
    if local is None:
        local = _exif_datetime(base_datetime)
    if local is None:
        return None
    offset = _exif_offset(exif_tags.get(offset_tag))
    if offset is None and gps_tags:
        offset = _offset_from_gps_time(local, gps_tags)
    return local.replace(tzinfo=offset) if offset is not None else local


def _exif_datetime(value: Any) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 ")
    for pattern in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            parsed = datetime.strptime(text[:19], pattern)
        except ValueError:
            continue
        return parsed if parsed.year >= 1900 else None
    return None


def _exif_offset(value: Any) -> timezone | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 ")
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _offset_from_gps_time(local: datetime, gps_tags: dict[int, Any]) -> timezone | None:
    date_text = gps_tags.get(_GPS_DATESTAMP)
    time_parts = gps_tags.get(_GPS_TIMESTAMP)
    if not isinstance(date_text, str) or not isinstance(time_parts, (tuple, list)):
        return None
    if len(time_parts) != 3:
        return None
    try:
        day = datetime.strptime(date_text.strip("\x00 "), "%Y:%m:%d")
        seconds = sum(
            float(_rational(part, "GPSTimeStamp")) * scale
            for part, scale in zip(time_parts, (3600, 60, 1), strict=True)
        )
    except (ValueError, GpsError):
        return None
    utc = day + timedelta(seconds=seconds)
    # Zones are whole quarter hours; the two clocks may differ by a few minutes.
    quarters = round((local - utc).total_seconds() / 900)
    if abs(quarters) > 14 * 4:
        return None
    return UTC if quarters == 0 else timezone(timedelta(minutes=15 * quarters))
