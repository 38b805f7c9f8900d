"""Receive a video upload into a private temporary file, enforcing the limits while reading.

A video can be 200 MB: it is streamed to a file created with mode 0600 (``mkstemp``),
hashed on the way, and the file is deleted when the request ends, whatever the outcome
(the client disconnects, a limit is hit, decoding fails, or the answer is sent).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from xintu.errors import AppError
from xintu.images.validation import normalize_hash
from xintu.uploads import InvalidMultipart, content_length
from xintu.video.errors import MissingVideo, UnsupportedVideo, UploadIncomplete, VideoTooLarge

_MAX_FIELD_BYTES = 64 * 1024
# Enough of the file to recognise every supported container by its magic bytes.
_SNIFF_BYTES = 64
_FIELD_NAME = "video"

# ISO base media (MP4, MOV, 3GP) major brands of video files; HEIF/AVIF images and
# M4A/M4B audio use the same box structure and are refused.
_ISO_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"iso9",
    b"mp41", b"mp42", b"mp71", b"avc1", b"hvc1", b"dash", b"mmp4", b"MSNV", b"XAVC",
    b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"NDAS", b"KDDI", b"f4v ", b"crx ",
}  # fmt: skip
# QuickTime files written before the ``ftyp`` box existed start with one of these boxes.
_QUICKTIME_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def sniff_video(head: bytes) -> str | None:
    """The container by magic bytes: ``mp4`` (MP4, MOV, 3GP), ``webm``, or None."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_VIDEO_BRANDS or brand.startswith(b"3g"):
            return "mp4"
        return None
    if head[4:8] in _QUICKTIME_BOXES:
        return "mp4"
    # WebM is Matroska with the DocType "webm" in the EBML header.
    if head.startswith(_EBML_MAGIC) and b"\x42\x82\x84webm" in head[:_SNIFF_BYTES]:
        return "webm"
    return None


@dataclass(slots=True)
class ReceivedVideo:
    """A video in a private temporary file; ``discard`` deletes it (also on exit)."""

    path: Path
    sha256: str
    size: int
    claimed_hash: str | None
    filename: str | None

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(slots=True)
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    header_field: bytes = b""
    header_value: bytes = b""
    name: str = ""
    filename: str | None = None
    is_video: bool = False
    ignored_file: bool = False
    value: bytearray = field(default_factory=bytearray)


class _VideoSink:
    """Receives the parser's callbacks: the ``video`` file goes to ``file``, hashed."""

    def __init__(self, file: BinaryIO, max_bytes: int) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.hasher = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.sniffed = False
        self.videos = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.part = _Part()

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        part = self.part
        part.headers[part.header_field.decode("latin-1").lower()] = part.header_value
        part.header_field = part.header_value = b""

    def on_headers_finished(self) -> None:
        part = self.part
        disposition, params = parse_options_header(part.headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise InvalidMultipart("A part has no form-data name")
        part.name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            return
        if part.name != _FIELD_NAME or self.videos:
            # Other files are not read into anything: one video per request.
            part.ignored_file = True
            return
        part.is_video = True
        part.filename = filename.decode("utf-8", "replace")
        self.filename = part.filename
        self.videos += 1

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part.ignored_file:
            return
        chunk = data[start:end]
        if not part.is_video:
            part.value += chunk
            if len(part.value) > _MAX_FIELD_BYTES:
                raise InvalidMultipart(f"Form field {part.name!r} is too large")
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise VideoTooLarge()
        if not self.sniffed:
            self.head += chunk[: _SNIFF_BYTES - len(self.head)]
            if len(self.head) >= _SNIFF_BYTES:
                self._sniff()
        self.hasher.update(chunk)
        self.file.write(chunk)

    def on_part_end(self) -> None:
        part = self.part
        if part.is_video and not self.sniffed:
            self._sniff()
        elif not part.is_video and not part.ignored_file:
            self.fields.setdefault(part.name, part.value.decode("utf-8", "replace"))

    def _sniff(self) -> None:
        # Refuse anything else at its first bytes instead of reading the rest.
        self.sniffed = True
        if sniff_video(bytes(self.head)) is None:
            raise UnsupportedVideo()


@contextlib.asynccontextmanager
async def receive_video(
    request: Request, max_bytes: int, tmp_dir: Path | None
) -> AsyncIterator[ReceivedVideo]:
    """Stream multipart field ``video`` (and ``video_hash``) into a private temp file that
    is deleted when the block exits, however it exits."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedVideo(
            "Send multipart/form-data with the video in field 'video' (MP4, MOV, WebM, 3GP)"
        )
    max_body = max_bytes + _MAX_FIELD_BYTES * 4
    declared = content_length(request)
    if declared is not None and declared > max_body:
        raise VideoTooLarge()
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="xintu-video-", dir=tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            sink = _VideoSink(file, max_bytes)
            await _parse(request, boundary, sink, max_body)
        if sink.videos == 0 or sink.size == 0:
            raise MissingVideo()
        claimed = sink.fields.get("video_hash")
        received = ReceivedVideo(
            path=path,
            sha256=sink.hasher.hexdigest(),
            size=sink.size,
            claimed_hash=normalize_hash(claimed) if claimed and claimed.strip() else None,
            filename=sink.filename,
        )
        yield received
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _parse(request: Request, boundary: bytes, sink: _VideoSink, max_body: int) -> None:
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": sink.on_part_begin,
            "on_part_data": sink.on_part_data,
            "on_part_end": sink.on_part_end,
            "on_header_field": sink.on_header_field,
            "on_header_value": sink.on_header_value,
            "on_header_end": sink.on_header_end,
            "on_headers_finished": sink.on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise VideoTooLarge()
            parser.write(chunk)
        parser.finalize()
    except AppError:
        raise
    except ClientDisconnect as exc:
        raise UploadIncomplete() from exc
    except Exception as exc:  # python-multipart raises several error types on bad input
        raise InvalidMultipart(f"The multipart body is malformed: {exc}") from exc
