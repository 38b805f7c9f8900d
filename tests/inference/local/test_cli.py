"""``xintu models check``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from xintu.inference.local import classifier as classifier_module
from xintu.inference.local.cli import app


def test_check_reports_packages_and_passes_self_test(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output
    assert "self-test: ok" in result.output


def test_check_fails_when_packages_are_missing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(classifier_module, "missing_modules", lambda: ["onnxruntime"])
    result = CliRunner().invoke(app, ["check", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "FAILED" in result.output
