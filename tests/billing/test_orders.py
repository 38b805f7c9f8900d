"""Products, orders and prepay against a fake WeChat Pay v3 server (DESIGN §4.4)."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select, update

from tests.billing.support import admin_headers, make_user, order_row
from tests.conftest import AppFactory, wechatpay_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_wechatpay import APPID, FakeWechatPay, rsa_verify
from xintu.billing.service import close_expired_orders
from xintu.models import PaymentRecord
from xintu.models.base import utcnow


async def test_products_come_from_settings(make_client: AppFactory, sqlite_url: str) -> None:
    products = [
        {"id": "p1", "name": "10 次", "kind": "credits", "amount_fen": 100, "credits": 10},
        {"id": "m1", "name": "会员", "kind": "membership", "amount_fen": 900, "member_days": 7},
    ]
    async with make_client(database_url=sqlite_url, billing_products=products) as (_, client):
        response = await client.get("/api/v1/billing/products")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert [product["id"] for product in body["products"]] == ["p1", "m1"]
    assert body["products"][1]["member_days"] == 7


async def test_jsapi_order_returns_signed_request_payment_params(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, headers = await make_user(app, openid="o_jsapi")
        response = await client.post(
            "/api/v1/billing/orders",
            json={"product_id": "credits_100", "trade_type": "jsapi"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "pending"
        assert body["amount_fen"] == 600
        params = body["pay_params"]
        assert params["appId"] == APPID
        assert params["signType"] == "RSA"
        prepay = fake_wechatpay.orders[body["out_trade_no"]]
        assert params["package"] == f"prepay_id={prepay['prepay_id']}"
        message = (
            f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
        )
        merchant_public = fake_wechatpay.keys.merchant.public_key()
        assert rsa_verify(merchant_public, message.encode(), params["paySign"])
        assert base64.b64decode(params["paySign"])
        # What WeChat Pay received: our signed request, for our user's openid and amount.
        assert fake_wechatpay.auth_failures == []
        assert prepay["payer"] == {"openid": "o_jsapi"}
        assert prepay["amount"] == {"total": 600, "currency": "CNY"}
        assert prepay["notify_url"] == settings["wechatpay_notify_url"]
        order = await order_row(app, body["out_trade_no"])
        assert order.user_id == user_id
        assert order.prepay_id == prepay["prepay_id"]


async def test_native_order_returns_code_url_also_for_guests(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await make_user(app, openid=None, guest=True)
        native = await client.post(
            "/api/v1/billing/orders",
            json={"product_id": "member_month", "trade_type": "native"},
            headers=headers,
        )
        assert native.status_code == 200, native.text
        assert native.json()["code_url"].startswith("weixin://wxpay/bizpayurl")
        assert native.json()["pay_params"] is None
        jsapi = await client.post(
            "/api/v1/billing/orders",
            json={"product_id": "member_month", "trade_type": "jsapi"},
            headers=headers,
        )
        assert_error(jsapi, 409, "openid_required")


async def test_order_needs_a_user_token(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        order = {"product_id": "credits_100", "trade_type": "native"}
        anonymous = await client.post(
            "/api/v1/billing/orders", json=order, headers={"X-User-ID": "o_buyer"}
        )
        assert_error(anonymous, 401, "not_authenticated")
        admin = await client.post(
            "/api/v1/billing/orders", json=order, headers=await admin_headers(app)
        )
        assert_error(admin, 403, "forbidden")
        assert fake_wechatpay.orders == {}


async def test_unknown_product_and_bad_trade_type_are_rejected(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await make_user(app)
        unknown = await client.post(
            "/api/v1/billing/orders", json={"product_id": "nope"}, headers=headers
        )
        assert_error(unknown, 404, "unknown_product")
        bad = await client.post(
            "/api/v1/billing/orders",
            json={"product_id": "credits_100", "trade_type": "app"},
            headers=headers,
        )
        assert_error(bad, 422, "validation_error")


async def test_order_without_wechatpay_settings_is_503(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, billing_enabled=True) as (app, client):
        _, headers = await make_user(app)
        response = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        assert_error(response, 503, "payment_unavailable")


async def test_refused_prepay_leaves_a_failed_order(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await make_user(app)
        fake_wechatpay.mode = "error400"
        refused = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        assert_error(refused, 502, "wechatpay_error")
        fake_wechatpay.mode = "error500"
        down = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        assert_error(down, 503, "payment_unavailable")


async def test_wrong_merchant_key_is_refused_by_wechatpay(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    settings["wechatpay_merchant_serial"] = "0000"
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await make_user(app)
        response = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        assert_error(response, 502, "wechatpay_error")
        assert fake_wechatpay.auth_failures == ["wrong serial_no"]


async def test_pending_order_is_queried_and_paid_when_looked_at(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await make_user(app)
        created = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        out_trade_no = created.json()["out_trade_no"]
        pending = await client.get(f"/api/v1/billing/orders/{out_trade_no}", headers=headers)
        assert pending.json()["status"] == "pending"
        fake_wechatpay.pay(out_trade_no)
        paid = await client.get(f"/api/v1/billing/orders/{out_trade_no}", headers=headers)
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "paid"
        me = await client.get("/api/v1/me", headers=headers)
        assert me.json()["credits"] == 100
        queries = [call for call in fake_wechatpay.calls if call.startswith("GET")]
        assert len(queries) == 2
        # A paid order is not queried again.
        await client.get(f"/api/v1/billing/orders/{out_trade_no}", headers=headers)
        assert len([call for call in fake_wechatpay.calls if call.startswith("GET")]) == 2
        assert (await order_row(app, out_trade_no)).user_id == user_id


async def test_another_users_order_is_not_found(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, owner = await make_user(app, openid="o_owner")
        _, other = await make_user(app, openid="o_other")
        created = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=owner
        )
        out_trade_no = created.json()["out_trade_no"]
        response = await client.get(f"/api/v1/billing/orders/{out_trade_no}", headers=other)
        assert_error(response, 404, "order_not_found")
        missing = await client.get("/api/v1/billing/orders/XTNOPE", headers=owner)
        assert_error(missing, 404, "order_not_found")
        anonymous = await client.get(f"/api/v1/billing/orders/{out_trade_no}")
        assert_error(anonymous, 401, "not_authenticated")


async def test_expired_orders_are_closed_here_and_at_wechatpay(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys", order_expire_minutes=1)
    async with make_client(database_url=database_url, **settings) as (app, client):
        _, headers = await make_user(app)
        numbers = []
        for _ in range(3):
            created = await client.post(
                "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
            )
            numbers.append(created.json()["out_trade_no"])
        fake_wechatpay.pay(numbers[1])  # paid at the last moment, callback not yet arrived
        await _expire(app, numbers)
        assert await close_expired_orders(app.state.billing) == 2
        assert sorted(fake_wechatpay.closed) == sorted([numbers[0], numbers[2]])
        statuses = [(await order_row(app, number)).status for number in numbers]
        assert statuses == ["closed", "paid", "closed"]
        assert await close_expired_orders(app.state.billing) == 0


async def _expire(app: FastAPI, numbers: list[str]) -> None:
    async with app.state.db.sessionmaker.begin() as session:
        await session.execute(
            update(PaymentRecord)
            .where(PaymentRecord.out_trade_no.in_(numbers))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )


async def test_background_closer_closes_expired_orders(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys", order_close_interval_s=0.05)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await make_user(app)
        created = await client.post(
            "/api/v1/billing/orders", json={"product_id": "credits_100"}, headers=headers
        )
        out_trade_no = created.json()["out_trade_no"]
        await _expire(app, [out_trade_no])
        deadline = asyncio.get_running_loop().time() + 10
        while (await order_row(app, out_trade_no)).status == "pending":
            assert asyncio.get_running_loop().time() < deadline, "order was not closed"
            await asyncio.sleep(0.05)
        assert (await order_row(app, out_trade_no)).status == "closed"
        assert fake_wechatpay.closed == [out_trade_no]


async def pending_orders(app: FastAPI, user_id: int) -> int:
    async with app.state.db.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PaymentRecord)
            .where(PaymentRecord.user_id == user_id, PaymentRecord.status == "pending")
        )
    return int(count or 0)


async def test_attack_pending_orders_per_user_are_capped(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    """Issue 11: a user could open unpaid orders without limit (rows here, prepays at WeChat
    Pay). Concurrent requests count each other: exactly the cap is created."""
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys", max_pending_orders_per_user=3)
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, headers = await make_user(app, openid="o_many")
        order = {"product_id": "credits_100", "trade_type": "native"}
        responses = await asyncio.gather(
            *(client.post("/api/v1/billing/orders", json=order, headers=headers) for _ in range(8))
        )
        codes = sorted(response.status_code for response in responses)
        assert codes == [200] * 3 + [429] * 5, [response.text for response in responses]
        for response in responses:
            if response.status_code == 429:
                assert_error(response, 429, "too_many_pending_orders")
        assert await pending_orders(app, user_id) == 3
        assert len(fake_wechatpay.orders) == 3
        # Once one is paid, there is room for another.
        paid = next(r.json()["out_trade_no"] for r in responses if r.status_code == 200)
        async with app.state.db.sessionmaker.begin() as session:
            await session.execute(
                update(PaymentRecord)
                .where(PaymentRecord.out_trade_no == paid)
                .values(status="paid")
            )
        again = await client.post("/api/v1/billing/orders", json=order, headers=headers)
        assert again.status_code == 200, again.text
        assert await pending_orders(app, user_id) == 3
