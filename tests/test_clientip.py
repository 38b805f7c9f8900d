"""The client's IP address (DESIGN §3): proxy headers only from trusted proxies."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from tests.conftest import AppFactory
from tests.fixtures.assertions import assert_error
from tests.stats.conftest import ADMIN
from xintu.clientip import ip_caller_key, resolve_client_ip
from xintu.models import RequestLog

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # No trusted proxy configured or an untrusted peer: the header is the client's word.
        ("203.0.113.7", ["1.2.3.4"], "203.0.113.7"),
        # A trusted proxy: the right-most address it did not add itself.
        ("10.0.0.5", ["1.1.1.1, 198.51.100.4, 10.0.0.7"], "198.51.100.4"),
        ("10.0.0.5", ["1.1.1.1", "198.51.100.4"], "198.51.100.4"),
        ("10.0.0.5", [" 198.51.100.4 "], "198.51.100.4"),
        ("10.0.0.5", ["::ffff:198.51.100.4"], "198.51.100.4"),
        ("fd00::1", ["2001:db8::1"], "2001:db8::1"),
        # Only proxies in the chain: the left-most of them.
        ("10.0.0.5", ["10.1.1.1, 10.2.2.2"], "10.1.1.1"),
        # Garbage anywhere right of the client: the header proves nothing.
        ("10.0.0.5", ["not-an-ip"], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.4, 1.2.3.4:80"], "10.0.0.5"),
        ("10.0.0.5", ["198.51.100.4, "], "10.0.0.5"),
        ("10.0.0.5", [], "10.0.0.5"),
        (None, ["1.2.3.4"], "unknown"),
    ],
)
def test_resolve_client_ip(peer: str | None, forwarded_for: list[str], expected: str) -> None:
    assert resolve_client_ip(peer, forwarded_for, PROXIES) == expected


def test_untrusted_by_default() -> None:
    assert resolve_client_ip("127.0.0.1", ["1.2.3.4"], []) == "127.0.0.1"


def test_ipv6_callers_are_keyed_by_their_64() -> None:
    assert ip_caller_key("2001:db8:1:2:aaaa::1") == ip_caller_key("2001:db8:1:2:bbbb::9")
    assert ip_caller_key("2001:db8:1:2::1") != ip_caller_key("2001:db8:1:3::1")
    assert ip_caller_key("198.51.100.4") == "ip:198.51.100.4"


async def _logged_ips(app: object) -> list[str | None]:
    from sqlalchemy import select

    await app.state.classification.writer.flush()  # type: ignore[attr-defined]
    async with app.state.db.sessionmaker() as session:  # type: ignore[attr-defined]
        rows = await session.scalars(select(RequestLog.ip_address).order_by(RequestLog.id))
        return list(rows.all())


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_client: AppFactory, sqlite_url: str
) -> None:
    """Rotating X-Forwarded-For values neither escape the admin login limit nor change the
    logged address, even from loopback."""
    async with make_client(database_url=sqlite_url, rate_limit_admin_login="3/hour", **ADMIN) as (
        app,
        client,
    ):
        statuses = []
        for number in range(5):
            response = await client.post(
                "/api/v1/admin/login",
                json={"username": "root", "password": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{number}"},
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 429, 429]
        assert_error(response, 429, "rate_limited")
        await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": "a" * 64},
            headers={"X-Forwarded-For": "198.51.100.99"},
        )
        await client.post(
            "/api/v1/classify",
            content=b"not an image",
            headers={"Content-Type": "image/jpeg", "X-Forwarded-For": "198.51.100.98"},
        )
        assert await _logged_ips(app) == ["127.0.0.1"]


async def test_from_a_trusted_proxy_the_right_most_untrusted_address_is_the_client(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(
        database_url=sqlite_url,
        client_host="10.0.0.5",
        trusted_proxies="10.0.0.0/8",
        rate_limit_admin_login="2/hour",
        **ADMIN,
    ) as (app, client):
        spoofed = {"X-Forwarded-For": "1.1.1.1, 198.51.100.4, 10.0.0.7"}
        for _ in range(2):
            response = await client.post(
                "/api/v1/admin/login", json={"username": "root", "password": "x"}, headers=spoofed
            )
            assert response.status_code == 401
        # The client's own left-most entry changes nothing: it is still 198.51.100.4.
        again = await client.post(
            "/api/v1/admin/login",
            json={"username": "root", "password": "x"},
            headers={"X-Forwarded-For": "9.9.9.9, 198.51.100.4"},
        )
        assert_error(again, 429, "rate_limited")
        # Another client behind the same proxy has its own limit.
        other = await client.post(
            "/api/v1/admin/login",
            json={"username": "root", "password": "x"},
            headers={"X-Forwarded-For": "198.51.100.5"},
        )
        assert other.status_code == 401
        await client.post(
            "/api/v1/classify",
            content=b"not an image",
            headers={"Content-Type": "image/jpeg", **spoofed},
        )
        assert await _logged_ips(app) == ["198.51.100.4"]


async def test_garbage_forwarded_for_from_a_trusted_proxy_falls_back_to_the_peer(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(
        database_url=sqlite_url, client_host="10.0.0.5", trusted_proxies="10.0.0.0/8"
    ) as (app, client):
        for value in ("not-an-ip", "198.51.100.4, <script>", "198.51.100.4:5000"):
            await client.post(
                "/api/v1/classify",
                content=b"not an image",
                headers={"Content-Type": "image/jpeg", "X-Forwarded-For": value},
            )
        assert await _logged_ips(app) == ["10.0.0.5"] * 3


def test_trusted_proxies_setting_parses_cidrs() -> None:
    from xintu.config import Settings

    settings = Settings(_env_file=None, trusted_proxies="10.0.0.0/8, 192.168.1.1")  # type: ignore[call-arg]
    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.168.1.1/32",
    ]
    with pytest.raises(ValueError, match="XINTU_TRUSTED_PROXIES"):
        Settings(_env_file=None, trusted_proxies="not-a-network")  # type: ignore[call-arg]
    assert Settings(_env_file=None).trusted_proxies == []  # type: ignore[call-arg]
