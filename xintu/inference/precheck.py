"""The screenshot pre-check of DESIGN §2: a cheap test that answers ``screenshot`` before any
remote call, tuned for precision (a photo called a screenshot is a wrong answer for
everyone who shares the cache; a screenshot it misses only costs one LLM call).

A screenshot is recognised by what a camera cannot produce:

- the pixel size of a screen (exact for originals; for the recompressed copies clients
  upload, the aspect ratio of a phone or desktop screen that a camera does not shoot);
- no camera EXIF (make or model);
- user-interface layout: much of the picture is exactly flat (backgrounds, bars, cards),
  and rows of text or icons alternate with rows that are perfectly blank across a whole
  column of the layout. Sensor noise, lens blur and the slightest tilt of a photographed
  monitor break both, which is what keeps photos of screens out.

Numbers and the development set: ``bench/screenshot_precheck.py`` and
docs/CLASSIFICATION.md ("Screenshot pre-check").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from xintu.categories import Category
from xintu.inference.base import Prediction, PreparedImage
from xintu.inference.local.rules import DEVICE_RESOLUTIONS

MODEL_NAME = "precheck"

# Formats whose pixels arrive exactly as the screen drew them.
_LOSSLESS_FORMATS = frozenset({"png", "bmp", "gif"})
# Aspect ratios cameras shoot (4:3, 3:2, 1:1, 5:4): a recompressed copy at one of them says
# nothing about a screen, so only exact screen sizes of these shapes count.
_CAMERA_ASPECTS = (4 / 3, 3 / 2, 1.0, 5 / 4)
_SCREEN_ASPECTS = sorted(
    {
        round(high / low, 4)
        for low, high in DEVICE_RESOLUTIONS
        if all(abs(high / low - camera) > 0.01 for camera in _CAMERA_ASPECTS)
    }
)
# Analysis size: screenshots are downscaled by an integer box filter, which keeps flat areas
# exactly flat.
_ANALYSIS_SIDE = 1100
_TILE = 8
_COLUMNS = 4


@dataclass(frozen=True, slots=True)
class Thresholds:
    tolerance: int  # grey levels a flat tile or blank row may vary by
    flat_fraction: float  # share of 8×8 tiles that are flat
    exact_flat_fraction: float  # share of 8×8 tiles within one grey level
    alternations: int  # blank ↔ content changes down the best layout column
    blank_rows: float  # share of rows blank in the best layout column


# Exact screen size, lossless: the layout evidence may be weaker.
ORIGINAL = Thresholds(
    tolerance=2, flat_fraction=0.45, exact_flat_fraction=0.3, alternations=8, blank_rows=0.25
)
# Recompressed copy with a screen's aspect ratio: JPEG ringing needs a tolerance, and the
# layout evidence must carry more of the weight.
RECOMPRESSED = Thresholds(
    tolerance=8, flat_fraction=0.55, exact_flat_fraction=0.4, alternations=12, blank_rows=0.3
)
# JPEG stores a flat 8×8 block as one exact value, so a screen's backgrounds stay exactly
# flat in the client's copy; a photo of a dark screen, downscaled and recompressed, can pass
# the tolerant test but keeps a grey level or two of noise (measured: screenshots' copies
# 0.56–0.95 exactly flat, photographed screens 0.00–0.21).
EXACT_TOLERANCE = 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the pre-check measured, for the bench and for tuning."""

    geometry: str | None  # "screen_size", "screen_aspect" or None
    flat_fraction: float
    exact_flat_fraction: float
    alternations: int
    blank_rows: float

    def passes(self, thresholds: Thresholds) -> bool:
        return (
            self.flat_fraction >= thresholds.flat_fraction
            and self.exact_flat_fraction >= thresholds.exact_flat_fraction
            and self.alternations >= thresholds.alternations
            and self.blank_rows >= thresholds.blank_rows
        )


