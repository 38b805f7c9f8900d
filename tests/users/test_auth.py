"""WeChat and guest login, device merge, ``GET /me`` and encrypted session keys (DESIGN §4.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import AppFactory, wechat_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_wechat import FakeWechat
from xintu.billing.credits import change_credits
from xintu.models import CreditLedger, PaymentRecord, WechatUser
from xintu.users.crypto import DataCipher, DecryptionFailed, derive_data_key
from xintu.users.service import SESSION_KEY_PURPOSE


async def wechat_login(
    client: httpx.AsyncClient, code: str, device_id: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"code": code}
    if device_id:
        body["device_id"] = device_id
    return await client.post("/api/v1/auth/wechat/login", json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def users(app: FastAPI) -> list[WechatUser]:
    async with app.state.db.sessionmaker() as session:
        return list((await session.scalars(select(WechatUser).order_by(WechatUser.id))).all())


async def test_wechat_login_creates_user_with_welcome_credits(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=7)
    async with make_client(database_url=database_url, **settings) as (_, client):
        response = await wechat_login(client, "abc")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] > 0
        assert body["created"] is True
        assert body["user"]["credits"] == 7
        me = await client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() | {"id": 0} == {
        "success": True,
        "id": 0,
        "nickname": "微信用户",
        "avatar_url": "",
        "is_guest": False,
        "is_member": False,
        "member_until": None,
        "credits": 7,
    }


async def test_second_login_of_same_account_reuses_user_without_second_grant(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=7)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        first = (await wechat_login(client, "same#1")).json()
        second = (await wechat_login(client, "same#2")).json()
        assert second["user"]["id"] == first["user"]["id"]
        assert second["created"] is False
        assert second["user"]["credits"] == 7
        assert len(await users(app)) == 1


async def test_session_key_is_stored_encrypted_and_never_returned(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    async with make_client(database_url=sqlite_url, **wechat_settings(fake_wechat)) as (
        app,
        client,
    ):
        response = await wechat_login(client, "secret")
        session_key = fake_wechat.session_keys["o_secret"]
        assert session_key not in response.text
        me = await client.get("/api/v1/me", headers=bearer(response.json()["access_token"]))
        assert session_key not in me.text
        [user] = await users(app)
        stored = user.session_key_encrypted
        assert stored is not None
        assert session_key.encode() not in stored
        assert app.state.data_cipher.decrypt(stored, SESSION_KEY_PURPOSE) == session_key


def test_data_cipher_binds_key_and_purpose() -> None:
    cipher = DataCipher("key-one")
    stored = cipher.encrypt("secret", "a")
    assert cipher.decrypt(stored, "a") == "secret"
    assert len(derive_data_key("key-one")) == 32
    assert derive_data_key("key-one") == derive_data_key("key-one")
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(stored, "b")
    with pytest.raises(DecryptionFailed):
        DataCipher("key-two").decrypt(stored, "a")
    assert "key-one" not in repr(cipher)


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [
        ("err:40029", 400, "invalid_wechat_code"),
        ("err:45011", 429, "wechat_rate_limited"),
        ("err:40226", 403, "wechat_user_blocked"),
        ("err:-1", 503, "wechat_unavailable"),
        ("err:99999", 400, "wechat_login_failed"),
    ],
)
async def test_wechat_error_codes_become_clear_answers(
    make_client: AppFactory,
    sqlite_url: str,
    fake_wechat: FakeWechat,
    code: str,
    status: int,
    error_code: str,
) -> None:
    async with make_client(database_url=sqlite_url, **wechat_settings(fake_wechat)) as (
        app,
        client,
    ):
        assert_error(await wechat_login(client, code), status, error_code)
        assert await users(app) == []


async def test_reused_code_is_rejected(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    async with make_client(database_url=sqlite_url, **wechat_settings(fake_wechat)) as (_, client):
        assert (await wechat_login(client, "once")).status_code == 200
        assert_error(await wechat_login(client, "once"), 400, "invalid_wechat_code")


async def test_wrong_app_secret_is_a_server_problem(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, wechat_secret="wrong")
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        assert_error(await wechat_login(client, "x"), 503, "wechat_not_configured")


async def test_unreachable_wechat_is_503(make_client: AppFactory, sqlite_url: str) -> None:
    settings = {"wechat_appid": "a", "wechat_secret": "b", "wechat_api_base": "http://127.0.0.1:9"}
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        assert_error(await wechat_login(client, "x"), 503, "wechat_unavailable")


async def test_login_without_wechat_settings_is_503(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert_error(await wechat_login(client, "x"), 503, "wechat_not_configured")


async def test_official_account_oauth_login_reads_profile(
    make_client: AppFactory, sqlite_url: str, fake_wechat: FakeWechat
) -> None:
    async with make_client(database_url=sqlite_url, **wechat_settings(fake_wechat)) as (
        app,
        client,
    ):
        response = await client.get("/api/v1/auth/wechat/oauth", params={"code": "web1"})
        assert response.status_code == 200, response.text
        assert response.json()["user"]["nickname"] == "昵称web1"
        [user] = await users(app)
        assert user.mp_openid == "mp_web1"
        assert user.openid is None
        missing = await client.get("/api/v1/auth/wechat/oauth")
        assert_error(missing, 422, "validation_error")


async def test_guest_login_is_bound_to_device(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, guest_welcome_credits=3) as (app, client):
        first = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        again = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        other = await client.post("/api/v1/auth/guest", json={"device_id": "dev-2"})
        assert first.status_code == 200, first.text
        assert first.json()["user"]["is_guest"] is True
        assert first.json()["user"]["credits"] == 3
        assert again.json()["user"]["id"] == first.json()["user"]["id"]
        assert again.json()["user"]["credits"] == 3
        assert other.json()["user"]["id"] != first.json()["user"]["id"]
        assert len(await users(app)) == 2
        bad = await client.post("/api/v1/auth/guest", json={"device_id": ""})
        assert_error(bad, 422, "validation_error")


async def test_guest_login_disabled_is_403(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, guest_login=False) as (app, client):
        response = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        assert_error(response, 403, "guest_login_disabled")
        assert await users(app) == []


async def test_guest_is_merged_into_wechat_account_of_same_device(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=10, guest_welcome_credits=0)
    async with make_client(database_url=database_url, **settings) as (app, client):
        guest = (await client.post("/api/v1/auth/guest", json={"device_id": "dev-9"})).json()
        guest_id = guest["user"]["id"]
        async with app.state.db.sessionmaker.begin() as session:
            await change_credits(
                session, guest_id, 5, kind="purchase", reason="test", reference="o-guest"
            )
            session.add(
                PaymentRecord(
                    out_trade_no="XTGUEST1",
                    user_id=guest_id,
                    product_id="credits_100",
                    trade_type="native",
                    amount_fen=600,
                    status="paid",
                )
            )
        login = await wechat_login(client, "merge", device_id="dev-9")
        assert login.status_code == 200, login.text
        body = login.json()
        assert body["merged_guest_ids"] == [guest_id]
        assert body["user"]["credits"] == 15
        # The guest's old token now stands for the merged account.
        me = await client.get("/api/v1/me", headers=bearer(guest["access_token"]))
        assert me.json()["id"] == body["user"]["id"]
        assert me.json()["credits"] == 15
        # A second login on the device merges nothing more.
        again = await wechat_login(client, "merge#2", device_id="dev-9")
        assert again.json()["merged_guest_ids"] == []
        assert again.json()["user"]["credits"] == 15
        async with app.state.db.sessionmaker() as session:
            order = await session.scalar(
                select(PaymentRecord).where(PaymentRecord.out_trade_no == "XTGUEST1")
            )
            assert order is not None
            assert order.user_id == body["user"]["id"]
            kinds = (
                await session.execute(
                    select(CreditLedger.user_id, CreditLedger.kind, CreditLedger.delta).order_by(
                        CreditLedger.id
                    )
                )
            ).all()
    assert [(kind, delta) for _, kind, delta in kinds] == [
        ("purchase", 5),
        ("grant", 10),
        ("merge_out", -5),
        ("merge_in", 5),
    ]


async def test_concurrent_first_logins_create_one_user(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=4)
    async with make_client(database_url=database_url, **settings) as (app, client):
        responses = await asyncio.gather(*(wechat_login(client, f"race#{i}") for i in range(8)))
        assert all(response.status_code == 200 for response in responses), [
            response.text for response in responses
        ]
        assert len({response.json()["user"]["id"] for response in responses}) == 1
        async with app.state.db.sessionmaker() as session:
            grants = await session.scalar(
                select(func.count()).select_from(CreditLedger).where(CreditLedger.kind == "grant")
            )
        assert len(await users(app)) == 1
    assert grants == 1


async def test_me_requires_user_token(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert_error(await client.get("/api/v1/me"), 401, "not_authenticated")
        forged = await client.get("/api/v1/me", headers=bearer("not.a.token"))
        assert_error(forged, 401, "not_authenticated")
