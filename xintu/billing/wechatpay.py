"""WeChat Pay API v3 for a direct merchant: request signing, answer and callback
verification, AEAD_AES_256_GCM decryption, JSAPI/Native prepay, query, close, refund.

Written on ``cryptography`` and ``aiohttp`` rather than the ``wechatpayv3`` SDK: the SDK
hard-codes its gateway (``https://api.mch.weixin.qq.com``; no setting for
``XINTU_WECHATPAY_API_BASE``), its async client needs ``httpx`` plus ``aiofiles``, its
callback check does not reject stale timestamps, and its debug logging prints callback
bodies and decrypted transactions. The protocol itself is small; see docs/BILLING.md.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from loguru import logger

from xintu.config import Settings
from xintu.errors import AppError

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
CHINA = timezone(timedelta(hours=8))


class PaymentUnavailable(AppError):
    status_code = 503
    code = "payment_unavailable"
    detail = "WeChat Pay is not configured or not reachable; no order was created"


class WechatPayError(AppError):
    status_code = 502
    code = "wechatpay_error"
    detail = "WeChat Pay refused the request"

    def __init__(self, detail: str | None = None, *, wechat_code: str = "") -> None:
        super().__init__(detail)
        self.wechat_code = wechat_code


class CallbackRejected(Exception):
    """A callback that is not provably from WeChat Pay (401), or not about one of our
    orders (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Unverifiable(CallbackRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, 401)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def _sign(private_key: rsa.RSAPrivateKey, message: str) -> str:
    signature = private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def _verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path} is not an RSA public key")
    return key


def load_platform_certificate(path: Path) -> tuple[str, rsa.RSAPublicKey]:
    """A platform certificate's serial (upper-case hex, as in ``Wechatpay-Serial``) and key."""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{path} does not hold an RSA key")
    return format(certificate.serial_number, "X"), key


