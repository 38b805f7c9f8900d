"""Defensive parsing of what vision LLMs answer."""

from __future__ import annotations

import pytest

from xintu.categories import Category
from xintu.inference.parsing import UnparseableAnswer, parse_answer


@pytest.mark.parametrize(
    ("text", "category", "confidence"),
    [
        ('{"category": "pets", "confidence": 0.9, "description": "猫"}', Category.pets, 0.9),
        ('```json\n{"category": "foods", "confidence": 0.8}\n```', Category.foods, 0.8),
        ('Sure! {"category": "美食记录", "confidence": "85%"}', Category.foods, 0.85),
        ('{"category": "手机截图", "confidence": 100}', Category.screenshot, 1.0),
        ('{"category": "Travel Scenery", "confidence": 92}', Category.travel_scenery, 0.92),
        ('{"category": "selfie", "confidence": -3}', Category.single_person, 0.0),
        ('{"category": "passport", "confidence": null}', Category.idcard, 0.5),
        ('{"类别": "宠物", "confidence": 0.7}', Category.pets, 0.7),
        ("social_activities", Category.social_activities, 0.5),
        ("其它", Category.other, 0.5),
    ],
)
def test_parse_answer_accepts_what_models_send(
    text: str, category: Category, confidence: float
) -> None:
    parsed = parse_answer(text)
    assert parsed.category is category
    assert parsed.confidence == pytest.approx(confidence)


@pytest.mark.parametrize(
    "text",
    [
        '{"category": "vehicles", "confidence": 0.9}',
        "I cannot tell what this is.",
        "",
        '{"confidence": 0.9}',
        "[1, 2, 3]",
    ],
)
def test_parse_answer_rejects_off_list_and_prose(text: str) -> None:
    with pytest.raises(UnparseableAnswer):
        parse_answer(text)


def test_description_is_trimmed() -> None:
    parsed = parse_answer('{"category": "other", "description": "' + "长" * 500 + '"}')
    assert len(parsed.description) == 200
