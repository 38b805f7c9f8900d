"""Starting the service as real processes (uvicorn, Gunicorn) on free 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a service process: this one's, minus any XINTU_* of the caller."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("XINTU_")}
    env.update(
        XINTU_DATA_DIR=str(data_dir),
        XINTU_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir}/xintu.db",
        XINTU_LOCAL_MODEL_ENABLED="false",
        XINTU_RATE_LIMIT_CLASSIFY="0",
        XINTU_RATE_LIMIT_CHECK="0",
        XINTU_LOG_LEVEL="INFO",
    )
    env.update({f"XINTU_{key.upper()}": value for key, value in settings.items()})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


async def wait_healthy(
    base_url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60
) -> None:
    """Poll /api/v1/health until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited {process.returncode}:\n{log.read_text()}")
            try:
                if (await client.get(f"{base_url}/api/v1/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"server not healthy within {timeout_s} s:\n{log.read_text()}")


async def wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """The exit code, polled without blocking the event loop (fake servers run on it)."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        if time.monotonic() >= deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"process did not exit within {timeout_s} s")
        await asyncio.sleep(0.05)
    return process.returncode
