"""The classification prompt and a defensive parser for what vision LLMs answer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xintu.categories import CATEGORY_DESCRIPTIONS, CATEGORY_NAMES, Category

SYSTEM_PROMPT = (
    "You sort personal photos into exactly one of eight categories. "
    "Answer with one JSON object and nothing else: "
    '{"category": "<id>", "confidence": <0..1>, "description": "<一句简体中文描述>"}.\n'
    "Categories (id: Chinese name — meaning):\n"
    + "\n".join(
        f"- {category.value}: {CATEGORY_NAMES[category]} — {CATEGORY_DESCRIPTIONS[category]}"
        for category in Category
    )
    + "\nRules: an identity document wins over a person; a screenshot wins over its content; "
    "two or more people interacting is social_activities; use other only when nothing fits."
)

USER_PROMPT = "Classify this photo. Reply with the JSON object only."

# Words models use instead of our ids, in English and Chinese.
_SYNONYMS: dict[str, Category] = {
    "social": Category.social_activities,
    "social_activity": Category.social_activities,
    "group": Category.social_activities,
    "group_photo": Category.social_activities,
    "people": Category.social_activities,
    "party": Category.social_activities,
    "社交": Category.social_activities,
    "合影": Category.social_activities,
    "聚会": Category.social_activities,
    "pet": Category.pets,
    "animal": Category.pets,
    "animals": Category.pets,
    "cat": Category.pets,
    "dog": Category.pets,
    "宠物": Category.pets,
    "person": Category.single_person,
    "portrait": Category.single_person,
    "selfie": Category.single_person,
    "single": Category.single_person,
    "人像": Category.single_person,
    "自拍": Category.single_person,
    "单人": Category.single_person,
    "food": Category.foods,
    "drink": Category.foods,
    "meal": Category.foods,
    "美食": Category.foods,
    "食物": Category.foods,
    "travel": Category.travel_scenery,
    "scenery": Category.travel_scenery,
    "landscape": Category.travel_scenery,
    "nature": Category.travel_scenery,
    "风景": Category.travel_scenery,
    "旅行": Category.travel_scenery,
    "风光": Category.travel_scenery,
    "screen_shot": Category.screenshot,
    "screen": Category.screenshot,
    "截图": Category.screenshot,
    "截屏": Category.screenshot,
    "id_card": Category.idcard,
    "id": Category.idcard,
    "document": Category.idcard,
    "passport": Category.idcard,
    "证件": Category.idcard,
    "身份证": Category.idcard,
    "护照": Category.idcard,
    "others": Category.other,
    "misc": Category.other,
    "unknown": Category.other,
    "其他": Category.other,
}
_BY_CHINESE_NAME = {name: category for category, name in CATEGORY_NAMES.items()}
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_OBJECT_RE = re.compile(r"\{.*\}", re.DOTALL)
_MAX_DESCRIPTION = 200


class UnparseableAnswer(ValueError):
    """The model's text holds no usable classification."""


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    category: Category
    confidence: float
    description: str


def normalize_category(raw: str) -> Category | None:
    """Our category for an id, a Chinese name or a common synonym; None when off-list."""
    text = raw.strip().strip("\"'`.").strip()
    if text in _BY_CHINESE_NAME:
        return _BY_CHINESE_NAME[text]
    key = re.sub(r"[\s\-/]+", "_", text.lower())
    try:
        return Category(key)
    except ValueError:
        pass
    return _SYNONYMS.get(key) or _SYNONYMS.get(text)


def _clamp_confidence(value: object) -> float:
    if isinstance(value, str):
        value = value.strip().rstrip("%")
        try:
            number = float(value)
        except ValueError:
            return 0.5
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        return 0.5
    if number != number:  # NaN
        return 0.5
    if 1.0 < number <= 100.0:  # a percentage
        number /= 100.0
    return min(max(number, 0.0), 1.0)


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a model answer: JSON, JSON in a code fence or prose, Chinese names, synonyms."""
    candidates: list[str] = []
    fence = _FENCE_RE.search(text)
    if fence:
        candidates.append(fence.group(1))
    found = _OBJECT_RE.search(text)
    if found:
        candidates.append(found.group(0))
    for candidate in candidates:
        try:
            payload = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if not isinstance(payload, dict):
            continue
        raw_category = payload.get("category") or payload.get("类别") or payload.get("label")
        if not isinstance(raw_category, str):
            continue
        category = normalize_category(raw_category)
        if category is None:
            raise UnparseableAnswer(f"off-list category {raw_category[:40]!r}")
        description = payload.get("description") or payload.get("描述") or ""
        return ParsedAnswer(
            category=category,
            confidence=_clamp_confidence(payload.get("confidence", 0.5)),
            description=str(description).strip()[:_MAX_DESCRIPTION],
        )
    # A bare answer such as "pets" or "宠物萌照".
    bare = normalize_category(text)
    if bare is not None:
        return ParsedAnswer(category=bare, confidence=0.5, description="")
    raise UnparseableAnswer("no JSON classification in the answer")
