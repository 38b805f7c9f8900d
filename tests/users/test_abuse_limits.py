"""Per-IP limits on free or costly entry points (DESIGN §3): guest and WeChat logins, order
creation and edit submits. A refused request changes nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import AppFactory, wechat_settings, wechatpay_settings
from tests.edit.conftest import photo
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_wechat import FakeWechat
from tests.fixtures.fake_wechatpay import FakeWechatPay
from xintu.config import Settings
from xintu.models import ImageEditTask, PaymentRecord, WechatUser


async def _count(app: object, column: object) -> int:
    async with app.state.db.sessionmaker() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count(column))) or 0)


async def test_guest_logins_from_one_ip_are_limited(
    make_client: AppFactory, database_url: str
) -> None:
    """300 guest logins from one IP with default settings: the limit holds, and no guest
    account is created past it."""
    default = Settings.model_fields["rate_limit_guest_login"].default
    async with make_client(database_url=database_url, rate_limit_guest_login=default) as (
        app,
        client,
    ):
        limit = int(default.split("/")[0])
        statuses = [
            (await client.post("/api/v1/auth/guest", json={"device_id": f"dev-{n}"})).status_code
            for n in range(300)
        ]
        assert statuses == [200] * limit + [429] * (300 - limit)
        refused = await client.post("/api/v1/auth/guest", json={"device_id": "one-more"})
        assert_error(refused, 429, "rate_limited")
        assert await _count(app, WechatUser.id) == limit
    # Another IP is not affected.
    async with make_client(database_url=database_url, client_host="10.7.0.1") as (_, other):
        assert (await other.post("/api/v1/auth/guest", json={"device_id": "x"})).status_code == 200


async def test_wechat_logins_from_one_ip_are_limited(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, rate_limit_wechat_login="3/hour")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        for n in range(3):
            ok = await client.post("/api/v1/auth/wechat/login", json={"code": f"c{n}"})
            assert ok.status_code == 200, ok.text
        refused = await client.post("/api/v1/auth/wechat/login", json={"code": "c3"})
        assert_error(refused, 429, "rate_limited")
        oauth = await client.get("/api/v1/auth/wechat/oauth", params={"code": "c4"})
        assert_error(oauth, 429, "rate_limited")
        assert await _count(app, WechatUser.id) == 3
    assert "c3" not in fake_wechat.used_codes  # refused before WeChat was asked


async def test_order_creation_is_limited_per_ip_for_guests(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    """A fresh guest token does not lift the order limit of its IP."""
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys", rate_limit_orders="2/hour")
    order = {"product_id": "credits_100", "trade_type": "native"}
    async with make_client(database_url=database_url, **settings) as (app, client):
        tokens = []
        for device in ("g1", "g2"):
            login = await client.post("/api/v1/auth/guest", json={"device_id": device})
            tokens.append({"Authorization": f"Bearer {login.json()['access_token']}"})
        for _ in range(2):
            created = await client.post("/api/v1/billing/orders", json=order, headers=tokens[0])
            assert created.status_code == 200, created.text
        refused = await client.post("/api/v1/billing/orders", json=order, headers=tokens[1])
        assert_error(refused, 429, "rate_limited")
        assert await _count(app, PaymentRecord.id) == 2
        assert len(fake_wechatpay.orders) == 2


async def test_edit_submits_are_limited_per_ip_for_guests(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url, rate_limit_edit_submits="2/hour") as (
        app,
        client,
    ):
        tokens = []
        for device in ("g1", "g2"):
            login = await client.post("/api/v1/auth/guest", json={"device_id": device})
            tokens.append({"Authorization": f"Bearer {login.json()['access_token']}"})
        form = {"operation": "sketch", "params": "{}"}
        for _ in range(2):
            malformed = await client.post("/api/v1/edit/tasks", data=form, headers=tokens[0])
            assert malformed.status_code == 400, malformed.text
        refused = await client.post(
            "/api/v1/edit/tasks",
            data=form,
            files={"file": ("p.jpg", photo(1), "image/jpeg")},
            headers=tokens[1],
        )
        assert_error(refused, 429, "rate_limited")
        assert await _count(app, ImageEditTask.id) == 0
