"""WeChat login APIs: mini-program ``jscode2session`` and official-account web OAuth.

Every call goes to ``XINTU_WECHAT_API_BASE``. WeChat answers errors with HTTP 200 and an
``errcode``; those become clear 4xx/503 answers here. Session keys and access tokens are
never logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger

from xintu.errors import AppError


class WechatNotConfigured(AppError):
    status_code = 503
    code = "wechat_not_configured"
    detail = "WeChat login is not configured on this server"


class InvalidWechatCode(AppError):
    status_code = 400
    code = "invalid_wechat_code"
    detail = "The WeChat login code is invalid, expired or already used"


class WechatRateLimited(AppError):
    status_code = 429
    code = "wechat_rate_limited"
    detail = "WeChat rejected the login: too many requests; retry later"


class WechatUserBlocked(AppError):
    status_code = 403
    code = "wechat_user_blocked"
    detail = "WeChat blocked this login (high-risk user)"


class WechatUnavailable(AppError):
    status_code = 503
    code = "wechat_unavailable"
    detail = "WeChat is busy or unreachable; retry later"


class WechatLoginFailed(AppError):
    status_code = 400
    code = "wechat_login_failed"
    detail = "WeChat refused the login"


_ERRORS: dict[int, type[AppError]] = {
    40029: InvalidWechatCode,  # invalid code
    40163: InvalidWechatCode,  # code already used
    41008: InvalidWechatCode,  # missing code
    42003: InvalidWechatCode,  # OAuth code expired
    45011: WechatRateLimited,  # API minute-quota reached
    40226: WechatUserBlocked,  # high-risk user intercepted
    -1: WechatUnavailable,  # system busy
}
# Our own app id or secret is wrong: the client cannot fix that.
_MISCONFIGURED = {40013, 40125, 40001, 41002, 41004}

WECHAT_ERRORS = (
    WechatNotConfigured,
    InvalidWechatCode,
    WechatRateLimited,
    WechatUserBlocked,
    WechatUnavailable,
    WechatLoginFailed,
)


@dataclass(frozen=True, slots=True)
class MiniProgramSession:
    openid: str
    session_key: str
    unionid: str | None


@dataclass(frozen=True, slots=True)
class OAuthProfile:
    openid: str
    unionid: str | None
    nickname: str
    avatar_url: str


class WechatClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_base: str,
        timeout_s: float,
        *,
        appid: str | None,
        secret: str | None,
        mp_appid: str | None,
        mp_secret: str | None,
    ) -> None:
        self._http = http
        self._base = api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._appid, self._secret = appid, secret
        self._mp_appid, self._mp_secret = mp_appid, mp_secret

    def __repr__(self) -> str:
        return f"WechatClient({self._base!r})"

    async def code_to_session(self, code: str) -> MiniProgramSession:
        """``jscode2session``: the mini-program user's openid and session key."""
        if not (self._appid and self._secret):
            raise WechatNotConfigured()
        body = await self._get(
            "/sns/jscode2session",
            {
                "appid": self._appid,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        openid, session_key = body.get("openid"), body.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str):
            raise WechatUnavailable("WeChat answered without openid or session_key")
        return MiniProgramSession(openid, session_key, _optional_str(body.get("unionid")))

    async def oauth_profile(self, code: str) -> OAuthProfile:
        """Official-account web OAuth: exchange the code, then read the user's profile."""
        if not (self._mp_appid and self._mp_secret):
            raise WechatNotConfigured()
        token = await self._get(
            "/sns/oauth2/access_token",
            {
                "appid": self._mp_appid,
                "secret": self._mp_secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
        openid, access_token = token.get("openid"), token.get("access_token")
        if not isinstance(openid, str) or not openid or not isinstance(access_token, str):
            raise WechatUnavailable("WeChat answered without openid or access_token")
        nickname, avatar_url = "", ""
        unionid = _optional_str(token.get("unionid"))
        if str(token.get("scope", "")).find("snsapi_userinfo") >= 0:
            info = await self._get(
                "/sns/userinfo", {"access_token": access_token, "openid": openid, "lang": "zh_CN"}
            )
            nickname = str(info.get("nickname") or "")[:64]
            avatar_url = str(info.get("headimgurl") or "")[:512]
            unionid = _optional_str(info.get("unionid")) or unionid
        return OAuthProfile(openid, unionid, nickname, avatar_url)

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._http.get(
                self._base + path, params=params, timeout=self._timeout
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("WeChat {} unreachable: {}", path, type(exc).__name__)
            raise WechatUnavailable() from exc
        if status >= 500 or status == 429:
            raise WechatUnavailable(f"WeChat answered HTTP {status}")
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise WechatUnavailable("WeChat answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise WechatUnavailable("WeChat answered something that is not a JSON object")
        errcode = body.get("errcode", 0)
        if errcode:
            errmsg = str(body.get("errmsg", ""))[:200]
            logger.info("WeChat {} errcode {}: {}", path, errcode, errmsg)
            if errcode in _MISCONFIGURED:
                raise WechatNotConfigured(f"WeChat rejected our app credentials ({errcode})")
            error = _ERRORS.get(errcode, WechatLoginFailed) if isinstance(errcode, int) else None
            error = error or WechatLoginFailed
            raise error(f"{error.detail} (WeChat errcode {errcode})")
        return body


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
