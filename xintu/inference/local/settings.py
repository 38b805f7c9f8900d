"""Every knob of the offline pipeline: ``XINTU_LOCAL_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    """Thresholds, gates and resources of the local classifier (values measured, see docs)."""

    model_config = SettingsConfigDict(
        env_prefix="XINTU_LOCAL_", env_file=".env", extra="ignore", validate_default=True
    )

    # Resources
    preload: bool = False
    max_concurrency: int = Field(default=2, ge=1)
    intra_op_threads: int = Field(default=1, ge=1)
    ocr_threads: int = Field(default=2, ge=1)

    # Image model (EfficientNet-Lite0 on ImageNet-1k)
    top_labels: int = Field(default=5, ge=1)
    label_mass_threshold: float = Field(default=0.25, ge=0, le=1)
    label_confidence_floor: float = Field(default=0.45, ge=0, le=1)
    # Label mass that beats a single face smaller than ``portrait_face_fraction`` (a cat in
    # someone's arms, a dish with a diner behind it).
    label_override_mass: float = Field(default=0.6, ge=0, le=1)
    # The winning category also needs one class this likely: mass spread thinly over the
    # 118 dog breeds (a lawn, a texture) is noise, not a dog.
    label_min_top_probability: float = Field(default=0.08, ge=0, le=1)
    # Mostly perfectly flat pixels and no text: clip art, a logo, a silhouette (not a photo).
    graphic_flat_fraction: float = Field(default=0.6, ge=0, le=1)

    # Faces (MTCNN)
    face_max_side: int = Field(default=640, ge=64)
    face_confidence: float = Field(default=0.97, ge=0, le=1)
    face_min_fraction: float = Field(default=0.06, gt=0, le=1)
    # Smaller faces are detected too, but count only as a crowd of similar faces (a big
    # group photo), never as one person.
    crowd_face_min_fraction: float = Field(default=0.04, gt=0, le=1)
    crowd_min_faces: int = Field(default=3, ge=2)
    face_bystander_ratio: float = Field(default=0.45, gt=0, le=1)
    mtcnn_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    mtcnn_scale_factor: float = Field(default=0.709, gt=0.3, lt=0.95)
    # A face this large (fraction of the short side) is a portrait, not a card photo.
    portrait_face_fraction: float = Field(default=0.22, gt=0, le=1)

    # Cheap text signals that gate OCR
    analysis_side: int = Field(default=512, ge=64)
    flat_block: int = Field(default=16, ge=4)
    flat_tolerance: int = Field(default=3, ge=0)
    ocr_enabled: bool = True
    ocr_gate_flat_fraction: float = Field(default=0.25, ge=0, le=1)
    ocr_gate_document_mass: float = Field(default=0.15, ge=0, le=1)
    ocr_max_side: int = Field(default=960, ge=320)
    ocr_min_score: float = Field(default=0.6, ge=0, le=1)
    ocr_snippets: int = Field(default=20, ge=0)

    # ID documents
    idcard_min_keywords: int = Field(default=3, ge=1)
    mrz_min_length: int = Field(default=30, ge=10)

    # Screenshots
    status_bar_fraction: float = Field(default=0.07, gt=0, le=0.3)
    screenshot_min_lines: int = Field(default=6, ge=1)
    screenshot_flat_fraction: float = Field(default=0.35, ge=0, le=1)
    screenshot_min_ui_words: int = Field(default=2, ge=1)
    # Without OCR: a known screen size, no camera EXIF and this much flat area.
    screenshot_resolution_flat_fraction: float = Field(default=0.45, ge=0, le=1)
