"""Request and response shapes of the classification API (DESIGN §4.1)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from xintu.labels import ClientLabel


class CheckCacheRequest(BaseModel):
    image_hash: str = Field(description="SHA-256 of the original file, 64 hex characters")
    user_id: ClientLabel = Field(default=None, description="The client's label for statistics")


class BatchCheckCacheRequest(BaseModel):
    image_hashes: list[str] = Field(min_length=1, max_length=1000)
    user_id: ClientLabel = Field(default=None, description="The client's label for statistics")


class Classification(BaseModel):
    category: str
    category_name: str
    confidence: float
    description: str
    image_hash: str
    inference_method: str = Field(description="cache, remote or local")
    model: str
    near_duplicate: bool | None = Field(
        default=None,
        description="Present (true) when an upload was answered from a shared entry of the "
        "same picture under another hash (recompressed, resized, re-encoded)",
    )


class LocalClassification(Classification):
    details: dict[str, object] | None = None


class CheckCacheResponse(BaseModel):
    success: bool
    cached: bool
    from_cache: bool
    data: Classification | None
    request_id: str
    timestamp: str


class BatchCheckItem(BaseModel):
    image_hash: str
    cached: bool
    data: Classification | None


class BatchCheckCacheResponse(BaseModel):
    success: bool
    total: int
    cached_count: int
    items: list[BatchCheckItem]
    request_id: str
    timestamp: str


class ClassifyResponse(BaseModel):
    success: bool
    data: Classification
    from_cache: bool
    processing_time_ms: float
    request_id: str
    timestamp: str


class LocalClassifyResponse(ClassifyResponse):
    data: LocalClassification


class BatchItem(BaseModel):
    index: int
    filename: str | None
    success: bool
    data: Classification | None
    error: str | None
    error_code: str | None
    from_cache: bool
    processing_time_ms: float


class BatchClassifyResponse(BaseModel):
    success: bool
    total: int
    success_count: int
    fail_count: int
    items: list[BatchItem]
    request_id: str
    total_processing_time_ms: float
    timestamp: str


class CategoryInfo(BaseModel):
    category: str
    category_name: str
    description: str


class CategoriesResponse(BaseModel):
    success: bool
    categories: list[CategoryInfo]
