"""Pure rules: GB 11643 check digits, ID-document text, screenshot signals."""

from __future__ import annotations

import pytest

from xintu.inference.local import rules
from xintu.inference.local.rules import TextLine


# 11010519491231002X is the worked example of the standard; the others were checked by hand
# (e.g. 4403051990010100 1: weighted sum 180, 180 mod 11 = 4, check character "8").
@pytest.mark.parametrize(
    ("first17", "check"),
    [("11010519491231002", "X"), ("44030519900101001", "8"), ("31010419800101000", "9")],
)
def test_gb11643_check_character(first17: str, check: str) -> None:
    assert rules.gb11643_check_char(first17) == check


def test_valid_and_invalid_id_numbers() -> None:
    assert rules.is_valid_id_number("11010519491231002X")
    assert rules.is_valid_id_number("11010519491231002x")
    assert not rules.is_valid_id_number("110105194912310021")
    assert not rules.is_valid_id_number("1101051949123100")


def test_id_numbers_are_found_through_ocr_spacing() -> None:
    found = rules.find_id_numbers(["公民身份号码 1101 0519 4912 3100 2X", "电话 13800138000"])
    assert found == ["11010519491231002X"]


def test_idcard_evidence_rules() -> None:
    assert rules.idcard_evidence(["公民身份号码", "11010519491231002X"], 3, 30) == "idcard:gb11643"
    mrz = "P<CHNZHANG<<WEI<<<<<<<<<<<<<<<<<<<<<<<<<<<<<"
    assert rules.idcard_evidence(["PASSPORT", mrz], 3, 30) == "idcard:mrz"
    assert rules.idcard_evidence(["居民身份证", "签发机关 某公安局"], 3, 30) == "idcard:keyword"
    assert rules.idcard_evidence(["姓名 张三", "性别 男", "民族 汉"], 3, 30) == "idcard:keywords"
    english = ["HONG KONG IDENTITY CARD", "Date of Birth 01-01-1990", "Sex M"]
    assert rules.idcard_evidence(english, 3, 30) == "idcard:keyword"


def test_forms_and_app_titles_are_not_id_documents() -> None:
    assert rules.idcard_evidence(["请输入身份证号", "下一步"], 3, 30) is None
    assert rules.idcard_evidence(["护照办理指南", "预约"], 3, 30) is None
    assert rules.idcard_evidence(["姓名", "电话"], 3, 30) is None


def _line(text: str, top: float) -> TextLine:
    return TextLine(text=text, score=0.9, top=top, bottom=top + 0.02, left=0.05, right=0.2)


def test_status_bar_clock_must_sit_at_the_top() -> None:
    assert rules.has_status_bar_clock([_line("9:41", 0.01)], 0.07)
    assert rules.has_status_bar_clock([_line("21:07 5G", 0.02)], 0.07)
    assert not rules.has_status_bar_clock([_line("9:41", 0.5)], 0.07)
    assert not rules.has_status_bar_clock([_line("25:99", 0.01)], 0.07)


def test_ui_words_and_device_resolutions() -> None:
    assert rules.count_ui_words(["‹ 返回", "周末聚餐群", "发送"]) == 2
    assert rules.is_device_resolution(1080, 2340)
    assert rules.is_device_resolution(2340, 1080)
    assert rules.is_device_resolution(1920, 1080)
    assert not rules.is_device_resolution(4032, 3024)
