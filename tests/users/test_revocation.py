"""Revocation: a disabled or merged account's tokens stop touching money and files at once."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select, update

from tests.billing.support import balance, ledger, make_user
from tests.conftest import AppFactory, llm_settings, wechat_settings, wechatpay_settings
from tests.edit.conftest import edit_settings, photo, submit
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.fake_wechat import FakeWechat
from tests.fixtures.fake_wechatpay import FakeWechatPay
from tests.fixtures.images import make_image
from xintu.models import ImageEditTask, PaymentRecord, WechatUser


async def disable(app: FastAPI, user_id: int) -> None:
    """Disable the account in the database, as an operator (or another process) would; this
    process then forgets its cached answer, as it does after its own changes."""
    async with app.state.db.sessionmaker.begin() as session:
        await session.execute(
            update(WechatUser).where(WechatUser.id == user_id).values(is_active=False)
        )
    app.state.accounts.forget_users(user_id)


async def count(app: FastAPI, model: type[ImageEditTask] | type[PaymentRecord]) -> int:
    async with app.state.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_disabled_user_loses_edit_and_billing_access(
    make_client: AppFactory,
    database_url: str,
    fake_wechatpay: FakeWechatPay,
    tmp_path: Path,
) -> None:
    settings = wechatpay_settings(
        fake_wechatpay, tmp_path / "keys", billing_enabled=True, **edit_settings()
    )
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await make_user(app, credits=10)
        assert (await client.get("/api/v1/me/credits", headers=headers)).status_code == 200
        assert (await client.get("/api/v1/edit/tasks", headers=headers)).status_code == 200
        await disable(app, user_id)
        order = {"product_id": "credits_100", "trade_type": "native"}
        refused = [
            await client.get("/api/v1/me", headers=headers),
            await client.get("/api/v1/me/credits", headers=headers),
            await client.get("/api/v1/edit/tasks", headers=headers),
            await submit(client, headers, photo(), "sketch"),
            await client.post("/api/v1/billing/orders", json=order, headers=headers),
            await client.get("/api/v1/billing/orders/XT0000", headers=headers),
        ]
        for response in refused:
            assert_error(response, 401, "not_authenticated")
        assert await count(app, ImageEditTask) == 0
        assert await count(app, PaymentRecord) == 0
        assert fake_wechatpay.orders == {}
        assert await balance(app, user_id) == 10


async def test_disabled_user_gets_no_paid_classification(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, billing_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, headers = await make_user(app, credits=5)
        await disable(app, user_id)
        response = await client.post(
            "/api/v1/classify",
            files={"image": ("p.jpg", make_image(seed=7), "image/jpeg")},
            headers=headers,
        )
        # No local model in this app: a cache miss that may not go remote has no answer.
        assert_error(response, 503, "no_classifier_available")
        assert fake_llm.calls == 0
        assert await ledger(app, user_id) == [("grant", 5, 5)]


async def test_account_status_is_cached_for_seconds_and_forgotten_on_change(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, account_status_ttl_s=3600) as (app, client):
        user_id, headers = await make_user(app)
        assert (await client.get("/api/v1/edit/tasks", headers=headers)).status_code == 200
        async with app.state.db.sessionmaker.begin() as session:
            await session.execute(
                update(WechatUser).where(WechatUser.id == user_id).values(is_active=False)
            )
        # Another process's change: believed active until the entry expires...
        assert (await client.get("/api/v1/edit/tasks", headers=headers)).status_code == 200
        app.state.accounts.forget_users(user_id)
        # ...or until this process is told (as after its own merges).
        assert_error(
            await client.get("/api/v1/edit/tasks", headers=headers), 401, "not_authenticated"
        )


async def test_merged_guests_token_loses_edit_access(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, **edit_settings())
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        guest = await client.post("/api/v1/auth/guest", json={"device_id": "dev-merge"})
        guest_headers = {"Authorization": f"Bearer {guest.json()['access_token']}"}
        # Cached as active by this request...
        assert (await client.get("/api/v1/edit/tasks", headers=guest_headers)).status_code == 200
        login = await client.post(
            "/api/v1/auth/wechat/login", json={"code": "merger"}, headers=guest_headers
        )
        assert login.json()["merged_guest_ids"] == [guest.json()["user"]["id"]]
        # ...and forgotten by the merge, so the very next request is refused.
        for response in (
            await client.get("/api/v1/edit/tasks", headers=guest_headers),
            await submit(client, guest_headers, photo(), "sketch"),
        ):
            assert_error(response, 401, "not_authenticated")
