"""Response shapes of the statistics API (DESIGN §4.2); every answer is ``{"success", "data"}``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Today(BaseModel):
    date: str = Field(description="today in XINTU_TIMEZONE, YYYY-MM-DD")
    total_requests: int
    cache_hits: int
    cache_hit_rate: float
    remote_calls: int
    local_calls: int
    failed_requests: int
    unique_users: int
    avg_processing_ms: float
    p95_processing_ms: float
    cost: float
    cost_saved: float
    currency: str


class DailyHitRate(BaseModel):
    date: str
    total_requests: int
    cache_hits: int
    hit_rate: float


class CacheEfficiency(BaseModel):
    days: int
    total_requests: int
    cache_hits: int
    hit_rate: float
    uploads_avoided: int
    bandwidth_saved_bytes: int
    remote_calls_avoided: int = Field(
        description="hits on answers that cost a remote call (not local or pre-check ones)"
    )
    cost: float = Field(description="what the remote calls of the window cost")
    cost_saved: float = Field(description="remote_calls_avoided × the mean remote call cost")
    savings_rate: float = Field(description="cost_saved / (cost + cost_saved)")
    currency: str
    daily: list[DailyHitRate]


class CategoryCount(BaseModel):
    category: str
    category_name: str
    count: int
    images: int
    ratio: float


class CategoryDistribution(BaseModel):
    days: int
    total: int
    categories: list[CategoryCount]


class TopUser(BaseModel):
    user_id: str | None
    nickname: str | None
    requests: int
    cache_hits: int
    remote_calls: int
    last_active: str | None


class TopUsers(BaseModel):
    days: int
    users: list[TopUser]


class ModelCost(BaseModel):
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float
    cache_hits: int
    cost_saved: float
    input_price_per_1k: float | None
    output_price_per_1k: float | None


class DailyCost(BaseModel):
    date: str
    calls: int
    cost: float
    cache_hits: int
    cost_saved: float


class Costs(BaseModel):
    days: int
    currency: str
    total_calls: int
    total_cost: float
    cache_hits: int
    remote_calls_avoided: int = Field(
        description="hits on answers that cost a remote call (not local or pre-check ones)"
    )
    cost_saved: float = Field(description="the sum of the providers' cost_saved")
    cost_without_cache: float = Field(description="total_cost + cost_saved")
    savings_rate: float = Field(description="cost_saved / cost_without_cache")
    mean_call_cost: float
    providers: list[ModelCost]
    daily: list[DailyCost]


class MethodPerformance(BaseModel):
    inference_method: str
    count: int
    success_rate: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


class Performance(BaseModel):
    hours: int
    total: int
    success_rate: float
    methods: list[MethodPerformance]


class TodayResponse(BaseModel):
    success: bool
    data: Today


class CacheEfficiencyResponse(BaseModel):
    success: bool
    data: CacheEfficiency


class CategoryDistributionResponse(BaseModel):
    success: bool
    data: CategoryDistribution


class TopUsersResponse(BaseModel):
    success: bool
    data: TopUsers


class CostsResponse(BaseModel):
    success: bool
    data: Costs


class PerformanceResponse(BaseModel):
    success: bool
    data: Performance
