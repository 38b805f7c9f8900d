"""Settings: every ``XINTU_*`` variable of DESIGN §3, with laptop-safe defaults."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# HS256 keys shorter than the hash output are guessable offline from any issued token.
_MIN_JWT_SECRET_BYTES = 32


class InferenceMode(StrEnum):
    hybrid = "hybrid"
    remote_only = "remote_only"
    local_only = "local_only"


class ModelPrice(BaseModel):
    """CNY per 1,000 tokens."""

    input: float
    output: float


# Public list prices (CNY / 1k tokens) at the time of writing; override with XINTU_MODEL_PRICES.
DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    "qwen-vl-plus": ModelPrice(input=0.0015, output=0.0045),
    "qwen-vl-max": ModelPrice(input=0.003, output=0.009),
    "gpt-4o-mini": ModelPrice(input=0.0011, output=0.0044),
}


class Product(BaseModel):
    """A credit pack (``credits``) or a membership plan (``member_days``), priced in fen."""

    id: str = Field(min_length=1, max_length=64)
    name: str
    kind: Literal["credits", "membership"]
    amount_fen: int = Field(gt=0)
    credits: int = Field(default=0, ge=0)
    member_days: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _grants_something(self) -> Product:
        if self.kind == "credits" and self.credits <= 0:
            raise ValueError(f"credit pack {self.id!r} must grant credits")
        if self.kind == "membership" and self.member_days <= 0:
            raise ValueError(f"membership plan {self.id!r} must grant member_days")
        return self


DEFAULT_PRODUCTS: list[Product] = [
    Product(id="credits_100", name="100 次识别", kind="credits", amount_fen=600, credits=100),
    Product(id="credits_500", name="500 次识别", kind="credits", amount_fen=2500, credits=500),
    Product(id="member_month", name="月度会员", kind="membership", amount_fen=1500, member_days=30),
    Product(
        id="member_year", name="年度会员", kind="membership", amount_fen=12800, member_days=365
    ),
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="XINTU_", env_file=".env", extra="ignore", validate_default=True
    )

    environment: str = "development"
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000

    # Storage
    database_url: str = "sqlite+aiosqlite:///./data/xintu.db"
    redis_url: str | None = None

    # Inference
    inference_mode: InferenceMode = InferenceMode.hybrid
    providers: Annotated[list[str], NoDecode] = ["dashscope", "openai"]
    dashscope_api_key: str | None = None
    dashscope_base_url: str = "https://dashscope.aliyuncs.com/compatible-mode/v1"
    # Model names are stored in request_log.model and the cache's model column (64).
    dashscope_model: str = Field(default="qwen-vl-plus", max_length=64)
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = Field(default="gpt-4o-mini", max_length=64)
    remote_timeout_s: float = 15.0
    remote_max_concurrency: int = 100
    circuit_failure_threshold: int = 5
    circuit_cooldown_s: float = 30.0
    model_prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))
    local_model_enabled: bool = True

    # Uploads
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    batch_max: int = 20
    batch_concurrency: int = 8

    # Cache
    cache_quorum: int = 2
    memory_cache_entries: int = 100_000
    memory_cache_ttl_s: float = 300.0
    redis_cache_ttl_s: int = 7 * 24 * 3600

    # Rate limits ("0" disables)
    rate_limit_classify: str = "120/minute"
    rate_limit_check: str = "1200/minute"

    # Secrets: generated into data_dir on first start when unset
    jwt_secret: str | None = None
    data_key: str | None = None
    access_token_expire_minutes: int = 7 * 24 * 60

    guest_login: bool = True
    billing_enabled: bool = False
    # Credits granted once to every new WeChat account; guests (free to mint: any device id)
    # get guest_welcome_credits.
    welcome_credits: int = Field(default=20, ge=0)
    guest_welcome_credits: int = Field(default=0, ge=0)
    billing_products: list[Product] = Field(default_factory=lambda: list(DEFAULT_PRODUCTS))
    order_expire_minutes: int = Field(default=30, ge=1)
    order_close_interval_s: float = Field(default=60.0, gt=0)
    admin_username: str | None = None
    admin_password: str | None = None
    admin_token_expire_minutes: int = 12 * 60
    rate_limit_admin_login: str = "10/minute"

    timezone: str = "Asia/Shanghai"
    log_retention_days: int = 90
    log_purge_interval_s: float = 24 * 3600.0
    log_purge_batch_size: int = 5000
    log_level: str = "INFO"
    log_json: bool = False
    log_flush_interval_s: float = 1.0

    # Reliability limits: request-log backpressure, request bodies, decoding (docs/RELIABILITY.md)
    log_max_backlog: int = Field(default=20_000, ge=1)
    log_backpressure_timeout_s: float = Field(default=10.0, gt=0)
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024)
    decode_budget_pixels: int = Field(default=40_000_000, ge=1)

    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    # Official-account web OAuth; default to the mini-program's app id and secret.
    wechat_mp_appid: str | None = None
    wechat_mp_secret: str | None = None
    wechat_timeout_s: float = 10.0

    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None
    wechatpay_merchant_serial: str | None = None
    wechatpay_private_key_path: Path | None = None
    wechatpay_apiv3_key: str | None = None
    wechatpay_public_key_path: Path | None = None
    wechatpay_public_key_id: str | None = None
    wechatpay_notify_url: str | None = None
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    # Platform-certificate mode (older merchants); the public-key mode above is preferred.
    wechatpay_platform_cert_path: Path | None = None
    wechatpay_notify_tolerance_s: int = 300

    # Image editing (DESIGN §4.5, §9)
    edit_result_ttl_hours: int = 24
    edit_providers: Annotated[list[str], NoDecode] = ["dashscope", "openai"]
    edit_dashscope_base_url: str = "https://dashscope.aliyuncs.com/api/v1"
    edit_dashscope_model: str = "qwen-image-edit"
    edit_openai_base_url: str = "https://api.openai.com/v1"
    edit_openai_model: str = "gpt-image-1"
    edit_remote_timeout_s: float = 120.0
    edit_local_cost: int = 1
    edit_remote_cost: int = 10
    edit_worker_concurrency: int = 2
    edit_lease_s: float = 60.0
    edit_sweep_interval_s: float = 5.0
    edit_cleanup_interval_s: float = 600.0
    edit_max_attempts: int = 3
    edit_retry_backoff_s: float = 5.0
    edit_max_queued_per_user: int = 10
    edit_queue_name: str = "xintu:edit"

    # Accounts and billing trust (docs/SECURITY.md): how long "this account is active" is
    # believed, and how many unpaid orders one user may hold open.
    account_status_ttl_s: float = Field(default=5.0, ge=0)
    max_pending_orders_per_user: int = Field(default=5, ge=1)

    # Video classification (DESIGN §4.9, docs/VIDEO.md)
    max_video_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    max_video_seconds: float = Field(default=600.0, gt=0)
    # Keyframes classified per video: half spread over the duration, the rest scene changes.
    video_max_frames: int = Field(default=8, ge=1, le=32)
    # Where a video is kept (mode 0600) while it is decoded; the system's temp dir when unset.
    video_tmp_dir: Path | None = None

    # Live dashboard stream (DESIGN §4.7 /stats/stream, docs/STATS.md)
    stats_stream_interval_s: float = Field(default=1.0, gt=0)
    stats_window_s: int = Field(default=60, ge=1, le=3600)

    # Exposure of operational endpoints: /metrics needs this bearer token (or an admin
    # token) when set; /docs, /redoc and /openapi.json are served only when enabled
    # (default: in development only).
    metrics_token: str | None = None
    docs_enabled: bool | None = None

    # Who is calling (DESIGN §3): trusted proxies and per-caller abuse limits ("0" disables).
    # Comma-separated CIDRs whose X-Forwarded-For is believed; empty: none.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    rate_limit_guest_login: str = "20/hour"
    rate_limit_wechat_login: str = "30/minute"
    rate_limit_orders: str = "30/hour"
    rate_limit_edit_submits: str = "30/minute"

    # Deployment: the schema at start-up, log files (docs/DEPLOYMENT.md)
    migrate_on_start: bool = True
    schema_wait_s: float = Field(default=120.0, ge=0)
    log_file: Path | None = None
    log_rotation: str = "100 MB"
    log_retention: int = Field(default=14, ge=1)

    # Remote cost (issue 15): pixels sent to vision LLMs, screenshots answered without them
    remote_max_side: int = Field(default=1024, ge=224, le=4096)
    # Off by default until it meets its precision target (docs/CLASSIFICATION.md).
    screenshot_precheck: bool = False

    @field_validator("providers", "edit_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip().lower() for name in value.split(",") if name.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            try:
                return [
                    ip_network(item.strip(), strict=False) if isinstance(item, str) else item
                    for item in value
                ]
            except ValueError as exc:
                raise ValueError(f"XINTU_TRUSTED_PROXIES: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _enforce_safe_values(self) -> Settings:
        if self.cache_quorum < 1:
            raise ValueError("XINTU_CACHE_QUORUM must be at least 1")
        if self.batch_max < 1 or self.max_upload_bytes < 1:
            raise ValueError("XINTU_BATCH_MAX and XINTU_MAX_UPLOAD_BYTES must be positive")
        if self.environment != "development":
            for name in ("jwt_secret", "data_key"):
                if not getattr(self, name):
                    raise ValueError(
                        f"XINTU_{name.upper()} must be set when XINTU_ENVIRONMENT is "
                        f"{self.environment!r}: generated secrets live on one host only"
                    )
            if len((self.jwt_secret or "").encode()) < _MIN_JWT_SECRET_BYTES:
                raise ValueError(
                    f"XINTU_JWT_SECRET must be at least {_MIN_JWT_SECRET_BYTES} bytes outside "
                    "development: a short HS256 key can be brute-forced from one token"
                )
            for name in ("wechat_api_base", "wechatpay_api_base"):
                if not str(getattr(self, name)).startswith("https://"):
                    raise ValueError(f"XINTU_{name.upper()} must be https:// outside development")
        if self.edit_lease_s <= 0 or self.edit_max_attempts < 1 or self.edit_worker_concurrency < 1:
            raise ValueError(
                "XINTU_EDIT_LEASE_S, XINTU_EDIT_MAX_ATTEMPTS and "
                "XINTU_EDIT_WORKER_CONCURRENCY must be positive"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"XINTU_TIMEZONE {self.timezone!r} is not an IANA time zone") from exc
        if self.log_retention_days < 1 or self.log_purge_batch_size < 1:
            raise ValueError("XINTU_LOG_RETENTION_DAYS and XINTU_LOG_PURGE_BATCH_SIZE must be >= 1")
        if self.docs_enabled is None:
            self.docs_enabled = self.environment == "development"
        if self.wechatpay_appid is None:
            self.wechatpay_appid = self.wechat_appid
        if self.wechat_mp_appid is None:
            self.wechat_mp_appid = self.wechat_appid
        if self.wechat_mp_secret is None:
            self.wechat_mp_secret = self.wechat_secret
        product_ids = [product.id for product in self.billing_products]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("XINTU_BILLING_PRODUCTS has duplicate product ids")
        return self

    def ensure_secrets(self) -> None:
        """Fill unset secrets from files in the data directory, creating them once."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.jwt_secret:
            self.jwt_secret = _persistent_secret(self.data_dir / "jwt_secret", 48)
        if not self.data_key:
            self.data_key = _persistent_secret(self.data_dir / "data_key", 32)


def _persistent_secret(path: Path, size: int) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(size)
    path.write_text(value)
    path.chmod(0o600)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
