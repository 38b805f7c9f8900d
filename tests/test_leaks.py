"""What must not leak: raw image bytes into logs (tracebacks included), users' files and
the SQLite database to other accounts on the host."""

from __future__ import annotations

import base64
import io
import random
import stat
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import AppFactory
from tests.edit.conftest import edit_settings, new_user, photo, submit, wait_finished
from tests.fixtures.local_stand_in import StandInLocal
from xintu.edit.storage import EditStore
from xintu.inference.base import Prediction, PreparedImage
from xintu.migrations import upgrade_to_head_async


class BrokenLocal(StandInLocal):
    """A classifier with a bug: anything but a ClassifierError escapes as a 500."""

    async def classify(self, image: PreparedImage) -> Prediction:  # noqa: ARG002
        raise RuntimeError("a bug in the classifier")


def _noise_png(seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (48, 48), bytes(rng.randrange(256) for _ in range(48 * 48 * 3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _forms_of(data: bytes) -> list[str]:
    """Ways a slice of the image could appear in a log line."""
    forms = []
    for start in (0, 64, len(data) // 2):
        chunk = data[start : start + 48]
        forms += [
            repr(chunk)[2:-1][:60],
            chunk.hex()[:60],
            base64.b64encode(chunk).decode()[:40],
            chunk.decode("latin-1")[:24],
        ]
    return forms


async def test_a_500_during_an_upload_logs_no_image_bytes(
    make_client: AppFactory, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _noise_png(1)
    async with make_client(
        database_url=sqlite_url, inference_mode="local_only", local=BrokenLocal()
    ) as (_, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("secret.png", image, "image/png")}
        )
    assert response.status_code == 500
    log = capsys.readouterr().err
    assert "a bug in the classifier" in log  # the traceback itself is logged
    for form in _forms_of(image):
        assert form not in log


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_sqlite_database_and_data_directory_are_private(
    make_client: AppFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'xintu.db'}"
    await upgrade_to_head_async(url)
    async with make_client(database_url=url, data_dir=tmp_path / "data") as (_, client):
        response = await client.post("/api/v1/auth/guest", json={"device_id": "phone-1"})
        assert response.status_code == 200
    assert _mode(tmp_path / "db") == 0o700
    assert _mode(tmp_path / "data") == 0o700
    files = list((tmp_path / "db").iterdir())
    assert tmp_path / "db" / "xintu.db" in files
    for path in files:  # the database and its -wal / -shm companions
        assert _mode(path) == 0o600, path


async def test_edit_inputs_and_results_are_private(
    make_client: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    store = EditStore(tmp_path / "store")
    written = store.path(store.write_input("task-1", b"picture"))
    assert _mode(written) == 0o600
    for folder in ("edit", "edit/inputs", "edit/results"):
        assert _mode(tmp_path / "store" / folder) == 0o700

    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, photo(), "sketch")
        assert (await wait_finished(client, headers, response.json()["task_id"]))[
            "status"
        ] == "succeeded"
        results = list((app.state.settings.data_dir / "edit" / "results").iterdir())
    assert results
    assert all(_mode(path) == 0o600 for path in results)
