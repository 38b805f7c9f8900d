from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from xintu.models import ImageEditTask

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class OperationOut(BaseModel):
    id: str
    name: str
    description: str
    kind: Literal["local", "remote"]
    credit_cost: int
    available: bool
    params: list[dict[str, Any]]


class OperationsResponse(BaseModel):
    success: bool = True
    billing_enabled: bool
    operations: list[OperationOut]


class TaskCreated(BaseModel):
    success: bool = True
    task_id: str
    status: TaskStatus
    from_cache: bool


class TaskOut(BaseModel):
    success: bool = True
    task_id: str
    status: TaskStatus
    operation: str
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result_url: str | None
    attempts: int
    credits_charged: int
    from_cache: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, task: ImageEditTask, prefix: str) -> TaskOut:
        import orjson

        has_result = task.status == "succeeded" and task.result_path is not None
        return cls(
            task_id=task.id,
            status=task.status,
            operation=task.operation,
            params=orjson.loads(task.params_json),
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
            error=task.error if task.status in ("failed", "queued") else None,
            result_url=f"{prefix}/edit/tasks/{task.id}/result" if has_result else None,
            attempts=task.attempts,
            credits_charged=task.credits_charged,
            from_cache=task.provider == "cache",
            expires_at=task.expires_at,
        )


class TaskItem(BaseModel):
    task_id: str
    status: TaskStatus
    operation: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    result_url: str | None


class TaskList(BaseModel):
    success: bool = True
    items: list[TaskItem]
    limit: int
    offset: int
