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
from xintu.billing.gate import BillingCreditGate
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


async def test_gate_reserves_a_credit_except_for_members_and_releases_it_once(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url) as (app, _):
        gate = BillingCreditGate(app.state.db.sessionmaker)
        rich, _ = await make_user(app, openid="o_rich", credits=1)
        poor, _ = await make_user(app, openid="o_poor")
        member, _ = await make_user(
            app, openid="o_member", member_until=utcnow() + timedelta(days=1)
        )
        lapsed, _ = await make_user(
            app, openid="o_lapsed", member_until=utcnow() - timedelta(days=1)
        )
        reservation = await gate.reserve_remote(caller_of(rich), "t")
        assert reservation is not None
        assert reservation.reference is not None
        assert await balance(app, rich) == 0
        assert await gate.reserve_remote(caller_of(rich), "t") is None  # nothing left
        await gate.release(reservation, "unused")
        await gate.release(reservation, "unused")  # released once only
        assert await balance(app, rich) == 1
        assert await ledger(app, rich) == [("grant", 1, 1), ("consume", -1, 0), ("release", 1, 1)]
        assert await gate.reserve_remote(caller_of(poor), "t") is None
        free = await gate.reserve_remote(caller_of(member), "t")
        assert free is not None
        assert free.reference is None
        assert await ledger(app, member) == []
        assert await gate.reserve_remote(caller_of(lapsed), "t") is None
        assert await gate.reserve_remote(caller_of(None), "t") is None
        assert await gate.reserve_remote(caller_of(999_999), "t") is None


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


async def test_attack_replayed_request_id_pays_for_every_remote_answer(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    """Issue 11: the charge was keyed on the client's X-Request-ID and a repeated key counted
    as paid, so 30 remote answers cost 1 credit. The reference is now the server's own."""
    settings = llm_settings(fake_llm, billing_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        app.state.classifier.local = FakeLocal()
        user, headers = await make_user(app, credits=20)
        replayed = headers | {"X-Request-ID": "replayed-id-1"}
        methods = [
            (await _upload(client, replayed, seed))["data"]["inference_method"]
            for seed in range(30)
        ]
        assert methods == ["remote"] * 20 + ["local"] * 10
        assert await balance(app, user) == 0
        entries = await ledger(app, user)
        assert [kind for kind, _, _ in entries].count("consume") == 20
        assert sum(delta for _, delta, _ in entries) == 0


async def test_attack_concurrent_batches_get_no_more_remote_answers_than_credits(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """Issue 11: credits were checked before the remote call and charged after, so a user
    with 2 credits got 8 remote answers from one batch of 20. Now a credit is reserved
    before each call: 2 credits are 2 remote answers, across concurrent batches too."""
    fake_llm.delay_s = 0.05
    settings = llm_settings(fake_llm, billing_enabled=True, batch_concurrency=8)
    async with make_client(database_url=database_url, **settings) as (app, client):
        app.state.classifier.local = FakeLocal()
        user, headers = await make_user(app, credits=2)

        async def batch(first_seed: int) -> list[str]:
            files = [
                ("images", (f"{seed}.jpg", make_image(seed=seed), "image/jpeg"))
                for seed in range(first_seed, first_seed + 20)
            ]
            response = await client.post("/api/v1/classify/batch", files=files, headers=headers)
            assert response.status_code == 200, response.text
            return [item["data"]["inference_method"] for item in response.json()["items"]]

        results = await asyncio.gather(*(batch(start) for start in (100, 200, 300)))
        methods = [method for result in results for method in result]
        assert methods.count("remote") == 2
        assert methods.count("local") == 58
        assert fake_llm.calls == 2
        assert await balance(app, user) == 0
        entries = await ledger(app, user)
        assert sum(delta for _, delta, _ in entries) == 0
        kinds = [kind for kind, _, _ in entries]
        assert kinds.count("consume") - kinds.count("release") == 2
        assert all(after >= 0 for _, _, after in entries)


async def test_failed_provider_gives_the_reserved_credit_back(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    settings = llm_settings(fake_llm, billing_enabled=True, circuit_failure_threshold=100)
    async with make_client(database_url=database_url, **settings) as (app, client):
        app.state.classifier.local = FakeLocal()
        user, headers = await make_user(app, credits=3)
        for seed in range(3):
            body = await _upload(client, headers, seed)
            assert body["data"]["inference_method"] == "local"
        assert fake_llm.calls == 3
        assert await balance(app, user) == 3
        assert [kind for kind, _, _ in await ledger(app, user)] == [
            "grant",
            "consume",
            "release",
            "consume",
            "release",
            "consume",
            "release",
        ]


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
