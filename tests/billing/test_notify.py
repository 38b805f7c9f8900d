"""WeChat Pay callbacks: verified, decrypted, checked, applied exactly once (DESIGN §4.4)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from tests.billing.support import balance, ledger, ledger_count, member_until, order_row
from tests.billing.support import make_user as _make_user
from tests.conftest import AppFactory, wechatpay_settings
from tests.fixtures.fake_wechatpay import FakeWechatPay
from xintu.billing.service import get_order

NOTIFY = "/api/v1/billing/wechatpay/notify"


async def paid_order(
    app: FastAPI, client: httpx.AsyncClient, fake: FakeWechatPay, product_id: str = "credits_100"
) -> tuple[int, str]:
    """A user, and an order of theirs that the user has paid at WeChat Pay."""
    user_id, headers = await _make_user(app)
    response = await client.post(
        "/api/v1/billing/orders",
        json={"product_id": product_id, "trade_type": "jsapi"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    out_trade_no = response.json()["out_trade_no"]
    fake.pay(out_trade_no, openid="o_buyer")
    return user_id, out_trade_no


async def send(client: httpx.AsyncClient, callback: tuple[dict[str, str], bytes]) -> httpx.Response:
    headers, body = callback
    return await client.post(NOTIFY, content=body, headers=headers)


def assert_fail(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "FAIL"
    assert body["message"]


async def test_valid_callback_marks_paid_and_grants_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        callback = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        response = await send(client, callback)
        assert response.status_code == 204
        assert response.content == b""
        order = await order_row(app, out_trade_no)
        assert order.status == "paid"
        assert order.transaction_id == fake_wechatpay.orders[out_trade_no]["transaction_id"]
        assert order.payer_openid == "o_buyer"
        assert await balance(app, user_id) == 100
        # Replays, byte for byte and freshly signed, are acknowledged and change nothing.
        assert (await send(client, callback)).status_code == 204
        replay = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        assert (await send(client, replay)).status_code == 204
        assert await balance(app, user_id) == 100
        assert await ledger(app, user_id) == [("purchase", 100, 100)]


async def test_concurrent_identical_callbacks_grant_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        callback = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        responses = await asyncio.gather(*(send(client, callback) for _ in range(20)))
        assert [response.status_code for response in responses] == [204] * 20
        assert await balance(app, user_id) == 100
        assert await ledger(app, user_id) == [("purchase", 100, 100)]
        assert (await order_row(app, out_trade_no)).status == "paid"


async def test_concurrent_callback_and_order_query_grant_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        callback = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        await asyncio.gather(
            *(send(client, callback) for _ in range(5)),
            *(get_order(app.state.billing, user_id, out_trade_no) for _ in range(5)),
        )
        assert await balance(app, user_id) == 100
        assert await ledger(app, user_id) == [("purchase", 100, 100)]


async def test_membership_callback_extends_membership_once(
    make_client: AppFactory, database_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=database_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay, "member_month")
        callback = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        responses = await asyncio.gather(*(send(client, callback) for _ in range(5)))
        assert {response.status_code for response in responses} == {204}
        until = await member_until(app, user_id)
        assert until is not None
        days = (until.timestamp() - time.time()) / 86400
        assert 29.9 < days <= 30
        assert await ledger(app, user_id) == [("membership", 0, 0)]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged_signature", 401),
        ("wrong_serial", 401),
        ("stale_timestamp", 401),
        ("future_timestamp", 401),
        ("tampered_ciphertext", 400),
        ("wrong_amount", 400),
        ("wrong_mchid", 400),
        ("wrong_appid", 400),
        ("unknown_order", 400),
    ],
)
async def test_bad_callback_is_rejected_and_changes_nothing(
    make_client: AppFactory,
    sqlite_url: str,
    fake_wechatpay: FakeWechatPay,
    tmp_path: Path,
    case: str,
    status: int,
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        transaction = fake_wechatpay.transaction(out_trade_no)
        options: dict[str, Any] = {}
        if case == "forged_signature":
            options["signing_key"] = fake_wechatpay.keys.attacker
        elif case == "wrong_serial":
            options["serial"] = "PUB_KEY_ID_SOMEONE_ELSE"
        elif case == "stale_timestamp":
            options["timestamp"] = int(time.time()) - 301
        elif case == "future_timestamp":
            options["timestamp"] = int(time.time()) + 301
        elif case == "tampered_ciphertext":
            options["tamper_ciphertext"] = True
        elif case == "wrong_amount":
            transaction["amount"] = {"total": 1, "payer_total": 1, "currency": "CNY"}
        elif case == "wrong_mchid":
            transaction["mchid"] = "1900000999"
        elif case == "wrong_appid":
            transaction["appid"] = "wx_other_app"
        elif case == "unknown_order":
            transaction["out_trade_no"] = "XT00000000000000unknown"
        entries = await ledger_count(app)
        response = await send(client, fake_wechatpay.notification(transaction, **options))
        assert_fail(response, status)
        assert (await order_row(app, out_trade_no)).status == "pending"
        assert await balance(app, user_id) == 0
        assert await ledger_count(app) == entries


async def test_body_altered_after_signing_is_rejected(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        headers, body = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        response = await send(client, (headers, body.replace(b'"summary"', b'"Summary"')))
        assert_fail(response, 401)
        missing = await client.post(NOTIFY, content=body)
        assert_fail(missing, 401)
        assert await balance(app, user_id) == 0


async def test_unpaid_trade_state_is_acknowledged_without_change(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        transaction = fake_wechatpay.transaction(out_trade_no, trade_state="NOTPAY")
        assert (await send(client, fake_wechatpay.notification(transaction))).status_code == 204
        refund_event = fake_wechatpay.notification(
            fake_wechatpay.transaction(out_trade_no), event_type="REFUND.SUCCESS"
        )
        assert (await send(client, refund_event)).status_code == 204
        assert (await order_row(app, out_trade_no)).status == "pending"
        assert await balance(app, user_id) == 0


async def test_callback_without_wechatpay_settings_is_rejected(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert_fail(await client.post(NOTIFY, content=b"{}"), 400)


async def test_platform_certificate_mode_verifies_callbacks(
    make_client: AppFactory, sqlite_url: str, fake_wechatpay: FakeWechatPay, tmp_path: Path
) -> None:
    platform = fake_wechatpay.keys.platform
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(platform.public_key())
        .serial_number(0x5157F09EFDC096DE15EBE81A47057A7232F1B8E2)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(platform, hashes.SHA256())
    )
    cert_path = tmp_path / "wechatpay_platform.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    fake_wechatpay.public_key_id = "5157F09EFDC096DE15EBE81A47057A7232F1B8E2"
    settings = wechatpay_settings(fake_wechatpay, tmp_path / "keys")
    settings.update(
        wechatpay_public_key_path=None,
        wechatpay_public_key_id=None,
        wechatpay_platform_cert_path=cert_path,
    )
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        user_id, out_trade_no = await paid_order(app, client, fake_wechatpay)
        callback = fake_wechatpay.notification(fake_wechatpay.transaction(out_trade_no))
        assert (await send(client, callback)).status_code == 204
        assert await balance(app, user_id) == 100