class WechatPay:
    """One merchant's client. Every call goes to ``api_base`` (XINTU_WECHATPAY_API_BASE)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        mchid: str,
        appids: tuple[str, ...],
        merchant_serial: str,
        private_key: rsa.RSAPrivateKey,
        apiv3_key: bytes,
        verifiers: dict[str, rsa.RSAPublicKey],
        notify_url: str,
        timeout_s: float = 10.0,
        tolerance_s: int = 300,
    ) -> None:
        if len(apiv3_key) != 32:
            raise ValueError("XINTU_WECHATPAY_APIV3_KEY must be 32 bytes")
        self._http = http
        self.api_base = api_base.rstrip("/")
        self.mchid = mchid
        self.appids = appids
        self._serial = merchant_serial
        self._private_key = private_key
        self._aead = AESGCM(apiv3_key)
        self._verifiers = verifiers
        self.notify_url = notify_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._tolerance_s = tolerance_s

    def __repr__(self) -> str:
        return f"WechatPay(mchid={self.mchid!r}, api_base={self.api_base!r})"

    @property
    def appid(self) -> str:
        return self.appids[0]

    @classmethod
    def from_settings(cls, settings: Settings, http: aiohttp.ClientSession) -> WechatPay | None:
        """The client, or None (logged) when the merchant settings are incomplete."""
        required = {
            "XINTU_WECHATPAY_MCHID": settings.wechatpay_mchid,
            "XINTU_WECHATPAY_APPID": settings.wechatpay_appid,
            "XINTU_WECHATPAY_MERCHANT_SERIAL": settings.wechatpay_merchant_serial,
            "XINTU_WECHATPAY_PRIVATE_KEY_PATH": settings.wechatpay_private_key_path,
            "XINTU_WECHATPAY_APIV3_KEY": settings.wechatpay_apiv3_key,
            "XINTU_WECHATPAY_NOTIFY_URL": settings.wechatpay_notify_url,
        }
        missing = [name for name, value in required.items() if not value]
        verifiers: dict[str, rsa.RSAPublicKey] = {}
        try:
            if settings.wechatpay_public_key_path and settings.wechatpay_public_key_id:
                verifiers[settings.wechatpay_public_key_id] = load_public_key(
                    settings.wechatpay_public_key_path
                )
            if settings.wechatpay_platform_cert_path:
                serial, key = load_platform_certificate(settings.wechatpay_platform_cert_path)
                verifiers[serial] = key
            if not verifiers:
                missing.append("XINTU_WECHATPAY_PUBLIC_KEY_PATH/_ID (or _PLATFORM_CERT_PATH)")
            if missing:
                logger.info("WeChat Pay disabled; missing {}", ", ".join(missing))
                return None
            assert settings.wechatpay_private_key_path is not None
            private_key = load_private_key(settings.wechatpay_private_key_path)
        except (OSError, ValueError) as exc:
            logger.error("WeChat Pay disabled: cannot load a key: {}", exc)
            return None
        appids = tuple(
            dict.fromkeys(
                appid for appid in (settings.wechatpay_appid, settings.wechat_mp_appid) if appid
            )
        )
        apiv3_key = (settings.wechatpay_apiv3_key or "").encode()
        if len(apiv3_key) != 32:
            logger.error("WeChat Pay disabled: XINTU_WECHATPAY_APIV3_KEY must be 32 characters")
            return None
        return cls(
            http,
            api_base=settings.wechatpay_api_base,
            mchid=settings.wechatpay_mchid or "",
            appids=appids,
            merchant_serial=settings.wechatpay_merchant_serial or "",
            private_key=private_key,
            apiv3_key=apiv3_key,
            verifiers=verifiers,
            notify_url=settings.wechatpay_notify_url or "",
            tolerance_s=settings.wechatpay_notify_tolerance_s,
        )

    # -- signatures ---------------------------------------------------------------------------

    def authorization(self, method: str, path: str, body: str) -> str:
        """The ``Authorization`` header of a merchant request (path includes the query)."""
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n"
        signature = _sign(self._private_key, message)
        return (
            f'{SIGNATURE_TYPE} mchid="{self.mchid}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",serial_no="{self._serial}"'
        )

    def pay_params(self, appid: str, prepay_id: str) -> dict[str, str]:
        """What ``wx.requestPayment`` (and WeixinJSBridge) needs, signed with the merchant key."""
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        pay_sign = _sign(self._private_key, f"{appid}\n{timestamp}\n{nonce}\n{package}\n")
        return {
            "appId": appid,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check a WeChat Pay answer's or callback's signature; raises CallbackRejected."""
        serial = headers.get("wechatpay-serial", "")
        signature = headers.get("wechatpay-signature", "")
        timestamp = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        signature_type = headers.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if signature_type != SIGNATURE_TYPE:
            raise Unverifiable(f"unsupported signature type {signature_type[:40]!r}")
        if not (serial and signature and timestamp and nonce):
            raise Unverifiable("Wechatpay-* signature headers are missing")
        public_key = self._verifiers.get(serial)
        if public_key is None:
            raise Unverifiable(f"unknown Wechatpay-Serial {serial[:64]!r}")
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise Unverifiable("Wechatpay-Timestamp is not a number") from exc
        if abs(time.time() - sent_at) > self._tolerance_s:
            raise Unverifiable("Wechatpay-Timestamp is stale")
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        if not _verify(public_key, message, signature):
            raise Unverifiable("Wechatpay-Signature does not verify")

    def decrypt_resource(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Decrypt a callback's AEAD_AES_256_GCM ``resource`` with the APIv3 key."""
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise CallbackRejected("unsupported resource algorithm")
        try:
            plaintext = self._aead.decrypt(
                str(resource["nonce"]).encode(),
                base64.b64decode(str(resource["ciphertext"]), validate=True),
                str(resource.get("associated_data") or "").encode(),
            )
            decoded = json.loads(plaintext)
        except (KeyError, ValueError, InvalidTag) as exc:
            raise CallbackRejected("the resource does not decrypt") from exc
        if not isinstance(decoded, dict):
            raise CallbackRejected("the resource is not a JSON object")
        return decoded

    # -- API calls ----------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> Answer:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if payload else ""
        headers = {
            "Authorization": self.authorization(method, path, body),
            "Accept": "application/json",
            "User-Agent": "xintu-wechatpay/1",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http.request(
                method,
                self.api_base + path,
                data=body.encode() if payload is not None else None,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
                answer_headers = {key.lower(): value for key, value in response.headers.items()}
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("WeChat Pay {} {} unreachable: {}", method, path, type(exc).__name__)
            raise PaymentUnavailable("WeChat Pay is not reachable; retry later") from exc
        decoded: dict[str, Any] = {}
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise WechatPayError(f"WeChat Pay answered HTTP {status} without JSON") from exc
            decoded = parsed if isinstance(parsed, dict) else {}
        if 200 <= status < 300:
            try:
                self.verify(answer_headers, raw)
            except Unverifiable as exc:
                logger.error("WeChat Pay answer to {} {} rejected: {}", method, path, exc)
                raise WechatPayError("WeChat Pay's answer is not signed by WeChat Pay") from exc
            return Answer(status, decoded)
        wechat_code = str(decoded.get("code", ""))
        message = str(decoded.get("message", ""))[:200]
        logger.warning("WeChat Pay {} {} -> {} {} {}", method, path, status, wechat_code, message)
        if status >= 500 or status == 429:
            raise PaymentUnavailable(f"WeChat Pay answered HTTP {status}; retry later")
        detail = f"WeChat Pay: {wechat_code} {message}".strip()
        raise WechatPayError(detail, wechat_code=wechat_code)

    async def prepay(
        self,
        trade_type: str,
        *,
        appid: str,
        description: str,
        out_trade_no: str,
        amount_fen: int,
        expires_at: datetime,
        openid: str | None,
    ) -> str:
        """JSAPI prepay → ``prepay_id``; Native prepay → ``code_url``."""
        payload: dict[str, Any] = {
            "appid": appid,
            "mchid": self.mchid,
            "description": description[:127],
            "out_trade_no": out_trade_no,
            "time_expire": expires_at.astimezone(CHINA).isoformat(timespec="seconds"),
            "notify_url": self.notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"},
        }
        if trade_type == "jsapi":
            payload["payer"] = {"openid": openid}
            answer = await self.request("POST", "/v3/pay/transactions/jsapi", payload)
            value = answer.body.get("prepay_id")
        else:
            answer = await self.request("POST", "/v3/pay/transactions/native", payload)
            value = answer.body.get("code_url")
        if not isinstance(value, str) or not value:
            raise WechatPayError("WeChat Pay answered the prepay without prepay_id/code_url")
        return value

    async def query(self, out_trade_no: str) -> dict[str, Any]:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}?mchid={quote(self.mchid)}"
        return (await self.request("GET", path)).body

    async def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close"
        await self.request("POST", path, {"mchid": self.mchid})

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> dict[str, Any]:
        payload = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": reason[:80],
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        return (await self.request("POST", "/v3/refund/domestic/refunds", payload)).body
