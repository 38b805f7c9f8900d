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
from tests.billing.test_notify import assert_fail, paid_order, send
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


async def refund(app: FastAPI, client: httpx.AsyncClient, out_trade_no: str) -> httpx.Response:
    return await client.post(
        REFUNDS, json={"out_trade_no": out_trade_no}, headers=await admin_headers(app)
    )


async def test_refund_returns_money_and_takes_credits_back(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        response = await refund(app, client, out_trade_no)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["refund_status"]) == ("refunding", "PROCESSING")
        assert body["credits_taken_back"] == 100
        assert body["credits_shortfall"] == 0
        assert body["balance"] == 0
        refund_no = f"R{out_trade_no}"
        assert fake_wechatpay.refunds[refund_no]["amount"]["refund"] == 600
        fake_wechatpay.settle_refund(refund_no, "SUCCESS")
        callback = fake_wechatpay.refund_notification(refund_no)
        assert (await send(client, callback)).status_code == 204
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refunded_fen, order.refund_status) == (
            "refunded",
            600,
            "SUCCESS",
        )
        assert (await send(client, callback)).status_code == 204  # a repeat changes nothing
        assert [(kind, delta) for kind, delta, _ in await ledger(app, user_id)] == [
            ("purchase", 100),
            ("refund", -100),
        ]
        assert_error(await refund(app, client, out_trade_no), 409, "order_not_refundable")


async def test_attack_refund_still_processing_is_not_marked_refunded(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    """Issue 11: a refund was marked ``refunded`` while WeChat Pay still said PROCESSING."""
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        assert (await refund(app, client, out_trade_no)).json()["status"] == "refunding"
        # Asking again is asking WeChat Pay again: still PROCESSING, still not refunded.
        again = await refund(app, client, out_trade_no)
        assert (again.json()["status"], again.json()["refund_status"]) == (
            "refunding",
            "PROCESSING",
        )
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refunded_fen) == ("refunding", 0)
        assert [kind for kind, _, _ in await ledger(app, user_id)] == ["purchase", "refund"]
        # A retry after WeChat Pay finished learns the outcome.
        fake_wechatpay.settle_refund(f"R{out_trade_no}", "SUCCESS")
        done = await refund(app, client, out_trade_no)
        assert (done.json()["status"], done.json()["refunded_fen"]) == ("refunded", 600)


async def test_closed_refund_gives_back_exactly_what_it_took_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        await spend(app, user_id, 30)
        forced = await client.post(
            REFUNDS,
            json={"out_trade_no": out_trade_no, "force": True},
            headers=await admin_headers(app),
        )
        assert forced.json()["credits_taken_back"] == 70
        refund_no = f"R{out_trade_no}"
        fake_wechatpay.settle_refund(refund_no, "CLOSED")
        callback = fake_wechatpay.refund_notification(refund_no)
        outcomes = await asyncio.gather(*(send(client, callback) for _ in range(8)))
        assert [response.status_code for response in outcomes] == [204] * 8
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refund_status, order.refunded_fen) == ("paid", "CLOSED", 0)
        assert await balance(app, user_id) == 70
        assert [(kind, delta) for kind, delta, _ in await ledger(app, user_id)] == [
            ("purchase", 100),
            ("consume", -30),
            ("refund", -70),
            ("refund_undo", 70),
        ]
        # The order can be refunded again, under a new refund number.
        fake_wechatpay.refund_status = "SUCCESS"
        retried = await client.post(
            REFUNDS,
            json={"out_trade_no": out_trade_no, "force": True},
            headers=await admin_headers(app),
        )
        assert retried.json()["status"] == "refunded", retried.text
        assert retried.json()["out_refund_no"] != refund_no
        assert await balance(app, user_id) == 0


async def test_closed_membership_refund_gives_the_days_back(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay, "member_month")
        before = await member_until(app, user_id)
        assert before is not None
        await refund(app, client, out_trade_no)
        shortened = await member_until(app, user_id)
        assert shortened is not None
        assert shortened <= utcnow()
        fake_wechatpay.settle_refund(f"R{out_trade_no}", "CLOSED")
        response = await send(client, fake_wechatpay.refund_notification(f"R{out_trade_no}"))
        assert response.status_code == 204
        restored = await member_until(app, user_id)
        assert restored is not None
        assert abs((restored - before).total_seconds()) < 60


async def test_abnormal_refund_stays_refunding_for_an_operator(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        await refund(app, client, out_trade_no)
        fake_wechatpay.settle_refund(f"R{out_trade_no}", "ABNORMAL")
        response = await send(client, fake_wechatpay.refund_notification(f"R{out_trade_no}"))
        assert response.status_code == 204
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refund_status) == ("refunding", "ABNORMAL")
        assert await balance(app, user_id) == 0


async def test_attack_forged_or_mismatched_refund_callbacks_change_nothing(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await bought(app, client, fake_wechatpay)
        await refund(app, client, out_trade_no)
        refund_no = f"R{out_trade_no}"
        fake_wechatpay.settle_refund(refund_no, "CLOSED")
        entries = await ledger(app, user_id)
        closed = fake_wechatpay.refund_resource(refund_no)
        forged = fake_wechatpay.notification(
            closed,
            event_type="REFUND.CLOSED",
            original_type="refund",
            signing_key=fake_wechatpay.keys.attacker,
        )
        assert_fail(await send(client, forged), 401)
        tampered = fake_wechatpay.notification(
            closed, event_type="REFUND.CLOSED", original_type="refund", tamper_ciphertext=True
        )
        assert_fail(await send(client, tampered), 400)
        for overrides in (
            {"amount": {**closed["amount"], "refund": 1}},
            {"mchid": "1999999999"},
            {"out_trade_no": "XTNOSUCHORDER"},
        ):
            response = await send(
                client, fake_wechatpay.refund_notification(refund_no, **overrides)
            )
            assert_fail(response, 400)
        # A refund number we never used (made elsewhere) is acknowledged, and changes nothing.
        other = fake_wechatpay.refund_notification(refund_no, out_refund_no="RSOMETHINGELSE")
        assert (await send(client, other)).status_code == 204
        order = await order_row(app, out_trade_no)
        assert (order.status, order.refund_status) == ("refunding", "PROCESSING")
        assert await ledger(app, user_id) == entries
        assert await balance(app, user_id) == 0


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
        fake_wechatpay.refund_status = "SUCCESS"
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
