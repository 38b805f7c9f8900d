"""loguru setup: stdlib logging routed through it, the request id in every line."""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from pathlib import Path

from loguru import logger

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _add_request_id(record: dict) -> None:  # type: ignore[type-arg]
    record["extra"].setdefault("request_id", request_id_var.get())


def configure_logging(
    level: str = "INFO",
    json: bool = False,
    file: Path | None = None,
    rotation: str = "100 MB",
    retention_days: int = 14,
) -> None:
    logger.remove()
    logger.configure(patcher=_add_request_id)  # type: ignore[arg-type]
    fmt = (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
        "{extra[request_id]} | {name}:{line} - <level>{message}</level>"
    )
    # diagnose would print every frame's local variables, the raw bytes of an upload
    # among them: raw images must never reach a log (DESIGN §4.7).
    logger.add(
        sys.stderr,
        level=level.upper(),
        serialize=json,
        format=fmt,
        backtrace=False,
        diagnose=False,
    )
    if file is not None:
        # Beside the console, not instead of it (containers log to stdout/stderr). One file per
        # process when the path holds "{pid}": processes must not rotate each other's file.
        logger.add(
            str(file).replace("{pid}", str(os.getpid())),
            level=level.upper(),
            serialize=json,
            format=fmt,
            colorize=False,
            backtrace=False,
            diagnose=False,
            rotation=rotation,
            retention=f"{retention_days} days",
            encoding="utf-8",
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=level.upper(), force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
