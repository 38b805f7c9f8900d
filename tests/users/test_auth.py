"""WeChat and guest login, device merge, ``GET /me`` and encrypted session keys (DESIGN §4.3)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import AppFactory, wechat_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_wechat import FakeWechat
from xintu.billing.credits import change_credits
from xintu.models import CreditLedger, ImageEditTask, PaymentRecord, WechatUser
from xintu.models.base import utcnow
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


async def test_guest_login_hands_an_existing_guest_only_to_its_token(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, guest_welcome_credits=3) as (app, client):
        first = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        assert first.status_code == 200, first.text
        assert first.json()["user"]["is_guest"] is True
        assert first.json()["user"]["credits"] == 3
        renewed = await client.post(
            "/api/v1/auth/guest",
            json={"device_id": "dev-1"},
            headers=bearer(first.json()["access_token"]),
        )
        assert renewed.json()["user"]["id"] == first.json()["user"]["id"]
        assert renewed.json()["created"] is False
        assert renewed.json()["user"]["credits"] == 3
        # The same device id without the guest's token is somebody else: a new guest.
        stranger = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        assert stranger.json()["user"]["id"] != first.json()["user"]["id"]
        assert stranger.json()["created"] is True
        assert len(await users(app)) == 2
        bad = await client.post("/api/v1/auth/guest", json={"device_id": ""})
        assert_error(bad, 422, "validation_error")


async def test_guest_login_disabled_is_403(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, guest_login=False) as (app, client):
        response = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        assert_error(response, 403, "guest_login_disabled")
        assert await users(app) == []


async def guest_login(client: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/guest", json={"device_id": device_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def give_guest_things(app: FastAPI, guest_id: int, credits: int, order_no: str) -> None:
    """Credits bought and a paid order, as a guest accumulates them."""
    async with app.state.db.sessionmaker.begin() as session:
        await change_credits(
            session, guest_id, credits, kind="purchase", reason="test", reference=order_no
        )
        session.add(
            PaymentRecord(
                out_trade_no=order_no,
                user_id=guest_id,
                product_id="credits_100",
                trade_type="native",
                amount_fen=600,
                status="paid",
            )
        )


async def order_owner(app: FastAPI, order_no: str) -> int:
    async with app.state.db.sessionmaker() as session:
        owner = await session.scalar(
            select(PaymentRecord.user_id).where(PaymentRecord.out_trade_no == order_no)
        )
    assert owner is not None
    return owner


async def test_guest_is_merged_when_its_own_token_comes_with_the_wechat_login(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=10, guest_welcome_credits=0)
    async with make_client(database_url=database_url, **settings) as (app, client):
        guest = await guest_login(client, "dev-9")
        guest_id = guest["user"]["id"]
        await give_guest_things(app, guest_id, 5, "XTGUEST1")
        login = await client.post(
            "/api/v1/auth/wechat/login",
            json={"code": "merge", "device_id": "dev-9"},
            headers=bearer(guest["access_token"]),
        )
        assert login.status_code == 200, login.text
        body = login.json()
        assert body["merged_guest_ids"] == [guest_id]
        assert body["user"]["credits"] == 15
        # The guest's old token does not become the account: it stops working.
        assert_error(
            await client.get("/api/v1/me", headers=bearer(guest["access_token"])),
            401,
            "not_authenticated",
        )
        me = await client.get("/api/v1/me", headers=bearer(body["access_token"]))
        assert me.json()["credits"] == 15
        # A second login (even with the stale guest token) merges nothing more.
        again = await wechat_login(client, "merge#2", device_id="dev-9")
        assert again.json()["merged_guest_ids"] == []
        assert again.json()["user"]["credits"] == 15
        assert await order_owner(app, "XTGUEST1") == body["user"]["id"]
        async with app.state.db.sessionmaker() as session:
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


async def test_attack_wechat_login_with_a_victims_device_id_takes_nothing(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    """Issue 11 (a): the attacker logs into their own WeChat account with the victim
    guest's device id; before, they received the victim's credits, orders and edits."""
    settings = wechat_settings(fake_wechat, welcome_credits=10)
    async with make_client(database_url=database_url, **settings) as (app, client):
        victim = await guest_login(client, "victim-device")
        victim_id = victim["user"]["id"]
        victim_headers = bearer(victim["access_token"])
        await give_guest_things(app, victim_id, 50, "XTVICTIM1")
        async with app.state.db.sessionmaker.begin() as session:
            await change_credits(
                session, victim_id, 0, kind="membership", reason="t", reference="m"
            )
            victim_row = await session.get(WechatUser, victim_id)
            assert victim_row is not None
            victim_row.member_until = utcnow() + timedelta(days=30)
            session.add(
                ImageEditTask(
                    id="victim-task",
                    user_id=victim_id,
                    operation="sketch",
                    params_json="{}",
                    cache_key="k" * 64,
                    status="succeeded",
                    created_at=utcnow(),
                )
            )
        before = await ledger_of(app)

        attack = await wechat_login(client, "attacker", device_id="victim-device")
        assert attack.status_code == 200, attack.text
        attacker = attack.json()
        assert attacker["merged_guest_ids"] == []
        assert attacker["user"]["credits"] == 10
        assert attacker["user"]["is_member"] is False
        attacker_headers = bearer(attacker["access_token"])
        assert (
            await client.get("/api/v1/edit/tasks/victim-task", headers=attacker_headers)
        ).status_code == 404

        me = await client.get("/api/v1/me", headers=victim_headers)
        assert me.status_code == 200, me.text
        assert (me.json()["id"], me.json()["credits"], me.json()["is_member"]) == (
            victim_id,
            50,
            True,
        )
        assert (
            await client.get("/api/v1/edit/tasks/victim-task", headers=victim_headers)
        ).status_code == 200
        assert await order_owner(app, "XTVICTIM1") == victim_id
        # Only the attacker's own welcome grant was added to the ledger.
        after = await ledger_of(app)
        assert after[: len(before)] == before
        assert [(kind, delta) for _, kind, delta in after[len(before) :]] == [("grant", 10)]


async def test_attack_guest_minted_on_a_device_id_never_becomes_its_owner(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    """Issue 11 (b): the attacker mints a guest on the owner's device id before the owner
    logs in; before, after the owner's WeChat login the attacker's token acted as the owner."""
    settings = wechat_settings(fake_wechat, welcome_credits=10)
    async with make_client(database_url=database_url, **settings) as (app, client):
        planted = await guest_login(client, "owner-device")
        planted_headers = bearer(planted["access_token"])
        # The owner's device asks for its guest: it gets a guest of its own.
        owner_guest = await guest_login(client, "owner-device")
        assert owner_guest["user"]["id"] != planted["user"]["id"]
        await give_guest_things(app, owner_guest["user"]["id"], 7, "XTOWNER1")
        owner = await client.post(
            "/api/v1/auth/wechat/login",
            json={"code": "owner", "device_id": "owner-device"},
            headers=bearer(owner_guest["access_token"]),
        )
        assert owner.status_code == 200, owner.text
        owner_body = owner.json()
        assert owner_body["merged_guest_ids"] == [owner_guest["user"]["id"]]
        assert owner_body["user"]["credits"] == 17

        me = await client.get("/api/v1/me", headers=planted_headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == planted["user"]["id"]
        assert me.json()["credits"] == 0
        credits = await client.get("/api/v1/me/credits", headers=planted_headers)
        assert credits.json()["balance"] == 0
        assert credits.json()["ledger"] == []
        owner_credits = await client.get(
            "/api/v1/me/credits", headers=bearer(owner_body["access_token"])
        )
        assert owner_credits.json()["balance"] == 17
        # A WeChat login without the planted guest's token did not merge it either.
        assert [user.id for user in await users(app) if user.merged_into_id is not None] == [
            owner_guest["user"]["id"]
        ]


async def test_a_wechat_accounts_token_on_another_login_merges_nothing(
    make_client: AppFactory, database_url: str, fake_wechat: FakeWechat
) -> None:
    settings = wechat_settings(fake_wechat, welcome_credits=10)
    async with make_client(database_url=database_url, **settings) as (app, client):
        first = (await wechat_login(client, "alice")).json()
        second = await client.post(
            "/api/v1/auth/wechat/login",
            json={"code": "mallory"},
            headers=bearer(first["access_token"]),
        )
        assert second.json()["merged_guest_ids"] == []
        assert second.json()["user"]["credits"] == 10
        me = await client.get("/api/v1/me", headers=bearer(first["access_token"]))
        assert me.json()["credits"] == 10
        assert all(user.merged_into_id is None for user in await users(app))


async def ledger_of(app: FastAPI) -> list[tuple[int, str, int]]:
    async with app.state.db.sessionmaker() as session:
        rows = await session.execute(
            select(CreditLedger.user_id, CreditLedger.kind, CreditLedger.delta).order_by(
                CreditLedger.id
            )
        )
        return [(user_id, kind, delta) for user_id, kind, delta in rows.all()]


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
