"""Image editing routes (DESIGN §4.5): all need a user token."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from xintu.billing.credits import InsufficientCredits
from xintu.deps import LimitsDep, SessionDep, SettingsDep, UserClaims
from xintu.edit.local import face_detector_available
from xintu.edit.operations import (
    OPERATIONS,
    InvalidParams,
    OperationKind,
    UnknownOperation,
    params_schema,
)
from xintu.edit.schemas import (
    OperationOut,
    OperationsResponse,
    TaskCreated,
    TaskItem,
    TaskList,
    TaskOut,
    TaskStatus,
)
from xintu.edit.service import (
    EditService,
    EditUnavailable,
    ResultExpired,
    ResultNotReady,
    TaskFinished,
    TaskNotFound,
    TooManyTasks,
)
from xintu.errors import (
    Forbidden,
    ImageTooLarge,
    InvalidImage,
    MissingImage,
    NotAuthenticated,
    RateLimited,
    UnsupportedMediaType,
    responses,
)
from xintu.responses import FastJSONResponse
from xintu.uploads import InvalidMultipart, read_multipart

router = APIRouter(prefix="/edit", tags=["edit"])
_AUTH = (NotAuthenticated, Forbidden)
_PREFIX = "/api/v1"
# Results up to this size are read whole and sent; larger ones stream from the open file.
RESULT_IN_MEMORY_BYTES = 4 * 1024 * 1024
_CHUNK_BYTES = 256 * 1024


def _service(request: Request) -> EditService:
    service: EditService = request.app.state.edit
    return service


@router.get("/operations", response_model=OperationsResponse, responses=responses(*_AUTH))
async def list_operations(
    request: Request, settings: SettingsDep, _claims: UserClaims
) -> OperationsResponse:
    """The edit operations, their parameters and credit cost."""
    remote_available = _service(request).chain.available
    return OperationsResponse(
        billing_enabled=settings.billing_enabled,
        operations=[
            OperationOut(
                id=operation.id,
                name=operation.name,
                description=operation.description
                + (
                    ""
                    if operation.id != "id_photo" or face_detector_available()
                    else " (no face detector installed: centre crop)"
                ),
                kind=operation.kind.value,
                credit_cost=operation.cost(settings) if settings.billing_enabled else 0,
                available=operation.kind is OperationKind.local or remote_available,
                params=params_schema(operation),
            )
            for operation in OPERATIONS.values()
        ],
    )


@router.post(
    "/tasks",
    status_code=202,
    response_model=TaskCreated,
    responses=responses(
        *_AUTH,
        InvalidMultipart,
        MissingImage,
        UnknownOperation,
        InvalidParams,
        ImageTooLarge,
        UnsupportedMediaType,
        InvalidImage,
        InsufficientCredits,
        TooManyTasks,
        EditUnavailable,
        RateLimited,
    ),
)
async def create_task(
    request: Request, settings: SettingsDep, claims: UserClaims, limits: LimitsDep
) -> FastJSONResponse:
    """Submit an edit: multipart ``file``, ``operation`` and ``params`` (a JSON object).

    202 with the queued task; the same image, operation and params as an earlier
    successful task answers from the edit cache with a task that has already succeeded.
    """
    await limits.per_caller("edit_submits", claims)
    form = await read_multipart(
        request, max_file_bytes=settings.max_upload_bytes, max_files=1, fail_fast=True
    )
    uploads = form.files_named("file", "image")
    if not uploads or not uploads[0].data:
        raise MissingImage("No image in the request: send multipart field 'file'")
    operation = form.first_field("operation")
    if not operation:
        raise UnknownOperation("The form field 'operation' is required")
    task = await _service(request).submit(
        claims.subject_id, uploads[0].data, operation.strip(), form.first_field("params")
    )
    body = TaskCreated(task_id=task.id, status=task.status, from_cache=task.provider == "cache")
    return FastJSONResponse(body.model_dump(), status_code=202)


@router.get("/tasks", response_model=TaskList, responses=responses(*_AUTH))
async def list_tasks(
    request: Request,
    session: SessionDep,
    claims: UserClaims,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskList:
    """The caller's own tasks, newest first."""
    tasks = await _service(request).list_tasks(session, claims.subject_id, status, limit, offset)
    items = []
    for task in tasks:
        full = TaskOut.of(task, _PREFIX)
        items.append(
            TaskItem(
                task_id=full.task_id,
                status=full.status,
                operation=full.operation,
                created_at=full.created_at,
                finished_at=full.finished_at,
                error=full.error,
                result_url=full.result_url,
            )
        )
    return TaskList(items=items, limit=limit, offset=offset)


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(*_AUTH, TaskNotFound))
async def get_task(
    request: Request, task_id: str, session: SessionDep, claims: UserClaims
) -> TaskOut:
    """One of the caller's tasks; another user's task is 404."""
    task = await _service(request).get(session, claims.subject_id, task_id)
    return TaskOut.of(task, _PREFIX)


@router.get(
    "/tasks/{task_id}/result",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        **responses(*_AUTH, TaskNotFound, ResultNotReady, ResultExpired),
    },
)
async def get_result(
    request: Request, task_id: str, session: SessionDep, claims: UserClaims
) -> Response:
    """The edited image."""
    task, handle = await _service(request).open_result(session, claims.subject_id, task_id)
    media_type = task.result_mime or "application/octet-stream"
    headers = {"Cache-Control": "private, max-age=3600"}
    try:
        size = os.fstat(handle.fileno()).st_size
        if size <= RESULT_IN_MEMORY_BYTES:
            data = await asyncio.to_thread(handle.read)
            handle.close()
            return Response(data, media_type=media_type, headers=headers)
    except BaseException:
        handle.close()
        raise
    headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(handle), media_type=media_type, headers=headers)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


@router.delete(
    "/tasks/{task_id}",
    response_model=TaskOut,
    responses=responses(*_AUTH, TaskNotFound, TaskFinished),
)
async def cancel_task(request: Request, task_id: str, claims: UserClaims) -> TaskOut:
    """Cancel a queued or running task (a cancelled task is never charged)."""
    task = await _service(request).cancel(claims.subject_id, task_id)
    return TaskOut.of(task, _PREFIX)
