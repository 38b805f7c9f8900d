"""Credits under real concurrency, the credit gate of classification, ``GET /me/credits``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.billing.support import balance, ledger, make_user
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from xintu.billing.credits import (
    DuplicateLedgerEntry,
    InsufficientCredits,
    change_credits,
)
from xintu.billing.gate import BillingCreditGate, ledger_reference
from xintu.categories import Category
from xintu.deps import Caller
from xintu.inference.base import Prediction, PreparedImage
from xintu.models.base import utcnow
from xintu.users.security import TokenClaims


def caller_of(user_id: int | None) -> Caller:
    token = TokenClaims(kind="user", subject_id=user_id) if user_id is not None else None
    return Caller(ip="127.0.0.1", token=token, label=None)


async def test_concurrent_debits_never_overdraw(make_client: AppFactory, database_url: str) -> None:
    async with make_client(database_url=database_url) as (app, _):
        user_id, _ = await make_user(app, credits=10)

        async def debit(number: int) -> bool:
            try:
                async with app.state.db.sessionmaker.begin() as session:
                    await change_credits(
                        session, user_id, -1, kind="consume", reason="t", reference=f"c{number}"
                    )
            except InsufficientCredits:
                return False
            return True

        outcomes = await asyncio.gather(*(debit(number) for number in range(50)))
        assert outcomes.count(True) == 10
        assert await balance(app, user_id) == 0
        entries = await ledger(app, user_id)
        consumed = [entry for entry in entries if entry[0] == "consume"]
        assert len(consumed) == 10
        assert sorted(after for _, _, after in consumed) == list(range(10))
        assert sum(delta for _, delta, _ in entries) == 0


async def test_repeated_reference_is_recorded_once(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url) as (app, _):
        user_id, _ = await make_user(app, credits=5)

        async def charge() -> str:
            try:
                async with app.state.db.sessionmaker.begin() as session:
                    await change_credits(
                        session, user_id, -1, kind="consume", reason="t", reference="same"
                    )
            except DuplicateLedgerEntry:
                return "duplicate"
            return "charged"

        outcomes = await asyncio.gather(*(charge() for _ in range(10)))
        assert outcomes.count("charged") == 1
        assert await balance(app, user_id) == 4


async def test_gate_lets_members_and_users_with_credits_use_remote(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, _):
        gate = BillingCreditGate(app.state.db.sessionmaker)
        rich, _ = await make_user(app, openid="o_rich", credits=1)
        poor, _ = await make_user(app, openid="o_poor")
        member, _ = await make_user(
            app, openid="o_member", member_until=utcnow() + timedelta(days=1)
        )
        lapsed, _ = await make_user(
            app, openid="o_lapsed", member_until=utcnow() - timedelta(days=1)
        )
        assert await gate.may_use_remote(caller_of(rich)) is True
        assert await gate.may_use_remote(caller_of(poor)) is False
        assert await gate.may_use_remote(caller_of(member)) is True
        assert await gate.may_use_remote(caller_of(lapsed)) is False
        assert await gate.may_use_remote(caller_of(None)) is False
        assert await gate.may_use_remote(caller_of(999_999)) is False


async def test_gate_charges_one_credit_except_members(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, _):
        gate = BillingCreditGate(app.state.db.sessionmaker)
        user, _ = await make_user(app, openid="o_user", credits=2)
        member, _ = await make_user(
            app, openid="o_member", member_until=utcnow() + timedelta(days=1)
        )
        await gate.charge_remote(caller_of(user), "classify:r1:" + "a" * 64)
        await gate.charge_remote(caller_of(user), "classify:r1:" + "a" * 64)  # retried: once
        await gate.charge_remote(caller_of(member), "classify:r2:x")
        assert await balance(app, user) == 1
        assert await ledger(app, member) == []


async def test_gate_records_unpaid_answer_when_balance_ran_out(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, _):
        gate = BillingCreditGate(app.state.db.sessionmaker)
        user, _ = await make_user(app, credits=0)
        await gate.charge_remote(caller_of(user), "classify:late")  # must not raise
        assert await balance(app, user) == 0
        assert await ledger(app, user) == [("consume_unpaid", 0, 0)]


def test_long_references_fit_the_ledger_column() -> None:
    long = "classify:" + "r" * 36 + ":" + "f" * 64
    assert len(ledger_reference(long)) <= 80
    assert ledger_reference(long) == ledger_reference(long)
    assert ledger_reference("short") == "short"


class FakeLocal:
    name = "local"
    model = "fake-local"

    async def classify(self, image: PreparedImage) -> Prediction:  # noqa: ARG002
        return Prediction(Category.other, 0.5, "本地", "fake-local", "local", "local")


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], seed: int) -> dict[str, Any]:
    data = make_image(seed=seed)
    response = await client.post(
        "/api/v1/classify", files={"image": ("p.jpg", data, "image/jpeg")}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_billing_charges_remote_classification_and_falls_back_when_out_of_credits(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, billing_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        app.state.classifier.local = FakeLocal()
        user, headers = await make_user(app, credits=1)
        first = await _upload(client, headers, 1)
        assert first["data"]["inference_method"] == "remote"
        assert await balance(app, user) == 0
        calls = fake_llm.calls
        second = await _upload(client, headers, 2)
        assert second["data"]["inference_method"] == "local"
        assert fake_llm.calls == calls
        # The cache is still served to a user without credits.
        again = await _upload(client, headers, 1)
        assert again["data"]["inference_method"] == "cache"
        anonymous = await _upload(client, {}, 3)
        assert anonymous["data"]["inference_method"] == "local"
        assert fake_llm.calls == calls
        assert [kind for kind, _, _ in await ledger(app, user)] == ["grant", "consume"]


async def test_without_billing_remote_is_free(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (app, client):
        user, headers = await make_user(app, credits=1)
        body = await _upload(client, headers, 1)
        assert body["data"]["inference_method"] == "remote"
        assert await balance(app, user) == 1


async def test_my_credits_lists_balance_and_latest_entries(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, client):
        user, headers = await make_user(app, credits=3)
        async with app.state.db.sessionmaker.begin() as session:
            await change_credits(session, user, -1, kind="consume", reason="x", reference="r1")
        response = await client.get("/api/v1/me/credits", headers=headers, params={"limit": 1})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["balance"] == 2
        assert body["is_member"] is False
        assert [entry["kind"] for entry in body["ledger"]] == ["consume"]
        assert body["ledger"][0]["balance_after"] == 2
        assert_error(await client.get("/api/v1/me/credits"), 401, "not_authenticated")


@pytest.mark.parametrize("limit", [0, 101])
async def test_my_credits_limit_is_bounded(
    make_client: AppFactory, sqlite_url: str, limit: int
) -> None:
    async with make_client(database_url=sqlite_url) as (app, client):
        _, headers = await make_user(app)
        response = await client.get("/api/v1/me/credits", headers=headers, params={"limit": limit})
        assert_error(response, 422, "validation_error")
