"""The places API through HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL.TiffImagePlugin import IFDRational

from tests.geo.images import gps_tags, image_with_exif
from tests.geo.known_places import KNOWN_PLACES
from xintu.config import Settings
from xintu.main import create_app

LOCATE = "/api/v1/geo/locate"
BATCH = "/api/v1/geo/locate/batch"
PLACE_FIELDS = {
    "latitude",
    "longitude",
    "country",
    "country_code",
    "province",
    "city",
    "district",
    "display_name",
    "source",
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'xintu.db'}", data_dir=tmp_path
    )
    app = create_app(settings)
    # The lifespan migrates the fresh database: until then the API answers 503.
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_locate_json_point(client: httpx.AsyncClient) -> None:
    response = await client.post(LOCATE, json={"latitude": 30.2596, "longitude": 120.15})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert PLACE_FIELDS <= body.keys()
    assert body["display_name"] == "浙江省杭州市西湖区"
    assert body["country"] == "中国"
    assert body["country_code"] == "CN"
    assert body["source"] == "input"
    assert response.headers["x-request-id"]


async def test_locate_gcj02_point(client: httpx.AsyncClient) -> None:
    response = await client.post(
        LOCATE, json={"latitude": 31.23837, "longitude": 121.48953, "datum": "gcj02"}
    )
    assert response.json()["district"] == "黄浦区"


async def test_locate_photo_reads_exif(client: httpx.AsyncClient) -> None:
    data = image_with_exif(
        "JPEG",
        gps_tags(35.6586, 139.7454),
        {0x9003: "2024:05:01 10:11:12", 0x9011: "+09:00"},
    )
    response = await client.post(LOCATE, files={"file": ("t.jpg", data, "image/jpeg")})
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "exif"
    assert body["display_name"] == "日本 东京"
    assert body["captured_at"] == "2024-05-01T10:11:12+09:00"
    assert body["latitude"] == pytest.approx(35.6586, abs=1e-6)


async def test_locate_heic_photo(client: httpx.AsyncClient) -> None:
    data = image_with_exif("HEIF", gps_tags(22.2935, 114.1694))
    response = await client.post(LOCATE, files={"file": ("t.heic", data, "image/heic")})
    assert response.status_code == 200
    assert response.json()["country_code"] == "HK"


async def test_photo_without_gps_is_no_gps(client: httpx.AsyncClient) -> None:
    data = image_with_exif("JPEG", exif_tags={0x9003: "2024:05:01 10:11:12"})
    response = await client.post(LOCATE, files={"file": ("t.jpg", data, "image/jpeg")})
    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "code": "no_gps",
        "detail": "The image has no GPS position in its EXIF",
    }


async def test_photo_with_broken_gps_is_invalid_gps(client: httpx.AsyncClient) -> None:
    tags = gps_tags(30.0, 120.0)
    tags[2] = (IFDRational(30, 1), IFDRational(0, 0), IFDRational(0, 1))
    data = image_with_exif("PNG", tags)
    response = await client.post(LOCATE, files={"file": ("t.png", data, "image/png")})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_gps"


async def test_non_image_upload_is_unsupported(client: httpx.AsyncClient) -> None:
    response = await client.post(LOCATE, files={"file": ("t.txt", b"hello", "text/plain")})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_multipart_without_file_is_missing_image(client: httpx.AsyncClient) -> None:
    response = await client.post(LOCATE, files={"other": (None, b"x")})
    assert response.status_code == 422
    assert response.json()["code"] == "missing_image"


@pytest.mark.parametrize(
    "point", [{"latitude": 91, "longitude": 0}, {"latitude": 0, "longitude": -180.5}]
)
async def test_out_of_range_point_is_invalid_gps(
    client: httpx.AsyncClient, point: dict[str, float]
) -> None:
    response = await client.post(LOCATE, json=point)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_gps"


@pytest.mark.parametrize(
    "content",
    [b'{"latitude": "north", "longitude": 1}', b'{"latitude": 1}', b"{not json", b"[]"],
)
async def test_bad_body_is_validation_error(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        LOCATE, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_batch_answers_in_order(client: httpx.AsyncClient) -> None:
    points = [{"latitude": k.latitude, "longitude": k.longitude} for k in KNOWN_PLACES[:5]]
    points.insert(2, {"latitude": 123.0, "longitude": 0.0})
    response = await client.post(BATCH, json={"points": points})
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 6
    assert items[0]["district"] == "东城区"
    assert items[2]["error"] == "invalid_gps"
    assert items[2]["display_name"] is None
    assert [item["latitude"] for item in items] == [p["latitude"] for p in points]
    assert all(item["error"] is None for i, item in enumerate(items) if i != 2)


async def test_batch_of_1000_is_fast(client: httpx.AsyncClient) -> None:
    await client.post(LOCATE, json={"latitude": 30.0, "longitude": 120.0})  # warm up
    points = [
        {"latitude": 18.0 + (i * 0.0317) % 35.0, "longitude": 75.0 + (i * 0.0613) % 60.0}
        for i in range(1000)
    ]
    started = time.perf_counter()
    response = await client.post(BATCH, json={"points": points})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1000
    assert elapsed < 1.0


@pytest.mark.parametrize("count", [0, 1001])
async def test_batch_size_is_limited(client: httpx.AsyncClient, count: int) -> None:
    points = [{"latitude": 30.0, "longitude": 120.0}] * count
    response = await client.post(BATCH, json={"points": points})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_openapi_lists_geo_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert LOCATE in paths
    assert BATCH in paths
