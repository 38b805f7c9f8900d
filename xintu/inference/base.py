"""The Classifier protocol every provider implements, and what flows through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from xintu.categories import Category


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A validated, decoded upload. ``data`` stays in memory only; it is never stored."""

    data: bytes
    sha256: str
    format: str  # "jpeg", "png", "webp", "gif", "bmp", "heif", "mpo"
    mime: str
    width: int
    height: int
    image: Image.Image = field(repr=False)
    has_camera_exif: bool = False


@dataclass(frozen=True, slots=True)
class Prediction:
    category: Category
    confidence: float
    description: str
    model: str
    inference_method: str  # "remote" or "local"
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict[str, Any] | None = None


class ClassifierError(Exception):
    """A provider could not give a usable answer: the caller tries the next one."""


class Classifier(Protocol):
    """One way to classify an image: a remote LLM or the local pipeline."""

    name: str
    model: str

    async def classify(self, image: PreparedImage) -> Prediction: ...
