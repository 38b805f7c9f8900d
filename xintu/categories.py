"""The eight photo categories: the one place they are defined (DESIGN §1)."""

from enum import StrEnum


class Category(StrEnum):
    social_activities = "social_activities"
    pets = "pets"
    single_person = "single_person"
    foods = "foods"
    travel_scenery = "travel_scenery"
    screenshot = "screenshot"
    idcard = "idcard"
    other = "other"


CATEGORY_NAMES: dict[Category, str] = {
    Category.social_activities: "社交活动",
    Category.pets: "宠物萌照",
    Category.single_person: "单人照片",
    Category.foods: "美食记录",
    Category.travel_scenery: "旅行风景",
    Category.screenshot: "手机截图",
    Category.idcard: "证件照",
    Category.other: "其它",
}

CATEGORY_DESCRIPTIONS: dict[Category, str] = {
    Category.social_activities: "gatherings, group photos, several people interacting",
    Category.pets: "cats, dogs and other pets",
    Category.single_person: "one person: portrait, selfie",
    Category.foods: "food, drinks, dishes, cooking",
    Category.travel_scenery: "landscapes, landmarks, cityscapes, nature",
    Category.screenshot: "screenshots of phones, apps, web pages",
    Category.idcard: "ID cards, passports, driver licences, other identity documents",
    Category.other: "anything else",
}


def category_name(category: str) -> str:
    return CATEGORY_NAMES[Category(category)]
