"""Settings: every ``XINTU_*`` variable of DESIGN §3, with laptop-safe defaults."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    dashscope_model: str = "qwen-vl-plus"
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
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

    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"

    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None
    wechatpay_merchant_serial: str | None = None
    wechatpay_private_key_path: Path | None = None
    wechatpay_apiv3_key: str | None = None
    wechatpay_public_key_path: Path | None = None
    wechatpay_public_key_id: str | None = None
    wechatpay_notify_url: str | None = None
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"

    edit_result_ttl_hours: int = 24

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip().lower() for name in value.split(",") if name.strip()]
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
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"XINTU_TIMEZONE {self.timezone!r} is not an IANA time zone") from exc
        if self.log_retention_days < 1 or self.log_purge_batch_size < 1:
            raise ValueError("XINTU_LOG_RETENTION_DAYS and XINTU_LOG_PURGE_BATCH_SIZE must be >= 1")
        if self.wechatpay_appid is None:
            self.wechatpay_appid = self.wechat_appid
        return self

    def ensure_secrets(self) -> None:
        """Fill unset secrets from files in the data directory, creating them once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
