"""Smoke test of a running deployment: health, one classification, optionally one edit.

    python deploy/smoke.py http://127.0.0.1:8000 [--edit] [--timeout 120]

Exits non-zero with the reason when something does not answer as it should. Standard
library only, so it runs from any Python 3.11 (the CI host, or inside the image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PHOTO = Path(__file__).resolve().parents[1] / "tests/fixtures/images/local_eval/foods/coffee.jpg"


def call(
    base: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_healthy(base: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = call(base, "/api/v1/health", timeout=3)
            if status == 200:
                return dict(json.loads(body))
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise SystemExit(f"not healthy within {timeout} s: {last}")


def expect(status: int, body: bytes, wanted: int, what: str) -> dict[str, Any]:
    if status != wanted:
        raise SystemExit(f"{what}: {status} {body[:500]!r}")
    return dict(json.loads(body))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--edit", action="store_true")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    base = args.base.rstrip("/")

    health = wait_healthy(base, args.timeout)
    print(f"health: {health['status']}, database ok: {health['database']['ok']}")  # noqa: T201 - a script reports by printing
    body, content_type = multipart({}, {"image": ("coffee.jpg", PHOTO.read_bytes())})
    status, raw = call(base, "/api/v1/classify", body, {"Content-Type": content_type}, 120)
    data = expect(status, raw, 200, "classify")["data"]
    print(f"classify: {data['category']} by {data['inference_method']} ({data['model']})")  # noqa: T201 - a script reports by printing
    point = json.dumps({"points": [{"latitude": 30.2590, "longitude": 120.1300}]}).encode()
    status, raw = call(
        base, "/api/v1/geo/locate/batch", point, {"Content-Type": "application/json"}
    )
    place = expect(status, raw, 200, "geo locate")["items"][0]
    print(f"geo: {place.get('city')} {place.get('district', '')}")  # noqa: T201 - a script reports by printing

    if args.edit:
        login = json.dumps({"device_id": f"smoke-{uuid.uuid4().hex[:8]}"}).encode()
        status, raw = call(base, "/api/v1/auth/guest", login, {"Content-Type": "application/json"})
        token = expect(status, raw, 200, "guest login")["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        body, content_type = multipart(
            {"operation": "sketch"}, {"file": ("coffee.jpg", PHOTO.read_bytes())}
        )
        status, raw = call(base, "/api/v1/edit/tasks", body, {"Content-Type": content_type, **auth})
        task_id = expect(status, raw, 202, "edit submit")["task_id"]
        deadline = time.monotonic() + args.timeout
        while True:
            status, raw = call(base, f"/api/v1/edit/tasks/{task_id}", headers=auth)
            task = expect(status, raw, 200, "edit status")
            if task["status"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"edit still {task['status']} after {args.timeout} s")
            time.sleep(0.3)
        if task["status"] != "succeeded":
            raise SystemExit(f"edit {task['status']}: {task.get('error')}")
        status, raw = call(base, task["result_url"], headers=auth)
        if status != 200 or not raw.startswith(b"\xff\xd8"):
            raise SystemExit(f"edit result: {status}")
        print(f"edit: sketch succeeded, result {len(raw)} bytes")  # noqa: T201 - a script reports by printing


if __name__ == "__main__":
    sys.exit(main())
