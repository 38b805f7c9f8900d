"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis, through
ASGI): whatever the input, as an anonymous caller, a user or an admin, no answer is a 500.

Bounded: ``FUZZ_EXAMPLES`` generated cases per operation (env ``XINTU_FUZZ_EXAMPLES``),
valid and invalid ones, each sent as one of the three identities.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.edit.conftest import create_user
from xintu.admin.service import create_or_update_admin
from xintu.config import Settings
from xintu.db import create_engine
from xintu.main import create_app
from xintu.migrations import upgrade_to_head_async
from xintu.users.security import create_access_token

FUZZ_EXAMPLES = int(os.environ.get("XINTU_FUZZ_EXAMPLES", "30"))
# An endless event stream: nothing to fuzz but its query, which its own tests cover.
_SKIPPED = ("/api/v1/stats/stream",)


async def _prepare(url: str) -> int:
    await upgrade_to_head_async(url)
    engine = create_engine(url)
    try:
        await create_or_update_admin(engine, "fuzz-admin", "fuzz-password-1")
    finally:
        await engine.dispose()
    return await create_user(url, credits=5)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> tuple[OpenApiSchema, list[dict[str, str]]]:
    """The app's schema (reached through ASGI) and the headers of the three identities."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{directory / 'fuzz.db'}"
    user_id = asyncio.run(_prepare(url))
    app_settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        data_dir=directory / "data",
        local_model_enabled=False,
        rate_limit_classify="0",
        rate_limit_check="0",
        rate_limit_admin_login="0",
        log_level="CRITICAL",
    )
    app = create_app(app_settings)
    secret = app_settings.jwt_secret or ""
    user = create_access_token("user", user_id, secret, timedelta(hours=1))
    admin = create_access_token("admin", 1, secret, timedelta(hours=1))
    identities = [{}, {"Authorization": f"Bearer {user}"}, {"Authorization": f"Bearer {admin}"}]
    return schemathesis.openapi.from_asgi("/openapi.json", app), identities


def test_no_input_makes_a_500(api: tuple[OpenApiSchema, list[dict[str, str]]]) -> None:
    schema, identities = api
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        if operation.path in _SKIPPED:
            continue

        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases, identity=st.sampled_from(identities))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_500(case: schemathesis.Case, identity: dict[str, str]) -> None:
            response = case.call(headers=identity)
            assert response.status_code != 500, (
                f"{case.method} {case.formatted_path} answered 500: {response.text[:200]}\n"
                f"{case.as_curl_command(headers=identity)}"
            )

        try:
            no_500()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)
