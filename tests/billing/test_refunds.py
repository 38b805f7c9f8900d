"""Admin refunds: WeChat Pay's refund API, credits taken back, never below zero."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

from tests.billing.support import (
    admin_headers,
    balance,
    ledger,
    make_user,
    member_until,
    order_row,
)
from tests.billing.test_notify import paid_order, send
from tests.conftest import AppFactory, wechatpay_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_wechatpay import FakeWechatPay
from xintu.billing.credits import change_credits
from xintu.models.base import utcnow

REFUNDS = "/api/v1/admin/billing/refunds"


async def bought(
    app: FastAPI, client: httpx.AsyncClient, fake: FakeWechatPay, product_id: str = "credits_100"
) -> tuple[int, str]:
    user_id, out_trade_no = await paid_order(app, client, fake, product_id)
    response = await send(client, fake.notification(fake.transaction(out_trade_no)))
    assert response.status_code == 204
    return user_id, out_trade_no


async def spend(app: FastAPI, user_id: int, credits: int) -> None:
    async with app.state.db.sessionmaker.begin() as session:
        await change_credits(
            session, user_id, -credits, kind="consume", reason="test", reference="spent"
        )


async def grant(app: FastAPI, user_id: int, credits: int) -> None:
    async with app.state.db.sessionmaker.begin() as session:
        await change_credits(
            session, user_id, credits, kind="grant", reason="test", reference="extra"
        )


async def test_refund_returns_money_and_takes_credits_back(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        response = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "refunded"
        assert body["credits_taken_back"] == 100
        assert body["credits_shortfall"] == 0
        assert body["balance"] == 0
        refund = fake_wechatpay.refunds[f"R{out_trade_no}"]
        assert refund["amount"] == {"refund": 600, "total": 600, "currency": "CNY"}
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refunded_fen) == ("refunded", 600)
        assert [(kind, delta) for kind, delta, _ in await ledger(app, user_id)] == [
            ("purchase", 100),
            ("refund", -100),
        ]
        again = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert_error(again, 409, "order_not_refundable")


async def test_refund_of_spent_credits_needs_force_and_stops_at_zero(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        await spend(app, user_id, 30)
        refused = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert_error(refused, 409, "credits_already_spent")
        assert (await order_row(app, out_trade_no)).status == "paid"
        assert await balance(app, user_id) == 70
        assert fake_wechatpay.refunds == {}
        forced = await client.post(
            REFUNDS,
            json={"out_trade_no": out_trade_no, "force": True, "reason": "complaint"},
            headers=await admin_headers(app),
        )
        assert forced.status_code == 200, forced.text
        assert forced.json()["credits_taken_back"] == 70
        assert forced.json()["credits_shortfall"] == 30
        assert await balance(app, user_id) == 0
        assert (await ledger(app, user_id))[-1] == ("refund", -70, 0)


async def test_refused_refund_is_undone(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        fake_wechatpay.mode = "error400"
        refused = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert_error(refused, 502, "wechatpay_error")
        assert (await order_row(app, out_trade_no)).status == "paid"
        assert await balance(app, user_id) == 100
        fake_wechatpay.mode = "ok"
        retried = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert retried.status_code == 200, retried.text
        assert await balance(app, user_id) == 0


async def test_unanswered_refund_stays_refunding_and_can_be_retried(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        fake_wechatpay.mode = "error500"
        unknown = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert_error(unknown, 503, "payment_unavailable")
        assert (await order_row(app, out_trade_no)).status == "refunding"
        assert await balance(app, user_id) == 0
        fake_wechatpay.mode = "ok"
        retried = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert retried.status_code == 200, retried.text
        assert (await order_row(app, out_trade_no)).status == "refunded"
        assert [kind for kind, _, _ in await ledger(app, user_id)] == ["purchase", "refund"]


async def test_membership_refund_takes_the_days_back(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay, "member_month")
        response = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
        )
        assert response.status_code == 200, response.text
        until = await member_until(app, user_id)
        assert until is not None
        assert until <= utcnow()


async def test_concurrent_refunds_take_credits_back_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        await grant(app, user_id, 50)
        admin = await admin_headers(app)
        responses = await asyncio.gather(
            *(
                client.post(REFUNDS, json={"out_trade_no": out_trade_no}, headers=admin)
                for _ in range(5)
            )
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses[0] == 200
        assert all(status in (200, 409) for status in statuses), [r.text for r in responses]
        assert await balance(app, user_id) == 50
        refunds = [kind for kind, _, _ in await ledger(app, user_id) if kind == "refund"]
        assert refunds == ["refund"]


async def test_refunds_need_an_admin(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, out_trade_no = await bought(app, client, fake_wechatpay)
        assert_error(
            await client.post(REFUNDS, json={"out_trade_no": out_trade_no}),
            401,
            "not_authenticated",
        )
        _, user_headers = await make_user(app, openid="o_someone")
        as_user = await client.post(
            REFUNDS, json={"out_trade_no": out_trade_no}, headers=user_headers
        )
        assert_error(as_user, 403, "forbidden")
        unknown = await client.post(
            REFUNDS, json={"out_trade_no": "XTNOPE"}, headers=await admin_headers(app)
        )
        assert_error(unknown, 404, "order_not_found")
        assert fake_wechatpay.refunds == {}