def _geometry(image: PreparedImage) -> str | None:
    low, high = sorted((image.width, image.height))
    if (low, high) in DEVICE_RESOLUTIONS:
        return "screen_size"
    for aspect in _SCREEN_ASPECTS:
        # The copy's short side is the screen's, scaled and rounded: allow one pixel.
        if abs(high / aspect - low) <= 1.0:
            return "screen_aspect"
    return None


def _grey(image: Image.Image) -> npt.NDArray[np.int16]:
    """Luminance, box-reduced to at most ``_ANALYSIS_SIDE`` on the long side."""
    if image.mode in ("P", "PA", "LA", "RGBA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, (255, 255, 255))
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        image = flattened
    grey = image.convert("L")
    factor = -(-max(grey.size) // _ANALYSIS_SIDE)
    if factor > 1:
        grey = grey.reduce(factor)
    return np.asarray(grey, dtype=np.int16)


def _flat_fraction(grey: npt.NDArray[np.int16], tolerance: int) -> float:
    rows, cols = grey.shape[0] // _TILE, grey.shape[1] // _TILE
    if rows == 0 or cols == 0:
        return 0.0
    tiles = grey[: rows * _TILE, : cols * _TILE].reshape(rows, _TILE, cols, _TILE)
    spread = tiles.max(axis=(1, 3)) - tiles.min(axis=(1, 3))
    return float((spread <= tolerance).mean())


def _layout(grey: npt.NDArray[np.int16], tolerance: int) -> tuple[int, float]:
    """Down each of ``_COLUMNS`` vertical strips (sidebars and panes differ in colour): how
    often a blank row (every pixel within ``tolerance`` of the row's median) and a content
    row alternate, and the share of blank rows; the best strip's values."""
    best_alternations, best_blank = 0, 0.0
    width = grey.shape[1]
    for index in range(_COLUMNS):
        strip = grey[:, index * width // _COLUMNS : (index + 1) * width // _COLUMNS]
        if strip.shape[1] < _TILE:
            continue
        median = np.median(strip, axis=1, keepdims=True)
        blank = (np.abs(strip - median) <= tolerance).all(axis=1)
        alternations = int(np.count_nonzero(blank[1:] != blank[:-1]))
        if alternations > best_alternations:
            best_alternations, best_blank = alternations, float(blank.mean())
    return best_alternations, best_blank


def measure(image: PreparedImage) -> Evidence:
    """The pre-check's measurements of one decoded upload. Blocking (a few milliseconds)."""
    geometry = _geometry(image)
    lossless = image.format in _LOSSLESS_FORMATS or (
        image.format == "webp" and image.image.info.get("lossless", False)
    )
    tolerance = ORIGINAL.tolerance if lossless else RECOMPRESSED.tolerance
    grey = _grey(image.image)
    alternations, blank_rows = _layout(grey, tolerance)
    return Evidence(
        geometry,
        _flat_fraction(grey, tolerance),
        _flat_fraction(grey, EXACT_TOLERANCE),
        alternations,
        blank_rows,
    )


def detect(image: PreparedImage) -> Evidence | None:
    """The evidence that the upload is a screenshot, or None. Blocking."""
    if image.has_camera_exif or _geometry(image) is None:
        return None
    evidence = measure(image)
    lossless_original = evidence.geometry == "screen_size" and image.format in _LOSSLESS_FORMATS
    thresholds = ORIGINAL if lossless_original else RECOMPRESSED
    return evidence if evidence.passes(thresholds) else None


def prediction(evidence: Evidence) -> Prediction:
    """The answer given for a detected screenshot."""
    reason = "屏幕尺寸" if evidence.geometry == "screen_size" else "屏幕比例"
    return Prediction(
        category=Category.screenshot,
        confidence=0.97,
        description=f"界面截图（{reason}，无相机信息，界面布局）",
        model=MODEL_NAME,
        inference_method="local",
        provider=MODEL_NAME,
    )


def classify(image: PreparedImage) -> Prediction | None:
    """The pre-check's answer, or None when the upload needs a real classifier. Blocking."""
    evidence = detect(image)
    return None if evidence is None else prediction(evidence)
