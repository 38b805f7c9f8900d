"""GPS and capture time from EXIF in JPEG, HEIC, PNG and WebP."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.geo.images import dms, gps_tags, image_with_exif
from xintu.images.exif import parse_capture_time, parse_gps, read_exif

WEST_LAKE = (30.2596, 120.15)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_read_exif_finds_gps_in_each_format(image_format: str) -> None:
    data = image_with_exif(image_format, gps_tags(*WEST_LAKE))
    info = read_exif(data)
    assert info.gps_error is None
    assert info.latitude == pytest.approx(WEST_LAKE[0], abs=1e-6)
    assert info.longitude == pytest.approx(WEST_LAKE[1], abs=1e-6)


def test_southern_and_western_references_make_negative_degrees() -> None:
    info = read_exif(image_with_exif("JPEG", gps_tags(-22.9068, -43.1729)))
    assert info.latitude == pytest.approx(-22.9068, abs=1e-6)
    assert info.longitude == pytest.approx(-43.1729, abs=1e-6)


def test_image_without_exif_has_no_gps() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    info = read_exif(buffer.getvalue())
    assert not info.has_gps
    assert info.gps_error is None


def test_not_an_image_has_no_gps() -> None:
    assert not read_exif(b"not an image at all").has_gps


def test_exif_without_gps_ifd_has_no_gps_but_a_capture_time() -> None:
    info = read_exif(image_with_exif("JPEG", exif_tags={0x9003: "2024:05:01 10:11:12"}))
    assert not info.has_gps
    assert info.captured_at == datetime(2024, 5, 1, 10, 11, 12)


def test_zero_denominator_is_invalid() -> None:
    tags = gps_tags(*WEST_LAKE)
    tags[2] = (IFDRational(30, 1), IFDRational(15, 1), IFDRational(1, 0))
    info = read_exif(image_with_exif("JPEG", tags))
    assert not info.has_gps
    assert info.gps_error is not None
    assert "zero denominator" in info.gps_error


def test_missing_longitude_is_invalid() -> None:
    tags = gps_tags(*WEST_LAKE)
    del tags[4]
    with pytest.raises(ValueError, match="incomplete"):
        parse_gps(tags)


def test_missing_reference_is_invalid() -> None:
    tags = gps_tags(*WEST_LAKE)
    del tags[1]
    with pytest.raises(ValueError, match="GPSLatitudeRef"):
        parse_gps(tags)


def test_two_part_coordinate_is_invalid() -> None:
    tags = gps_tags(*WEST_LAKE)
    tags[2] = (IFDRational(30, 1), IFDRational(15, 1))
    with pytest.raises(ValueError, match="degrees, minutes and seconds"):
        parse_gps(tags)


@pytest.mark.parametrize(
    ("index", "parts"),
    [
        (2, (IFDRational(91, 1), IFDRational(0, 1), IFDRational(0, 1))),
        (4, (IFDRational(181, 1), IFDRational(0, 1), IFDRational(0, 1))),
        (2, (IFDRational(30, 1), IFDRational(60, 1), IFDRational(0, 1))),
        (4, (IFDRational(120, 1), IFDRational(0, 1), IFDRational(75, 1))),
    ],
)
def test_out_of_range_parts_are_invalid(index: int, parts: tuple[IFDRational, ...]) -> None:
    tags = gps_tags(*WEST_LAKE)
    tags[index] = parts
    with pytest.raises(ValueError, match=r"beyond|below 60"):
        parse_gps(tags)


def test_bad_reference_letter_is_invalid() -> None:
    tags = gps_tags(*WEST_LAKE)
    tags[3] = "X"
    with pytest.raises(ValueError, match="E or W"):
        parse_gps(tags)


def test_zero_zero_position_means_no_fix() -> None:
    assert parse_gps(gps_tags(0.0, 0.0)) is None


def test_plain_numbers_and_pairs_are_accepted() -> None:
    tags = {1: "N", 2: (30, 15, 33.6), 3: "E", 4: ((120, 1), (9, 1), (0, 1))}
    assert parse_gps(tags) == pytest.approx((30.2593333, 120.15), abs=1e-6)


def test_capture_time_uses_offset_tag() -> None:
    when = parse_capture_time({0x9003: "2024:05:01 10:11:12", 0x9011: "+08:00"})
    assert when == datetime(2024, 5, 1, 10, 11, 12, tzinfo=timezone(timedelta(hours=8)))


def test_capture_time_offset_from_gps_clock() -> None:
    gps = {
        29: "2024:05:01",
        7: (IFDRational(2, 1), IFDRational(11, 1), IFDRational(9, 1)),
    }
    when = parse_capture_time({0x9003: "2024:05:01 10:11:12"}, None, gps)
    assert when is not None
    assert when.utcoffset() == timedelta(hours=8)


def test_capture_time_falls_back_to_image_datetime() -> None:
    assert parse_capture_time({}, "2023:01:02 03:04:05") == datetime(2023, 1, 2, 3, 4, 5)


def test_garbage_capture_time_is_none() -> None:
    assert parse_capture_time({0x9003: "0000:00:00 00:00:00"}) is None


def test_dms_helper_round_trips() -> None:
    degrees, minutes, seconds = dms(30.2596)
    assert float(degrees) + float(minutes) / 60 + float(seconds) / 3600 == pytest.approx(
        30.2596, abs=1e-6
    )
