"""Read uploads from the request stream into memory, enforcing size limits while reading.

Starlette's form parser spools large files to temporary files on disk; raw images must
never touch the disk, and an oversized body must be refused before it is all read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from xintu.body_limit import MULTIPART_FIELD_BYTES
from xintu.errors import AppError, BatchTooLarge, ImageTooLarge

# Parts beside the files: the forms have at most a few fields (hashes, operation, params).
# Counting parts stops a body of many tiny parts at its first chunk, before it costs
# event-loop time; python-multipart itself caps each part's headers (8 lines of 4 KiB).
_MAX_FIELDS = 16


class InvalidMultipart(AppError):
    status_code = 400
    code = "invalid_multipart"
    detail = "The multipart body is malformed"


@dataclass(slots=True)
class UploadedFile:
    field_name: str
    filename: str | None
    content_type: str | None
    data: bytes
    # Set when the file was larger than the per-file limit: its bytes were dropped.
    too_large: bool = False
    size: int = 0


@dataclass(slots=True)
class MultipartForm:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def first_field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def files_named(self, *names: str) -> list[UploadedFile]:
        return [upload for upload in self.files if upload.field_name in names]


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_raw_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 ``image_too_large`` as soon as it passes ``max_bytes``."""
    declared = content_length(request)
    if declared is not None and declared > max_bytes:
        raise ImageTooLarge()
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise ImageTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_multipart(
    request: Request,
    *,
    max_file_bytes: int,
    max_files: int,
    fail_fast: bool,
) -> MultipartForm:
    """Parse a multipart body held in memory.

    ``fail_fast`` (single-file endpoints) answers 413 at the first oversized file; otherwise
    an oversized file is kept as a ``too_large`` marker so that one bad file of a batch
    fails alone. More than ``max_files`` files is 413 ``batch_too_large``. The whole body
    is capped at ``max_files`` times the file limit plus 1 MiB of fields; at most
    ``max_files`` + ``_MAX_FIELDS`` parts (400 ``invalid_multipart``).
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidMultipart("Expected a multipart/form-data body with a boundary")
    max_body = max_files * max_file_bytes + MULTIPART_FIELD_BYTES
    declared = content_length(request)
    if declared is not None and declared > max_body:
        raise (
            ImageTooLarge()
            if max_files == 1
            else BatchTooLarge("The request body is larger than a full batch can be")
        )

    form = MultipartForm()
    state = _PartState()
    parts = 0

    def on_part_begin() -> None:
        nonlocal parts
        parts += 1
        if parts > max_files + _MAX_FIELDS:
            raise InvalidMultipart(f"At most {max_files + _MAX_FIELDS} parts per request")
        state.reset()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[state.header_field.decode("latin-1").lower()] = state.header_value
        state.header_field = b""
        state.header_value = b""

    def on_headers_finished() -> None:
        disposition, params = parse_options_header(state.headers.get("content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise InvalidMultipart("A part has no form-data name")
        state.name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        state.filename = filename.decode("utf-8", "replace") if filename is not None else None
        state.is_file = filename is not None
        if state.is_file and len(form.files) >= max_files:
            raise BatchTooLarge(f"At most {max_files} files per request")
        content_type_header = state.headers.get("content-type")
        state.content_type = content_type_header.decode("latin-1") if content_type_header else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        size = end - start
        state.size += size
        limit = max_file_bytes if state.is_file else MULTIPART_FIELD_BYTES
        if state.size > limit:
            if not state.is_file:
                raise InvalidMultipart(f"Form field {state.name!r} is too large")
            if fail_fast:
                raise ImageTooLarge()
            state.too_large = True
            state.chunks.clear()
            return
        state.chunks.append(data[start:end])

    def on_part_end() -> None:
        data = b"".join(state.chunks)
        if state.is_file:
            form.files.append(
                UploadedFile(
                    field_name=state.name,
                    filename=state.filename,
                    content_type=state.content_type,
                    data=b"" if state.too_large else data,
                    too_large=state.too_large,
                    size=state.size,
                )
            )
        else:
            form.fields.setdefault(state.name, []).append(data.decode("utf-8", "replace"))
        state.chunks.clear()

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise (
                    ImageTooLarge()
                    if max_files == 1
                    else BatchTooLarge("The request body is larger than a full batch can be")
                )
            parser.write(chunk)
        parser.finalize()
    except AppError:
        raise
    except Exception as exc:  # python-multipart raises several error types on bad input
        raise InvalidMultipart(f"The multipart body is malformed: {exc}") from exc
    return form


@dataclass(slots=True)
class _PartState:
    headers: dict[str, bytes] = field(default_factory=dict)
    header_field: bytes = b""
    header_value: bytes = b""
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    is_file: bool = False
    too_large: bool = False
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)

    def reset(self) -> None:
        self.headers = {}
        self.header_field = b""
        self.header_value = b""
        self.name = ""
        self.filename = None
        self.content_type = None
        self.is_file = False
        self.too_large = False
        self.size = 0
        self.chunks = []
