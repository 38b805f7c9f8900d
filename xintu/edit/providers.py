"""Remote image editing: DashScope (Qwen image edit) and OpenAI (images/edits).

Both sit behind one small protocol, ``ImageEditor.edit(image, mime, prompt)``; the chain
tries them in the order of ``XINTU_EDIT_PROVIDERS`` with one circuit breaker each, the
same discipline as classification: a timeout, 429, 5xx, refused connection or malformed
answer is a provider failure and the next provider is tried. Plain aiohttp, no hidden
retries: retrying a task later is the worker's decision.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from loguru import logger

from xintu.config import Settings
from xintu.images.validation import sniff_format
from xintu.inference.hybrid import CircuitBreaker

_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_MAX_RESULT_BYTES = 50 * 1024 * 1024


class EditProviderError(Exception):
    """A provider could not edit the image.

    ``transient``: worth retrying later (timeout, 429, 5xx, unreachable, malformed answer).
    Otherwise the provider refused this request (e.g. 400 content policy): retrying the
    same input will not help.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class EditedImage:
    data: bytes
    mime: str
    provider: str
    model: str


class ImageEditor(Protocol):
    name: str
    model: str

    async def edit(self, image: bytes, mime: str, prompt: str) -> EditedImage: ...


def _status_error(name: str, status: int, raw: bytes) -> EditProviderError:
    transient = status == 429 or status >= 500 or status in (401, 403, 408)
    return EditProviderError(f"{name} answered HTTP {status}: {raw[:200]!r}", transient=transient)


def _checked_image(name: str, model: str, data: bytes) -> EditedImage:
    image_format = sniff_format(data)
    if image_format not in _MIME:
        raise EditProviderError(f"{name} returned something that is not an image", transient=True)
    return EditedImage(data=data, mime=_MIME[image_format], provider=name, model=model)


class _HttpEditor:
    def __init__(
        self,
        name: str,
        api_key: str,
        base_url: str,
        model: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
    ) -> None:
        self.name = name
        self.model = model
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _request(self, method: str, url: str, **kwargs: Any) -> bytes:
        try:
            async with self._session.request(
                method, url, timeout=self._timeout, **kwargs
            ) as response:
                raw = await response.content.read(_MAX_RESULT_BYTES + 1)
                if response.status != 200:
                    raise _status_error(self.name, response.status, raw)
                if len(raw) > _MAX_RESULT_BYTES:
                    raise EditProviderError(f"{self.name} answer is too large", transient=False)
                return raw
        except TimeoutError as exc:
            raise EditProviderError(f"{self.name} timed out", transient=True) from exc
        except aiohttp.ClientError as exc:
            raise EditProviderError(f"{self.name} unreachable: {exc}", transient=True) from exc

    async def _download(self, url: str) -> bytes:
        if not url.startswith(("https://", "http://")):
            raise EditProviderError(f"{self.name} sent a bad image URL", transient=True)
        return await self._request("GET", url)


