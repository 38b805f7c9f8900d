"""rapidocr (PP-OCR det + rec, ONNX) configured for speed and silence, models from the wheel."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from rapidocr.utils.output import RapidOCROutput

from xintu.inference.local.files import OCR_MODELS, rapidocr_models_dir
from xintu.inference.local.rules import TextLine


class TextReader:
    """One rapidocr engine; created once, ``read`` called from worker threads."""

    def __init__(self, max_side: int, threads: int, min_score: float) -> None:
        from rapidocr import RapidOCR

        models = rapidocr_models_dir()
        if models is None:
            raise RuntimeError("rapidocr is not installed")
        # Explicit model paths: rapidocr would otherwise try to resolve (and maybe
        # download) them by name.
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.max_side_len": max_side,
            "Global.text_score": min_score,
            "Det.model_path": str(models / OCR_MODELS[0]),
            "Det.limit_side_len": max_side,
            "Det.limit_type": "max",
            "Rec.model_path": str(models / OCR_MODELS[1]),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self._engine = RapidOCR(params=params)
        # rapidocr logs a warning for every image without text.
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        # rapidocr creates its detector and recogniser on first use: do it now, at load
        # time, with a line of text drawn by OpenCV's built-in font.
        warm_up = np.full((96, 480, 3), 255, dtype=np.uint8)
        cv2.putText(warm_up, "XINTU 12:34", (16, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
        self.read(warm_up)  # black on white: channel order does not matter

    def read(self, rgb: npt.NDArray[np.uint8]) -> list[TextLine]:
        """Text lines, top to bottom, with boxes as fractions of the image size."""
        height, width = rgb.shape[:2]
        result = self._engine(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not isinstance(result, RapidOCROutput):
            return []
        if result.boxes is None or result.txts is None or result.scores is None:
            return []
        lines: list[TextLine] = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            points = np.asarray(box, dtype=np.float32)
            lines.append(
                TextLine(
                    text=str(text),
                    score=float(score),
                    top=float(points[:, 1].min()) / height,
                    bottom=float(points[:, 1].max()) / height,
                    left=float(points[:, 0].min()) / width,
                    right=float(points[:, 0].max()) / width,
                )
            )
        lines.sort(key=lambda line: (line.top, line.left))
        return lines
