"""The blocking part of the local classifier: models, signals and the decision rules."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image, ImageOps

from xintu.categories import CATEGORY_NAMES, Category
from xintu.inference.local import effnet, rules
from xintu.inference.local.faces import Face, FaceDetector
from xintu.inference.local.files import MTCNN_DIR
from xintu.inference.local.labels import (
    DOCUMENT_CLASSES,
    VOTING_CATEGORIES,
    category_weights,
    class_names,
)
from xintu.inference.local.ocr import TextReader
from xintu.inference.local.settings import LocalSettings

# How often each rule was right on the evaluation set (bench/local_accuracy.py);
# these are the starting confidences, adjusted by the strength of the evidence.
RULE_CONFIDENCE: dict[str, float] = {
    "idcard:gb11643": 0.97,
    "idcard:mrz": 0.95,
    "idcard:keyword": 0.92,
    "idcard:keywords": 0.85,
    "screenshot:clock": 0.93,
    "screenshot:ui_words": 0.88,
    "screenshot:text_over_flat": 0.85,
    "screenshot:resolution": 0.8,
    "faces:group": 0.85,
    "faces:single": 0.85,
    "labels": 0.9,
    "graphic": 0.6,
    "fallback": 0.6,
}
# Why an OCR rule fired, for the Chinese description.
_REASONS: dict[str, str] = {
    "idcard:gb11643": "识别到校验位正确的身份证号码",
    "idcard:mrz": "识别到护照机读码",
    "idcard:keyword": "识别到证件名称和栏目",
    "idcard:keywords": "识别到多个证件栏目",
    "screenshot:clock": "顶部有状态栏时间",
    "screenshot:ui_words": "识别到应用界面文字",
    "screenshot:text_over_flat": "纯色背景上有多行文字",
    "screenshot:resolution": "尺寸与屏幕分辨率一致",
}
# What the label vote saw, for the Chinese description.
_SUBJECTS: dict[Category, str] = {
    Category.pets: "猫狗等宠物",
    Category.foods: "食物饮品",
    Category.travel_scenery: "风景与建筑",
}
# Effnet preprocessing of the TensorFlow Lite release: shorter side 256, centre 224.
_RESIZE_SHORT = 256
_MEAN = 127.0
_SCALE = 128.0

Array = npt.NDArray[Any]


@dataclass
class Analysis:
    """What the pipeline saw and decided for one image."""

    category: Category
    confidence: float
    rule: str
    description: str
    faces: list[dict[str, Any]] = field(default_factory=list)
    ocr: list[str] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The ``details`` object of a Prediction."""
        return {
            "faces": self.faces,
            "ocr": self.ocr,
            "labels": self.labels,
            "rule": self.rule,
            "signals": self.signals,
            "timings_ms": self.timings_ms,
        }


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Without the arena, memory goes back after each run instead of staying at the peak.
    options.enable_cpu_mem_arena = False
    return options


# Modes Pillow resizes with a real filter; others are converted first.
_RESIZABLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "I", "F"})