class DashScopeEditor(_HttpEditor):
    """Qwen image edit over DashScope's synchronous multimodal-generation API.

    POST {base}/services/aigc/multimodal-generation/generation with
    ``input.messages[0].content = [{"image": <data URL>}, {"text": <prompt>}]``; the answer
    holds ``output.choices[0].message.content[].image``, a URL (valid 24 h) that we fetch.
    """

    async def edit(self, image: bytes, mime: str, prompt: str) -> EditedImage:
        data_url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        body = {
            "model": self.model,
            "input": {
                "messages": [{"role": "user", "content": [{"image": data_url}, {"text": prompt}]}]
            },
            "parameters": {"negative_prompt": "", "watermark": False},
        }
        raw = await self._request(
            "POST",
            f"{self._base_url}/services/aigc/multimodal-generation/generation",
            data=orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EditProviderError(
                f"{self.name} sent a malformed response", transient=True
            ) from exc
        try:
            content = payload["output"]["choices"][0]["message"]["content"]
            url = next(
                part["image"] for part in content if isinstance(part, dict) and "image" in part
            )
        except (KeyError, IndexError, TypeError, StopIteration) as exc:
            code = payload.get("code") if isinstance(payload, dict) else None
            raise EditProviderError(
                f"{self.name} sent a malformed response{f' ({code})' if code else ''}",
                transient=True,
            ) from exc
        return _checked_image(self.name, self.model, await self._download(str(url)))


class OpenAIEditor(_HttpEditor):
    """OpenAI's ``POST /images/edits`` (multipart ``image``, ``prompt``, ``model``)."""

    async def edit(self, image: bytes, mime: str, prompt: str) -> EditedImage:
        form = aiohttp.FormData()
        form.add_field("model", self.model)
        form.add_field("prompt", prompt)
        form.add_field("n", "1")
        extension = mime.rsplit("/", 1)[-1]
        form.add_field("image", image, filename=f"image.{extension}", content_type=mime)
        if self.model == "dall-e-2":
            # gpt-image-* always answers base64 and rejects this field.
            form.add_field("response_format", "b64_json")
        raw = await self._request(
            "POST",
            f"{self._base_url}/images/edits",
            data=form,
            headers={"Authorization": f"Bearer {self._api_key}"},
        )
        try:
            item = orjson.loads(raw)["data"][0]
            if item.get("b64_json"):
                data = base64.b64decode(item["b64_json"], validate=True)
            else:
                data = await self._download(str(item["url"]))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise EditProviderError(
                f"{self.name} sent a malformed response", transient=True
            ) from exc
        return _checked_image(self.name, self.model, data)


@dataclass(slots=True)
class EditorSlot:
    editor: ImageEditor
    breaker: CircuitBreaker
    configured: bool


class NoEditorAnswered(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class RemoteEditChain:
    """The configured providers in order, each behind its circuit breaker."""

    def __init__(self, slots: list[EditorSlot]) -> None:
        self.slots = slots

    @property
    def available(self) -> bool:
        return any(slot.configured for slot in self.slots)

    async def edit(self, image: bytes, mime: str, prompt: str) -> EditedImage:
        errors: list[str] = []
        transient = False
        for slot in self.slots:
            if not slot.configured:
                continue
            if not slot.breaker.try_acquire():
                errors.append(f"{slot.editor.name}: circuit open")
                transient = True
                continue
            try:
                edited = await slot.editor.edit(image, mime, prompt)
            except EditProviderError as exc:
                if exc.transient:
                    slot.breaker.record_failure()
                    transient = True
                else:
                    # The provider works; it refused this input.
                    slot.breaker.record_success()
                logger.warning("edit provider {} failed: {}", slot.editor.name, exc)
                errors.append(str(exc))
                continue
            except BaseException:
                slot.breaker.record_failure()
                raise
            slot.breaker.record_success()
            return edited
        raise NoEditorAnswered(
            "; ".join(errors) or "no image-edit provider is configured", transient=transient
        )


def build_edit_chain(settings: Settings, session: aiohttp.ClientSession) -> RemoteEditChain:
    slots = []
    for name in settings.edit_providers:
        editor: ImageEditor
        if name == "dashscope":
            key = settings.dashscope_api_key
            editor = DashScopeEditor(
                name,
                key or "",
                settings.edit_dashscope_base_url,
                settings.edit_dashscope_model,
                session,
                settings.edit_remote_timeout_s,
            )
        elif name == "openai":
            key = settings.openai_api_key
            editor = OpenAIEditor(
                name,
                key or "",
                settings.edit_openai_base_url,
                settings.edit_openai_model,
                session,
                settings.edit_remote_timeout_s,
            )
        else:
            raise ValueError(f"Unknown provider {name!r} in XINTU_EDIT_PROVIDERS")
        slots.append(
            EditorSlot(
                editor=editor,
                breaker=CircuitBreaker(
                    settings.circuit_failure_threshold, settings.circuit_cooldown_s
                ),
                configured=bool(key),
            )
        )
    return RemoteEditChain(slots)
