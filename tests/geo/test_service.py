"""Reverse geocoding against a table of known places, and the service's edge cases."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from tests.geo.known_places import KNOWN_PLACES
from xintu.geo import service
from xintu.geo.service import InvalidGps, Place

LEVELS = ("country_code", "province", "city", "district")
# Floors under the measured accuracy (docs/GEO.md), so a data or code change that
# loses accuracy fails here.
MINIMUM_ACCURACY = {"country_code": 1.0, "province": 1.0, "city": 0.97, "district": 0.9}


def test_known_places_accuracy_per_level() -> None:
    places = service.locate_batch([(known.latitude, known.longitude) for known in KNOWN_PLACES])
    hits: dict[str, int] = defaultdict(int)
    checked: dict[str, int] = defaultdict(int)
    misses: list[str] = []
    for known, place in zip(KNOWN_PLACES, places, strict=True):
        assert isinstance(place, Place)
        for level in LEVELS:
            expected = getattr(known, level)
            if expected is None:
                continue
            checked[level] += 1
            if getattr(place, level) == expected:
                hits[level] += 1
            else:
                misses.append(f"{known.label} {level}: {expected} != {getattr(place, level)}")
    accuracy = {level: hits[level] / checked[level] for level in LEVELS}
    print(f"\n{len(KNOWN_PLACES)} known places; accuracy per level:")  # noqa: T201
    for level in LEVELS:
        print(f"  {level}: {hits[level]}/{checked[level]} = {accuracy[level]:.1%}")  # noqa: T201
    for miss in misses:
        print(f"  miss: {miss}")  # noqa: T201
    assert len(KNOWN_PLACES) >= 60
    assert sum(known.kind == "abroad" for known in KNOWN_PLACES) >= 20
    for level, floor in MINIMUM_ACCURACY.items():
        assert accuracy[level] >= floor, (level, accuracy[level], misses)


def test_display_name_reads_province_city_district() -> None:
    assert service.locate(30.2596, 120.1500).display_name == "浙江省杭州市西湖区"


def test_display_name_of_municipality_names_the_city_once() -> None:
    assert service.locate(39.9087, 116.3975).display_name == "北京市东城区"


def test_display_name_abroad_is_country_then_city() -> None:
    assert service.locate(35.6586, 139.7454).display_name == "日本 东京"


def test_city_without_chinese_name_keeps_english() -> None:
    place = service.locate(64.1466, -21.9426)  # Reykjavík has no Han alternate name
    assert place.country == "冰岛"
    assert place.city is not None


def test_open_ocean_has_no_place() -> None:
    place = service.locate(0.0, -160.0)
    assert place.country is None
    assert place.display_name is None


def test_sea_far_off_china_is_not_given_a_district() -> None:
    place = service.locate(30.0, 124.5)  # East China Sea, 100 km offshore
    assert place.district is None


def test_point_just_offshore_gets_the_nearest_district() -> None:
    place = service.locate(36.0480, 120.3300)
    assert place.matched_by == "nearest_district"
    assert place.district == "市南区"


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [(91.0, 0.0), (-90.5, 10.0), (10.0, 180.01), (10.0, -181.0), (math.nan, 1.0), (1.0, math.inf)],
)
def test_invalid_coordinates_are_rejected(latitude: float, longitude: float) -> None:
    with pytest.raises(InvalidGps):
        service.locate(latitude, longitude)


def test_batch_keeps_order_and_marks_invalid_points() -> None:
    results = service.locate_batch([(39.9087, 116.3975), (95.0, 0.0), (35.6586, 139.7454)])
    assert isinstance(results[0], Place)
    assert results[0].district == "东城区"
    assert isinstance(results[1], InvalidGps)
    assert isinstance(results[2], Place)
    assert results[2].country == "日本"


def test_gcj02_input_is_shifted_back_to_wgs84() -> None:
    wgs = (31.2403, 121.4850)
    gcj = service.wgs84_to_gcj02(*wgs)
    # The shift in Shanghai is about 500 m, enough to cross the Huangpu into Pudong.
    assert abs(gcj[1] - wgs[1]) > 0.003
    back = service.gcj02_to_wgs84(*gcj)
    assert back == pytest.approx(wgs, abs=1e-7)
    assert service.locate(*gcj, datum="gcj02").district == "黄浦区"


def test_gcj02_matches_fast_geocn_forward_transform() -> None:
    from fast_geocn.coord import wgs84_to_gcj02

    for latitude, longitude in [(39.9, 116.4), (22.3, 114.17), (43.8, 87.6), (18.3, 109.35)]:
        expected_lon, expected_lat = wgs84_to_gcj02(longitude, latitude)
        assert service.wgs84_to_gcj02(latitude, longitude) == pytest.approx(
            (expected_lat, expected_lon), abs=1e-9
        )


def test_gcj02_is_identity_outside_china() -> None:
    assert service.gcj02_to_wgs84(48.8584, 2.2945) == (48.8584, 2.2945)


def test_chinese_name_prefers_agreed_simplified_form() -> None:
    import opencc

    to_simplified = opencc.OpenCC("tw2sp.json")
    assert service.chinese_name(["Tokyo", "东京", "東京", "東京都"], to_simplified) == "东京"
    assert service.chinese_name(["Sydney", "悉尼", "雪梨"], to_simplified) is not None
    assert service.chinese_name(["Reykjavik", "レイキャビク"], to_simplified) is None
    japanese = opencc.OpenCC("jp2t.json")
    assert service.chinese_name(["横浜", "横浜市"], to_simplified, japanese) == "横滨"


def test_geocoder_is_built_once() -> None:
    assert service.get_geocoder() is service.get_geocoder()
