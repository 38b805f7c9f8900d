"""Settings refuse unsafe or impossible values and read the DESIGN §3 variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from xintu.config import InferenceMode, Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_work_on_a_laptop() -> None:
    defaults = settings()
    assert defaults.database_url == "sqlite+aiosqlite:///./data/xintu.db"
    assert defaults.inference_mode is InferenceMode.hybrid
    assert defaults.providers == ["dashscope", "openai"]
    assert defaults.cache_quorum == 2
    assert defaults.max_upload_bytes == 10 * 1024 * 1024


def test_environment_variables_use_the_xintu_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINTU_PROVIDERS", " OpenAI , dashscope ")
    monkeypatch.setenv("XINTU_INFERENCE_MODE", "local_only")
    monkeypatch.setenv("XINTU_RATE_LIMIT_CHECK", "0")
    loaded = settings()
    assert loaded.providers == ["openai", "dashscope"]
    assert loaded.inference_mode is InferenceMode.local_only
    assert loaded.rate_limit_check == "0"


def test_secrets_are_required_outside_development() -> None:
    with pytest.raises(ValidationError, match="XINTU_JWT_SECRET"):
        settings(environment="production")
    settings(environment="production", jwt_secret="j" * 40, data_key="d" * 40)


def test_short_jwt_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        settings(environment="production", jwt_secret="s" * 31, data_key="d" * 40)
    settings(environment="production", jwt_secret="s" * 32, data_key="d" * 40)
    # A laptop may use anything; the generated secret is 64 characters anyway.
    assert settings(jwt_secret="short").jwt_secret == "short"


def test_generated_secrets_persist_in_the_data_directory(tmp_path: Path) -> None:
    first = settings(data_dir=tmp_path)
    first.ensure_secrets()
    second = settings(data_dir=tmp_path)
    second.ensure_secrets()
    assert first.jwt_secret == second.jwt_secret
    assert first.data_key == second.data_key
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "values",
    [
        {"cache_quorum": 0},
        {"batch_max": 0},
        {"timezone": "Mars/Olympus"},
        {"inference_mode": "sometimes"},
        # Longer than the model columns: every request_log row would be refused.
        {"openai_model": "m" * 65},
        {"dashscope_model": "m" * 65},
        {"decode_budget_pixels": 0},
        {"log_max_backlog": 0},
    ],
)
def test_impossible_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)
