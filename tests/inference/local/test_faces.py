"""MTCNN face counts on portraits, groups and photos without people."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from xintu.inference.local.pipeline import LocalPipeline


@pytest.mark.parametrize(
    ("relative", "count"),
    [
        ("single_person/astronaut.jpg", 1),
        ("single_person/grace_hopper.jpg", 1),
        ("social_activities/group_5_plain_3.jpg", 5),
        ("social_activities/group_3_scene_5.jpg", 3),
        ("pets/chelsea.jpg", 0),
        ("foods/coffee.jpg", 0),
        ("screenshot/phone_chat_1080x2340.png", 0),
    ],
)
def test_faces_are_counted(
    classifier_pipeline: LocalPipeline, eval_image: Callable[[str], Path], relative: str, count: int
) -> None:
    faces, scale = classifier_pipeline.detect_faces(Image.open(eval_image(relative)).convert("RGB"))
    assert len(faces) == count
    assert scale >= 1.0
    assert all(face.confidence >= 0.97 for face in faces)
