"""Request and response bodies of the places API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH_POINTS = 1000


class PointIn(BaseModel):
    """A position. Range is checked by the service (422 ``invalid_gps``), not here."""

    model_config = ConfigDict(extra="ignore")

    latitude: float
    longitude: float
    datum: Literal["wgs84", "gcj02"] = Field(
        default="wgs84",
        description="wgs84 (GPS, EXIF) or gcj02 (coordinates read off Amap or Tencent maps)",
    )


class BatchIn(BaseModel):
    points: list[PointIn] = Field(min_length=1, max_length=MAX_BATCH_POINTS)


class PlaceOut(BaseModel):
    latitude: float
    longitude: float
    country: str | None
    country_code: str | None
    province: str | None
    city: str | None
    district: str | None
    display_name: str | None


class LocateOut(PlaceOut):
    success: Literal[True] = True
    source: Literal["exif", "input"]
    captured_at: datetime | None = Field(
        default=None, description="Capture time from the file's EXIF (source exif only)"
    )


class BatchItemOut(PlaceOut):
    source: Literal["input"] = "input"
    error: str | None = Field(
        default=None, description="invalid_gps for a point that is not a valid position"
    )


class BatchOut(BaseModel):
    success: Literal[True] = True
    items: list[BatchItemOut]
