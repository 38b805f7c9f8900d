"""Log files beside the console: rotation by size, retention in days, JSON when asked."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from xintu.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    configure_logging("WARNING")


def test_log_file_rotates_by_size_and_the_console_keeps_every_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json=True, file=tmp_path / "xintu.log", rotation="2 KB")
    for number in range(60):
        logger.info("line {}", number)
    files = sorted(tmp_path.glob("xintu*.log"))
    assert len(files) >= 3
    assert all(path.stat().st_size <= 2048 + 1024 for path in files)
    messages = {
        json.loads(line)["record"]["message"]
        for path in files
        for line in path.read_text().splitlines()
    }
    assert messages == {f"line {number}" for number in range(60)}
    console = capsys.readouterr().err
    assert "line 0" in console
    assert "line 59" in console


def test_rotated_files_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    old = tmp_path / "xintu.2026-01-01_00-00-00_000000.log"
    old.write_text("old\n")
    three_days_ago = time.time() - 3 * 86400
    os.utime(old, (three_days_ago, three_days_ago))
    recent = tmp_path / "xintu.2026-01-02_00-00-00_000000.log"
    recent.write_text("recent\n")
    configure_logging("INFO", file=tmp_path / "xintu.log", rotation="1 KB", retention_days=2)
    for number in range(40):
        logger.info("line {}", number)
    assert not old.exists()
    assert recent.exists()


def test_a_pid_in_the_path_gives_each_process_its_own_file(tmp_path: Path) -> None:
    configure_logging("INFO", file=tmp_path / "xintu.{pid}.log")
    logger.info("hello")
    assert (tmp_path / f"xintu.{os.getpid()}.log").read_text().count("hello") == 1
