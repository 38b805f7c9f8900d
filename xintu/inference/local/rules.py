"""Pure decision rules on OCR text and image geometry: ID documents and screenshots."""

from __future__ import annotations

import re
from dataclasses import dataclass

# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK = "10X98765432"
_ID_NUMBER_RE = re.compile(r"(?<![0-9])([1-9][0-9]{16}[0-9Xx])(?![0-9])")

# Words printed on Chinese ID cards, passports, driving and residence permits.
ID_STRONG_WORDS = (
    "公民身份号码", "居民身份证", "身份证号", "PASSPORT", "护照", "驾驶证", "行驶证", "居住证",
    "通行证", "社会保障卡", "IDENTITYCARD", "IDCARD", "DRIVERLICENSE", "DRIVER'SLICENSE",
    "DRIVINGLICENCE", "RESIDENCEPERMIT",
)  # fmt: skip
ID_KEYWORDS = (
    "姓名", "性别", "民族", "出生", "住址", "签发机关", "有效期限", "国籍", "签发日期",
    "有效期至", "准驾车型", "证件号码", "Surname", "Given names", "Nationality",
    "Date of birth", "Date of expiry", "Place of birth", "Date of issue", "Sex", "DOB",
    "Expires", "Issuing authority",
)  # fmt: skip
# A passport's machine-readable zone: P<ISSUER then names, or the digit line.
_MRZ_NAME_RE = re.compile(r"P[<A-Z][A-Z<]{3}[A-Z<]{20,}")
_MRZ_FILL_RE = re.compile(r"[A-Z0-9<]{25,}<{3,}")

# A status-bar clock: 9:41, 21:07, possibly followed by AM/PM.
_CLOCK_RE = re.compile(r"(?<![0-9])([01]?[0-9]|2[0-3])[:：][0-5][0-9](?![0-9])")
UI_WORDS = (
    "发送", "返回", "搜索", "设置", "消息", "通讯录", "发现", "我的", "首页", "关注", "推荐",
    "分享", "评论", "点赞", "朋友圈", "收藏", "转发", "取消", "确定", "登录", "注册",
    "下载", "更多", "Search", "Settings", "Reply", "Share", "Sign in", "Log in", "Follow",
    "Home", "Menu", "Cancel", "Download", "Subscribe", "Message",
)  # fmt: skip

# Native screen sizes (portrait) of common phones, tablets and desktop displays.
DEVICE_RESOLUTIONS: frozenset[tuple[int, int]] = frozenset(
    {
        (640, 1136), (750, 1334), (828, 1792), (1080, 1920), (1125, 2436), (1170, 2532),
        (1179, 2556), (1242, 2208), (1242, 2688), (1284, 2778), (1290, 2796), (1206, 2622),
        (1320, 2868), (720, 1280), (720, 1600), (1080, 2160), (1080, 2240), (1080, 2340),
        (1080, 2400), (1080, 2412), (1220, 2712), (1224, 2700), (1260, 2800), (1440, 2560),
        (1440, 3040), (1440, 3120), (1440, 3200), (1536, 2048), (1620, 2160), (1668, 2388),
        (2048, 2732), (768, 1366), (900, 1440), (864, 1536), (900, 1600), (1050, 1680),
        (1080, 1920), (1200, 1920), (1440, 2560), (1600, 2560), (1800, 2880), (1964, 3024),
        (2160, 3840), (800, 1280), (768, 1024), (1440, 3440), (1080, 2520), (1116, 2484),
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TextLine:
    """One OCR line: its text, score and box as fractions of the image size."""

    text: str
    score: float
    top: float
    bottom: float
    left: float
    right: float


def gb11643_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a citizen ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("expected 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def is_valid_id_number(number: str) -> bool:
    """Whether an 18-character ID number has a correct GB 11643 check character."""
    number = number.upper()
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return gb11643_check_char(number[:17]) == number[17]


def find_id_numbers(texts: list[str]) -> list[str]:
    """18-character ID numbers with a valid check character, OCR spacing removed."""
    found: list[str] = []
    for text in texts:
        compact = re.sub(r"\s+", "", text)
        for match in _ID_NUMBER_RE.finditer(compact):
            if is_valid_id_number(match.group(1)):
                found.append(match.group(1).upper())
    return found


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def idcard_evidence(texts: list[str], min_keywords: int, mrz_min_length: int) -> str | None:
    """Which ID-document rule matches the OCR text (strongest first), or None."""
    if find_id_numbers(texts):
        return "idcard:gb11643"
    joined = "\n".join(texts)
    compact = _compact(joined)
    upper = compact.upper()
    for text in texts:
        line = _compact(text).upper().replace("«", "<")
        if len(line) >= mrz_min_length and (_MRZ_NAME_RE.search(line) or _MRZ_FILL_RE.search(line)):
            return "idcard:mrz"
    hits = sum(1 for word in ID_KEYWORDS if _compact(word).upper() in upper)
    # A title alone ("护照办理", "请输入身份证号") appears in apps and forms: want a field too.
    if hits >= 1 and any(_compact(word).upper() in upper for word in ID_STRONG_WORDS):
        return "idcard:keyword"
    if hits >= min_keywords:
        return "idcard:keywords"
    return None


def has_status_bar_clock(lines: list[TextLine], status_bar_fraction: float) -> bool:
    """Whether a ``HH:MM`` clock sits in the top strip where phones draw the status bar."""
    return any(
        line.bottom <= status_bar_fraction * 1.5
        and line.top <= status_bar_fraction
        and _CLOCK_RE.search(line.text)
        for line in lines
    )


def count_ui_words(texts: list[str]) -> int:
    """How many distinct app/web UI words appear in the text."""
    joined = _compact(" ".join(texts)).lower()
    return sum(1 for word in UI_WORDS if _compact(word).lower() in joined)


def is_device_resolution(width: int, height: int) -> bool:
    """Whether the pixel size is exactly a common phone, tablet or desktop screen."""
    return (min(width, height), max(width, height)) in DEVICE_RESOLUTIONS