def to_rgb(image: Image.Image, max_side: int) -> Image.Image:
    """Upright RGB at most ``max_side``: EXIF orientation applied, alpha flattened on white."""
    work = image
    if work.mode.startswith("I;16"):
        work = work.convert("I")
    if work.mode not in _RESIZABLE_MODES:
        has_alpha = work.mode in ("PA", "RGBa", "La") or "transparency" in work.info
        work = work.convert("RGBA" if has_alpha else "RGB")
    # Downscale before anything else: on a 40 MP upload, rotating or converting first
    # costs seconds; the resized copy keeps ``info`` and so the EXIF orientation.
    work = _fit(work, max_side)
    work = ImageOps.exif_transpose(work) or work
    if work.mode in ("RGBA", "LA"):
        rgba = work.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if work.mode in ("I", "F"):
        # 16/32-bit greyscale: scale to 8 bits by its own range instead of clipping.
        pixels = np.asarray(work, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        work = Image.fromarray(scaled.astype(np.uint8))
    return work.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (ValueError, TypeError, OSError):  # broken EXIF is common and harmless here
        return 1


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def flat_fraction(gray: Array, block: int, tolerance: int) -> float:
    """Share of ``block``-pixel tiles whose pixels all lie within ``tolerance`` levels."""
    rows, cols = gray.shape[0] // block, gray.shape[1] // block
    if rows == 0 or cols == 0:
        return 0.0
    tiles = gray[: rows * block, : cols * block].reshape(rows, block, cols, block)
    spread = tiles.max(axis=(1, 3)).astype(np.int16) - tiles.min(axis=(1, 3))
    return float((spread <= tolerance).mean())


class LocalPipeline:
    """All three models, loaded once per process; ``analyse`` is safe from many threads."""

    def __init__(self, data_dir: Path, settings: LocalSettings) -> None:
        self.settings = settings
        options = _session_options(settings.intra_op_threads)
        model_path = effnet.ensure_model(data_dir / "models")
        self._effnet = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._faces = FaceDetector(
            MTCNN_DIR, options, settings.mtcnn_thresholds, settings.mtcnn_scale_factor
        )
        self._reader: TextReader | None = None
        if settings.ocr_enabled:
            self._reader = TextReader(
                settings.ocr_max_side, settings.ocr_threads, settings.ocr_min_score
            )
        self._weights = category_weights()
        self._names = class_names()

    # -- signals -----------------------------------------------------------------

    def label_probabilities(self, rgb: Image.Image) -> Array:
        """ImageNet-1k probabilities of EfficientNet-Lite0 for an RGB image."""
        # "Shorter side to 256, centre 224" done as crop-then-resize, which is the same
        # region but never blows a thin strip up to a huge intermediate image.
        side = min(rgb.size) * effnet.INPUT_SIZE / _RESIZE_SHORT
        left = (rgb.width - side) / 2
        top = (rgb.height - side) / 2
        crop = rgb.resize(
            (effnet.INPUT_SIZE, effnet.INPUT_SIZE),
            Image.Resampling.BICUBIC,
            box=(left, top, left + side, top + side),
            reducing_gap=3.0,
        )
        pixels = (np.asarray(crop, dtype=np.float32) - _MEAN) / _SCALE
        batch = pixels.transpose(2, 0, 1)[None]
        output = self._effnet.run(None, {effnet.INPUT_NAME: batch})[0]
        return np.asarray(output[0], dtype=np.float32)

    def detect_faces(self, rgb: Image.Image) -> tuple[list[Face], float]:
        """Confident faces at least the minimum size, and the analysed image's scale."""
        small = _fit(rgb, self.settings.face_max_side)
        pixels = np.asarray(small, dtype=np.uint8)
        min_face = self.settings.crowd_face_min_fraction * min(small.size)
        faces = self._faces.detect(pixels, min_face)
        kept = [
            f
            for f in faces
            if f.confidence >= self.settings.face_confidence and min(f.width, f.height) >= min_face
        ]
        return kept, rgb.width / small.width

    def _status_bar_lines(self, image: Image.Image, reader: TextReader) -> list[rules.TextLine]:
        """Text in the top strip of an upright screenshot, boxes relative to the whole image."""
        s = self.settings
        if _orientation(image) != 1:
            return []
        strip_height = max(1, round(image.height * s.status_bar_fraction * 1.5))
        strip = to_rgb(image.crop((0, 0, image.width, strip_height)), s.ocr_max_side)
        share = strip_height / image.height
        return [
            replace(line, top=line.top * share, bottom=line.bottom * share)
            for line in reader.read(np.asarray(strip, dtype=np.uint8))
        ]

    # -- decision ----------------------------------------------------------------

    def analyse(self, image: Image.Image, image_format: str, has_camera_exif: bool) -> Analysis:
        """Classify one decoded image. Blocking: call from a worker thread."""
        s = self.settings
        timings: dict[str, float] = {}
        start = time.perf_counter()
        rgb = to_rgb(image, max(s.ocr_max_side, s.face_max_side))
        width, height = image.size
        gray = np.asarray(_fit(rgb, s.analysis_side).convert("L"), dtype=np.uint8)
        flat = flat_fraction(gray, s.flat_block, s.flat_tolerance)
        timings["prepare"] = _ms(start)

        t = time.perf_counter()
        probs = self.label_probabilities(rgb)
        masses = self._weights @ probs
        # The most likely single class voting for each category.
        tops = (self._weights * probs[None, :]).max(axis=1)
        document_mass = float(probs[list(DOCUMENT_CLASSES)].sum())
        timings["labels"] = _ms(t)

        t = time.perf_counter()
        faces, face_scale = self.detect_faces(rgb)
        timings["faces"] = _ms(t)
        largest = max((min(f.width, f.height) for f in faces), default=0.0)
        similar = [f for f in faces if min(f.width, f.height) >= s.face_bystander_ratio * largest]
        short_side = min(rgb.size) / face_scale if faces else min(rgb.size)
        # Boxes are reported in pixels of the upright original (EXIF 5-8 swap the axes).
        swapped = _orientation(image) in (5, 6, 7, 8)
        box_scale = face_scale * (height if swapped else width) / rgb.width
        largest_fraction = largest / short_side if faces else 0.0
        # People count when someone is big enough to be a subject, or as a crowd of
        # several similar small faces; a lone small face is a passer-by.
        if largest_fraction >= s.face_min_fraction or len(similar) >= s.crowd_min_faces:
            main_faces = similar
        else:
            main_faces = []

        screen_size = rules.is_device_resolution(width, height)
        screen_prior = not has_camera_exif and (image_format == "png" or screen_size)
        best = int(np.argmax(masses))
        best_mass = float(masses[best])
        portrait = len(main_faces) == 1 and largest_fraction >= s.portrait_face_fraction
        uncertain = best_mass < s.label_mass_threshold and not main_faces
        # OCR is the expensive step: only when something suggests text or nothing else decides.
        run_ocr = self._reader is not None and (
            flat >= s.ocr_gate_flat_fraction
            or document_mass >= s.ocr_gate_document_mass
            or screen_prior
            or uncertain
            or (len(main_faces) == 1 and not portrait)
        )
        lines: list[rules.TextLine] = []
        ocr_scope = "none"
        if run_ocr and self._reader is not None:
            t = time.perf_counter()
            # A phone screenshot shows itself by the clock in its status bar: reading that
            # strip alone costs a tenth of reading a 20-line screen.
            if (
                screen_prior
                and height > width
                and (screen_size or flat >= s.ocr_gate_flat_fraction)
            ):
                lines = self._status_bar_lines(image, self._reader)
                ocr_scope = "status_bar"
            if not rules.has_status_bar_clock(lines, s.status_bar_fraction):
                lines = self._reader.read(np.asarray(rgb, dtype=np.uint8))
                ocr_scope = "full"
            timings["ocr"] = _ms(t)
        texts = [line.text for line in lines]

        signals: dict[str, Any] = {
            "flat_fraction": round(flat, 3),
            "document_mass": round(document_mass, 3),
            "label_mass": {
                c.value: round(float(m), 3) for c, m in zip(VOTING_CATEGORIES, masses, strict=True)
            },
            "device_resolution": screen_size,
            "camera_exif": has_camera_exif,
            "ocr_run": run_ocr,
            "ocr_scope": ocr_scope,
            "text_lines": len(lines),
        }
        top = np.argsort(-probs)[: s.top_labels]
        analysis = Analysis(
            category=Category.other,
            confidence=0.0,
            rule="",
            description="",
            faces=[
                {
                    "box": [round(v * box_scale) for v in (f.x, f.y, f.width, f.height)],
                    "confidence": round(f.confidence, 4),
                    "bystander": f not in main_faces,
                }
                for f in faces
            ],
            ocr=texts[: s.ocr_snippets],
            labels=[
                {"label": self._names[int(i)], "probability": round(float(probs[int(i)]), 4)}
                for i in top
            ],
            signals=signals,
            timings_ms=timings,
        )
        self._decide(
            analysis,
            lines,
            flat,
            screen_size,
            has_camera_exif,
            main_faces,
            faces,
            masses,
            tops,
            largest_fraction,
        )
        timings["total"] = _ms(start)
        return analysis

    def _decide(
        self,
        a: Analysis,
        lines: list[rules.TextLine],
        flat: float,
        screen_size: bool,
        has_camera_exif: bool,
        main_faces: list[Face],
        faces: list[Face],
        masses: Array,
        tops: Array,
        largest_fraction: float,
    ) -> None:
        s = self.settings
        texts = [line.text for line in lines]
        id_rule = rules.idcard_evidence(texts, s.idcard_min_keywords, s.mrz_min_length)
        screenshot_rule = (
            None if has_camera_exif else self._screenshot_rule(lines, flat, screen_size)
        )
        # A checked ID number or an MRZ beats everything; ID words alone lose to a status bar
        # (a screenshot of a form that asks for 姓名/身份证号 is a screenshot).
        if id_rule is not None and (
            id_rule in ("idcard:gb11643", "idcard:mrz") or screenshot_rule != "screenshot:clock"
        ):
            _set(a, Category.idcard, id_rule, RULE_CONFIDENCE[id_rule], _REASONS[id_rule])
            return
        if screenshot_rule is not None:
            _set(
                a,
                Category.screenshot,
                screenshot_rule,
                RULE_CONFIDENCE[screenshot_rule],
                f"{_REASONS[screenshot_rule]}（{len(lines)}行文字）",
            )
            return
        best = int(np.argmax(masses))
        best_mass = float(masses[best])
        # One small face loses to a clear subject (a cat in someone's arms, a dish with a
        # diner behind it); a group in front of a landmark stays a group.
        if (
            len(main_faces) == 1
            and best_mass >= s.label_override_mass
            and largest_fraction < s.portrait_face_fraction
        ):
            main_faces, faces = [], []
        if len(main_faces) >= 2:
            # More faces of similar size make a group more certain; bystanders less so.
            confidence = RULE_CONFIDENCE["faces:group"] + 0.03 * min(len(main_faces) - 2, 3)
            if len(faces) > len(main_faces):
                confidence -= 0.05
            _set(
                a,
                Category.social_activities,
                "faces:group",
                confidence,
                f"检测到{len(main_faces)}张人脸",
            )
            return
        if len(main_faces) == 1:
            confidence = RULE_CONFIDENCE["faces:single"] * main_faces[0].confidence
            if len(faces) > 1:
                confidence -= 0.05
            _set(a, Category.single_person, "faces:single", confidence, "检测到1张人脸")
            return
        if flat >= s.graphic_flat_fraction and not lines:
            _set(a, Category.other, "graphic", RULE_CONFIDENCE["graphic"], "大面积纯色无文字的图形")
            return
        if best_mass >= s.label_mass_threshold and float(tops[best]) >= s.label_min_top_probability:
            category = VOTING_CATEGORIES[best]
            # Map mass in [threshold, 1] linearly onto [floor, cap].
            span = (best_mass - s.label_mass_threshold) / (1.0 - s.label_mass_threshold)
            floor = s.label_confidence_floor
            confidence = floor + (RULE_CONFIDENCE["labels"] - floor) * min(1.0, span)
            subject = _SUBJECTS[category]
            _set(a, category, "labels", confidence, f"图像内容以{subject}为主（{best_mass:.0%}）")
            return
        confidence = min(RULE_CONFIDENCE["fallback"], max(0.3, 1.0 - best_mass * 2))
        _set(a, Category.other, "fallback", confidence, "未识别到明确主体")

    def _screenshot_rule(
        self, lines: list[rules.TextLine], flat: float, screen_size: bool
    ) -> str | None:
        s = self.settings
        texts = [line.text for line in lines]
        if rules.has_status_bar_clock(lines, s.status_bar_fraction) and (
            flat >= s.ocr_gate_flat_fraction or screen_size or len(lines) >= s.screenshot_min_lines
        ):
            return "screenshot:clock"
        if rules.count_ui_words(texts) >= s.screenshot_min_ui_words and len(lines) >= 3:
            return "screenshot:ui_words"
        if len(lines) >= s.screenshot_min_lines and flat >= s.screenshot_flat_fraction:
            return "screenshot:text_over_flat"
        if screen_size and flat >= s.screenshot_resolution_flat_fraction:
            return "screenshot:resolution"
        return None


def _set(a: Analysis, category: Category, rule: str, confidence: float, reason: str) -> None:
    a.category = category
    a.rule = rule
    a.confidence = round(min(1.0, max(0.0, confidence)), 3)
    a.description = f"{reason}，判定为{CATEGORY_NAMES[category]}"


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
