"""Vision LLMs behind the OpenAI-compatible chat completions API (DashScope, OpenAI, vLLM…).

Plain aiohttp rather than an SDK: one connection pool sized for the concurrency we need
(httpx's default pool holds ~31 req/s against a 200 ms server at 100 in flight, aiohttp
~450), no hidden retries (the hybrid classifier decides what happens after a failure),
and the request is exactly the documented wire format.
"""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from PIL import Image

from xintu.config import Settings
from xintu.inference.base import ClassifierError, Prediction, PreparedImage
from xintu.inference.parsing import SYSTEM_PROMPT, USER_PROMPT, UnparseableAnswer, parse_answer

# Formats every OpenAI-compatible vision endpoint accepts as a data URL.
_SENDABLE_FORMATS = {"jpeg", "png", "webp"}
# Sources whose pixels are exact (screenshots, graphics): re-encoded without chroma
# subsampling and at a higher quality, so that small coloured text stays legible.
_LOSSLESS_FORMATS = {"png", "gif", "bmp"}
_MAX_SEND_BYTES = 1_500_000
_MAX_SEND_SIDE = 2048
_RESIZE_SIDE = 1024
_EXIF_ORIENTATION = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    api_key: str | None
    base_url: str
    model: str

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


def provider_configs(settings: Settings) -> list[ProviderConfig]:
    """The providers named in ``XINTU_PROVIDERS``, in that order."""
    known = {
        "dashscope": ProviderConfig(
            "dashscope",
            settings.dashscope_api_key,
            settings.dashscope_base_url,
            settings.dashscope_model,
        ),
        "openai": ProviderConfig(
            "openai", settings.openai_api_key, settings.openai_base_url, settings.openai_model
        ),
    }
    configs = []
    for name in settings.providers:
        if name not in known:
            raise ValueError(f"Unknown provider {name!r} in XINTU_PROVIDERS")
        configs.append(known[name])
    return configs


def needs_reencoding(image: PreparedImage, max_side: int = _MAX_SEND_SIDE) -> bool:
    """Whether the upload is too big, too large in pixels (tokens grow with pixels) or in a
    format providers may refuse (HEIC, BMP, GIF)."""
    return not (
        image.format in _SENDABLE_FORMATS
        and len(image.data) <= _MAX_SEND_BYTES
        and max(image.width, image.height) <= max_side
    )


def image_payload(
    image: PreparedImage, max_side: int = _MAX_SEND_SIDE, resize_side: int = _RESIZE_SIDE
) -> tuple[str, bytes]:
    """The MIME type and bytes to send: the upload itself unless it needs re-encoding, else
    an upright JPEG with its long side at most ``resize_side``."""
    if not needs_reencoding(image, max_side):
        return image.mime, image.data
    picture = image.image
    if picture.mode in ("P", "PA", "LA", "RGBA") or "transparency" in picture.info:
        # Transparent areas become white, as viewers show them, not black.
        rgba = picture.convert("RGBA")
        picture = Image.new("RGB", rgba.size, (255, 255, 255))
        picture.paste(rgba, mask=rgba.getchannel("A"))
    else:
        picture = picture.convert("RGB")
    picture.thumbnail((resize_side, resize_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # Re-encoding drops EXIF, and with it the orientation a viewer would apply.
    transpose = _ORIENTATION_TRANSPOSE.get(_orientation(image.image))
    if transpose is not None:
        picture = picture.transpose(transpose)
    buffer = io.BytesIO()
    if image.format in _LOSSLESS_FORMATS:
        picture.save(buffer, "JPEG", quality=90, subsampling=0)
    else:
        picture.save(buffer, "JPEG", quality=85)
    return "image/jpeg", buffer.getvalue()


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (ValueError, TypeError, OSError):  # broken EXIF is common and harmless here
        return 1


class RemoteClassifier:
    """One OpenAI-compatible provider. Every failure becomes a ``ClassifierError``."""

    def __init__(
        self,
        config: ProviderConfig,
        session: aiohttp.ClientSession,
        timeout_s: float,
        max_side: int = _RESIZE_SIDE,
    ) -> None:
        self.name = config.name
        self.max_side = max_side
        self.model = config.model
        self.config = config
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._url = config.base_url.rstrip("/") + "/chat/completions"

    async def classify(self, image: PreparedImage) -> Prediction:
        if needs_reencoding(image, self.max_side):
            # Vision models bill by pixels: never send more than max_side on the long side.
            mime, data = await asyncio.to_thread(image_payload, image, self.max_side, self.max_side)
        else:
            mime, data = image.mime, image.data
        data_url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 200,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_url}},
                        {"type": "text", "text": USER_PROMPT},
                    ],
                },
            ],
        }
        headers = {
            "Authorization": f"Bearer {self.config.api_key}",
            "Content-Type": "application/json",
        }
        try:
            async with self._session.post(
                self._url, data=orjson.dumps(body), headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ClassifierError(
                        f"{self.name} answered HTTP {response.status}: {raw[:200]!r}"
                    )
        except TimeoutError as exc:
            raise ClassifierError(f"{self.name} timed out") from exc
        except aiohttp.ClientError as exc:
            raise ClassifierError(f"{self.name} unreachable: {exc}") from exc
        return self._prediction(raw)

    def _prediction(self, raw: bytes) -> Prediction:
        try:
            payload: dict[str, Any] = orjson.loads(raw)
            content = payload["choices"][0]["message"]["content"]
            if isinstance(content, list):  # some servers answer with content parts
                content = "".join(part.get("text", "") for part in content)
            parsed = parse_answer(str(content))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ClassifierError(f"{self.name} sent a malformed response") from exc
        except UnparseableAnswer as exc:
            raise ClassifierError(f"{self.name}: {exc}") from exc
        usage = payload.get("usage") or {}
        return Prediction(
            category=parsed.category,
            confidence=parsed.confidence,
            description=parsed.description,
            model=self.model,
            inference_method="remote",
            provider=self.name,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )


def create_http_session(max_concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=max_concurrency, limit_per_host=max_concurrency)
    return aiohttp.ClientSession(connector=connector)
