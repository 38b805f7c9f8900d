"""Shared fixtures: one converted model and one loaded classifier for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from xintu.images.validation import prepare_image
from xintu.inference.base import PreparedImage
from xintu.inference.local import LocalClassifier, LocalSettings
from xintu.inference.local.pipeline import LocalPipeline

EVAL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "images" / "local_eval"


def _eval_image(relative: str) -> Path:
    return EVAL_DIR / relative


def _prepared(relative: str) -> PreparedImage:
    return prepare_image(_eval_image(relative).read_bytes(), max_pixels=40_000_000)


@pytest.fixture(scope="session")
def eval_image() -> Callable[[str], Path]:
    """A file of the committed evaluation set, e.g. ``pets/chelsea.jpg``."""
    return _eval_image


@pytest.fixture(scope="session")
def prepared() -> Callable[[str], PreparedImage]:
    """An evaluation image as the upload path would hand it over."""
    return _prepared


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-data")


@pytest.fixture(scope="session")
async def classifier(data_dir: Path) -> AsyncIterator[LocalClassifier]:
    local = LocalClassifier(data_dir, LocalSettings(max_concurrency=2))
    await local.load()
    yield local
    local.close()


@pytest.fixture(scope="session")
def classifier_pipeline(data_dir: Path) -> LocalPipeline:
    """The blocking pipeline behind the classifier (shared per process)."""
    from xintu.inference.local.classifier import _get_pipeline

    return _get_pipeline(data_dir, LocalSettings(max_concurrency=2))
