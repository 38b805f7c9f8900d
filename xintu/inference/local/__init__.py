"""The offline local classifier (DESIGN §6): ONNX models shipped inside PyPI wheels."""

from xintu.inference.local.classifier import MODEL_NAME, LocalClassifier
from xintu.inference.local.settings import LocalSettings

__all__ = ["MODEL_NAME", "LocalClassifier", "LocalSettings"]
