"""Edit inputs and results on disk under ``<data_dir>/edit`` (DESIGN §9).

Paths in the database are relative to the data directory, so hosts that mount a shared
data directory at different places agree on them. Writes go to a temporary file first
and are renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO


class EditStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        # Users' pictures: readable by the service's user only.
        (data_dir / "edit").mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in ("inputs", "results"):
            (data_dir / "edit" / folder).mkdir(mode=0o700, exist_ok=True)

    def _write(self, relative: str, data: bytes) -> str:
        path = self.root / relative
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with open(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
        return relative

    def write_input(self, task_id: str, data: bytes) -> str:
        return self._write(f"edit/inputs/{task_id}", data)

    def write_result(self, task_id: str, attempt: int, data: bytes, extension: str) -> str:
        # One file per attempt: a worker that lost its lease never overwrites the winner's.
        return self._write(f"edit/results/{task_id}.{attempt}.{extension}", data)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def exists(self, relative: str) -> bool:
        return (self.root / relative).is_file()

    def open(self, relative: str) -> BinaryIO:
        """An open handle: its data stays readable after the file is deleted (POSIX)."""
        return open(self.root / relative, "rb")  # noqa: SIM115 - the caller closes it

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def delete(self, relative: str | None) -> None:
        if relative:
            (self.root / relative).unlink(missing_ok=True)
