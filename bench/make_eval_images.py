# HTML and drawing templates read better unwrapped.
# ruff: noqa: E501
"""(Re)generate the local-classifier evaluation set under tests/fixtures/images/local_eval.

Sources (see SOURCES.md there): photos bundled with scikit-image, matplotlib and
scikit-learn (public domain / CC0 / CC BY 2.0), deterministic crops and edits of
them, group pictures composed from those portraits, screenshots rendered from
local HTML with headless Chromium, and ID-document specimens drawn with Pillow
and Noto CJK. Run: python bench/make_eval_images.py [--sklearn-images DIR]

Needs (not project dependencies): scikit-image and matplotlib for their bundled
photos, scikit-learn's china.jpg/flower.jpg (installed, or a folder holding
them), Debian's chromium and fonts-noto-cjk. Output is deterministic.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
from importlib import util
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "images" / "local_eval"
FONT_CJK = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
FONT_CJK_BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
FONT_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
MAX_SIDE = 800
GB_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def package_dir(name: str) -> Path:
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def skimage_photo(name: str) -> Image.Image:
    return Image.open(package_dir("skimage") / "data" / name).convert("RGB")


def grace_hopper() -> Image.Image:
    path = package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB")


def save_photo(image: Image.Image, category: str, name: str) -> None:
    image = image.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    path = OUT / category / f"{name}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=85, optimize=True)


def crop_frac(
    image: Image.Image, left: float, top: float, right: float, bottom: float
) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * left), int(h * top), int(w * right), int(h * bottom)))


def variants(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """Deterministic edits a phone gallery would plausibly hold of the same scene."""
    return [
        ("flip", ImageOps.mirror(image)),
        ("crop", crop_frac(image, 0.08, 0.05, 0.92, 0.95)),
        ("warm", ImageEnhance.Color(image).enhance(1.4)),
        ("dark", ImageEnhance.Brightness(image).enhance(0.7)),
        (
            "rot",
            image.rotate(
                6, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(30, 30, 30)
            ),
        ),
        ("soft", image.filter(ImageFilter.GaussianBlur(1.2))),
        ("bw", ImageOps.grayscale(image).convert("RGB")),
    ]


# -- photos -------------------------------------------------------------------------------------


def make_photos(sklearn_images: Path | None) -> None:
    chelsea = skimage_photo("chelsea.png")
    save_photo(chelsea, "pets", "chelsea")
    for tag, image in variants(chelsea):
        save_photo(image, "pets", f"chelsea_{tag}")

    coffee = skimage_photo("coffee.png")
    save_photo(coffee, "foods", "coffee")
    for tag, image in variants(coffee):
        save_photo(image, "foods", f"coffee_{tag}")

    astronaut = skimage_photo("astronaut.png")
    grace = grace_hopper()
    camera = skimage_photo("camera.png")
    save_photo(astronaut, "single_person", "astronaut")
    save_photo(grace, "single_person", "grace_hopper")
    save_photo(camera, "single_person", "cameraman")
    save_photo(ImageOps.mirror(astronaut), "single_person", "astronaut_flip")
    save_photo(crop_frac(grace, 0.1, 0.0, 0.9, 0.7), "single_person", "grace_hopper_closeup")
    save_photo(ImageEnhance.Brightness(astronaut).enhance(0.75), "single_person", "astronaut_dark")
    save_photo(crop_frac(camera, 0.2, 0.0, 0.9, 0.8), "single_person", "cameraman_crop")
    save_photo(
        grace.rotate(-5, resample=Image.Resampling.BICUBIC), "single_person", "grace_hopper_rot"
    )

    if sklearn_images is not None:
        china = Image.open(sklearn_images / "china.jpg").convert("RGB")
        save_photo(china, "travel_scenery", "china")
        for tag, image in variants(china):
            save_photo(image, "travel_scenery", f"china_{tag}")
        save_photo(crop_frac(china, 0.0, 0.0, 0.6, 0.8), "travel_scenery", "china_left")
        save_photo(Image.open(sklearn_images / "flower.jpg"), "other", "flower")

    for name, out in [
        ("rocket.jpg", "rocket"),
        ("hubble_deep_field.jpg", "hubble_deep_field"),
        ("coins.png", "coins"),
        ("brick.png", "brick"),
        ("retina.jpg", "retina"),
        ("gravel.png", "gravel"),
        ("grass.png", "grass"),
        ("horse.png", "horse"),
        ("text.png", "text_sign"),
        ("cell.png", "cell"),
        ("clock_motion.png", "clock_motion"),
        ("ihc.png", "immunohistochemistry"),
    ]:
        save_photo(skimage_photo(name), "other", out)


def compose_groups(sklearn_images: Path | None) -> None:
    """Group pictures: 2-5 portraits side by side, on a plain or a scenic backdrop."""
    astronaut = skimage_photo("astronaut.png")
    grace = grace_hopper()
    camera = skimage_photo("camera.png")
    people = [
        crop_frac(astronaut, 0.2, 0.0, 0.75, 0.7),
        crop_frac(grace, 0.05, 0.0, 0.95, 0.75),
        crop_frac(camera, 0.25, 0.0, 0.85, 0.65),
        ImageOps.mirror(crop_frac(astronaut, 0.2, 0.0, 0.75, 0.7)),
        ImageOps.mirror(crop_frac(grace, 0.05, 0.0, 0.95, 0.75)),
    ]
    backdrop: Image.Image | None = None
    if sklearn_images is not None:
        backdrop = Image.open(sklearn_images / "china.jpg").convert("RGB")
    rng = random.Random(11643)
    layouts = [
        (2, "plain"),
        (3, "plain"),
        (4, "plain"),
        (5, "plain"),
        (2, "scene"),
        (3, "scene"),
        (4, "scene"),
        (3, "rows"),
    ]
    for index, (count, style) in enumerate(layouts):
        height = 300
        members = [people[(index + k) % len(people)] for k in range(count)]
        scaled = [p.resize((int(p.width * height / p.height), height)) for p in members]
        gap = 12
        width = sum(p.width for p in scaled) + gap * (count + 1)
        canvas_h = height + 80 if style != "rows" else height * 2 + 60
        if style == "scene" and backdrop is not None:
            canvas = backdrop.resize((width, canvas_h))
        else:
            shade = rng.randint(150, 230)
            canvas = Image.new("RGB", (width, canvas_h), (shade, shade - 10, shade - 25))
        x = gap
        for k, p in enumerate(scaled):
            if style == "rows" and k % 2:
                canvas.paste(p.resize((p.width, height - 20)), (x, height + 40))
            else:
                canvas.paste(p, (x, 40 + rng.randint(-15, 15)))
            x += p.width + gap
        save_photo(canvas, "social_activities", f"group_{count}_{style}_{index}")
    if backdrop is not None:
        # A tour group in front of a landmark: nine small people, faces ~5 % of the height.
        scene = backdrop.resize((1600, 1200))
        x = 20
        for k in range(9):
            person = people[k % len(people)]
            person = person.resize((int(person.width * 200 / person.height), 200))
            scene.paste(person, (x, 700 + (k % 2) * 60))
            x += person.width + 15
        save_photo(scene, "social_activities", "group_crowd_landmark")


# -- ID documents ------------------------------------------------------------------------------


def id_number(rng: random.Random) -> str:
    region = rng.choice(["110105", "310104", "440305", "510107", "330106"])
    birth = f"{rng.randint(1960, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = region + birth + f"{rng.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, GB_WEIGHTS, strict=True)) % 11]
    return body + check


def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def idcard_front(rng: random.Random, portrait: Image.Image, name: str) -> Image.Image:
    card = Image.new("RGB", (856, 540), (236, 240, 232))
    d = ImageDraw.Draw(card)
    for y in range(0, 540, 6):  # faint guilloche-like background
        d.line([(0, y), (856, (y + 200) % 540)], fill=(226, 232, 224))
    label = font(FONT_CJK, 26)
    value = font(FONT_CJK_BOLD, 30)
    d.text((50, 50), "姓名", font=label, fill=(60, 100, 160))
    d.text((130, 46), name, font=value, fill=(20, 20, 20))
    d.text((50, 110), "性别", font=label, fill=(60, 100, 160))
    d.text((130, 106), rng.choice(["男", "女"]), font=value, fill=(20, 20, 20))
    d.text((230, 110), "民族", font=label, fill=(60, 100, 160))
    d.text((310, 106), "汉", font=value, fill=(20, 20, 20))
    number = id_number(rng)
    d.text((50, 170), "出生", font=label, fill=(60, 100, 160))
    d.text(
        (130, 166),
        f"{number[6:10]} 年 {int(number[10:12])} 月 {int(number[12:14])} 日",
        font=value,
        fill=(20, 20, 20),
    )
    d.text((50, 230), "住址", font=label, fill=(60, 100, 160))
    d.text((130, 226), "北京市朝阳区建国路88号", font=value, fill=(20, 20, 20))
    d.text((130, 270), "3号楼2单元1201室", font=value, fill=(20, 20, 20))
    d.text((50, 440), "公民身份号码", font=label, fill=(60, 100, 160))
    d.text((250, 434), number, font=font(FONT_MONO, 36), fill=(20, 20, 20))
    photo = ImageOps.fit(portrait, (220, 270))
    card.paste(photo, (590, 60))
    return card


def idcard_back(rng: random.Random) -> Image.Image:
    card = Image.new("RGB", (856, 540), (232, 238, 242))
    d = ImageDraw.Draw(card)
    d.ellipse((50, 40, 190, 180), outline=(200, 40, 40), width=8)
    d.text((260, 70), "中华人民共和国", font=font(FONT_CJK_BOLD, 46), fill=(30, 30, 30))
    d.text((240, 160), "居 民 身 份 证", font=font(FONT_CJK_BOLD, 60), fill=(30, 30, 30))
    d.text((160, 360), "签发机关", font=font(FONT_CJK, 28), fill=(30, 30, 30))
    d.text(
        (300, 356),
        rng.choice(["北京市公安局朝阳分局", "上海市公安局徐汇分局"]),
        font=font(FONT_CJK, 30),
        fill=(30, 30, 30),
    )
    d.text((160, 420), "有效期限", font=font(FONT_CJK, 28), fill=(30, 30, 30))
    d.text((300, 416), "2019.05.01-2039.05.01", font=font(FONT_CJK, 30), fill=(30, 30, 30))
    return card


def passport(portrait: Image.Image, surname: str, given: str) -> Image.Image:
    page = Image.new("RGB", (900, 630), (238, 234, 246))
    d = ImageDraw.Draw(page)
    d.text((40, 25), "中华人民共和国  护照", font=font(FONT_CJK_BOLD, 30), fill=(40, 40, 90))
    d.text((520, 30), "PASSPORT", font=font(FONT_CJK_BOLD, 28), fill=(40, 40, 90))
    page.paste(ImageOps.fit(portrait, (200, 250)), (40, 90))
    rows = [
        ("姓/Surname", surname),
        ("名/Given names", given),
        ("国籍/Nationality", "中国 CHINESE"),
        ("出生日期/Date of birth", "12 MAR 1986"),
        ("有效期至/Date of expiry", "11 MAR 2031"),
    ]
    for k, (key, val) in enumerate(rows):
        d.text((280, 90 + k * 66), key, font=font(FONT_CJK, 18), fill=(90, 90, 120))
        d.text((280, 112 + k * 66), val, font=font(FONT_CJK_BOLD, 24), fill=(20, 20, 20))
    mono = font(FONT_MONO, 30)
    line1 = f"P<CHN{surname}<<{given}".ljust(44, "<")[:44]
    line2 = "E123456785CHN8603128F3103115<<<<<<<<<<<<<<06"
    d.text((30, 520), line1, font=mono, fill=(10, 10, 10))
    d.text((30, 565), line2, font=mono, fill=(10, 10, 10))
    return page


def driving_licence(rng: random.Random, portrait: Image.Image) -> Image.Image:
    card = Image.new("RGB", (856, 560), (226, 236, 246))
    d = ImageDraw.Draw(card)
    d.text((140, 24), "中华人民共和国机动车驾驶证", font=font(FONT_CJK_BOLD, 36), fill=(20, 20, 60))
    number = id_number(rng)
    rows = [
        ("证号", number),
        ("姓名", "王小明"),
        ("性别", "男"),
        ("国籍", "中国"),
        ("住址", "广东省深圳市南山区科技园路1号"),
        ("出生日期", f"{number[6:10]}-{number[10:12]}-{number[12:14]}"),
        ("准驾车型", "C1"),
        ("有效期限", "2020-06-01 至 2030-06-01"),
    ]
    for k, (key, val) in enumerate(rows):
        d.text((40, 90 + k * 54), key, font=font(FONT_CJK, 24), fill=(60, 60, 90))
        d.text((170, 88 + k * 54), val, font=font(FONT_CJK_BOLD, 26), fill=(10, 10, 10))
    card.paste(ImageOps.fit(portrait, (170, 220)), (650, 120))
    return card


def on_table(card: Image.Image, rng: random.Random, angle: float) -> Image.Image:
    """A phone photo of the card: wood-coloured table, slight rotation, blur and noise."""
    table = Image.new("RGB", (card.width + 260, card.height + 260), (150, 110, 70))
    d = ImageDraw.Draw(table)
    for y in range(0, table.height, 7):
        tone = rng.randint(-18, 18)
        d.line(
            [(0, y), (table.width, y + rng.randint(-3, 3))],
            fill=(150 + tone, 110 + tone, 70 + tone),
            width=4,
        )
    rotated = card.convert("RGBA").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    table.paste(
        rotated,
        (130 - (rotated.width - card.width) // 2, 130 - (rotated.height - card.height) // 2),
        rotated,
    )
    return ImageEnhance.Brightness(table.filter(ImageFilter.GaussianBlur(0.8))).enhance(0.92)


def make_idcards() -> None:
    rng = random.Random(19991)
    grace = grace_hopper()
    astronaut = crop_frac(skimage_photo("astronaut.png"), 0.25, 0.0, 0.7, 0.6)
    camera = crop_frac(skimage_photo("camera.png"), 0.3, 0.0, 0.8, 0.6)
    save_photo(idcard_front(rng, grace, "张 伟"), "idcard", "idcard_front_1")
    save_photo(idcard_front(rng, astronaut, "李 娜"), "idcard", "idcard_front_2")
    save_photo(
        on_table(idcard_front(rng, camera, "刘 洋"), rng, 4.0), "idcard", "idcard_front_table"
    )
    save_photo(idcard_back(rng), "idcard", "idcard_back")
    save_photo(on_table(idcard_back(rng), rng, -5.0), "idcard", "idcard_back_table")
    save_photo(passport(grace, "ZHANG", "WEI"), "idcard", "passport_1")
    save_photo(on_table(passport(astronaut, "LI", "NA"), rng, 3.0), "idcard", "passport_table")
    save_photo(driving_licence(rng, camera), "idcard", "driving_licence")
    save_photo(on_table(driving_licence(rng, grace), rng, -3.0), "idcard", "driving_licence_table")
    save_photo(english_id_card(astronaut), "idcard", "identity_card_english")


def english_id_card(portrait: Image.Image) -> Image.Image:
    """An English-only identity card (no Chinese words, no GB 11643 number)."""
    card = Image.new("RGB", (856, 540), (222, 232, 240))
    d = ImageDraw.Draw(card)
    d.rectangle((0, 0, 856, 70), fill=(40, 70, 120))
    d.text(
        (30, 14),
        "REPUBLIC OF EXAMPLE  IDENTITY CARD",
        font=font(FONT_CJK_BOLD, 32),
        fill=(255, 255, 255),
    )
    rows = [
        ("Surname", "TAYLOR"),
        ("Given names", "ALEX JORDAN"),
        ("Sex", "F"),
        ("Date of birth", "14 FEB 1991"),
        ("Date of expiry", "13 FEB 2031"),
        ("Card No.", "X1234567"),
    ]
    for k, (key, val) in enumerate(rows):
        d.text((40, 95 + k * 70), key, font=font(FONT_CJK, 20), fill=(70, 80, 100))
        d.text((40, 118 + k * 70), val, font=font(FONT_CJK_BOLD, 28), fill=(10, 10, 10))
    card.paste(ImageOps.fit(portrait, (220, 280)), (600, 110))
    return card


# -- screenshots ------------------------------------------------------------------------------

STATUS_BAR = """<div style="display:flex;justify-content:space-between;padding:6px 18px;font:600 15px
sans-serif;background:{bg}"><span>{clock}</span><span>5G ▂▄▆ 87%</span></div>"""

PAGES: dict[str, str] = {
    "chat": """<div style="background:#ededed;height:100%;font-family:'Noto Sans CJK SC'">{status}
<div style="text-align:center;padding:10px;font-size:17px;background:#ededed">‹ 返回 &nbsp; 周末聚餐群(8) &nbsp; ⋯</div>
{bubbles}<div style="position:fixed;bottom:0;width:100%;background:#f7f7f7;padding:10px;font-size:15px">
🎤 <span style="display:inline-block;width:60%;background:#fff;padding:6px">　</span> 😊 ⊕ 发送</div></div>""",
    "settings": """<div style="background:#f2f2f7;height:100%;font-family:'Noto Sans CJK SC'">{status}
<h2 style="margin:12px 16px">设置</h2>{rows}</div>""",
    "feed": """<div style="background:#fff;height:100%;font-family:'Noto Sans CJK SC'">{status}
<div style="display:flex;justify-content:space-around;padding:10px;font-size:16px"><b>关注</b><b>推荐</b><b>热榜</b></div>
{posts}<div style="position:fixed;bottom:0;width:100%;display:flex;justify-content:space-around;padding:10px;
background:#fafafa;font-size:13px"><span>首页</span><span>消息</span><span>发现</span><span>我的</span></div></div>""",
    "shop": """<div style="background:#f5f5f5;height:100%;font-family:'Noto Sans CJK SC'">{status}
<div style="padding:10px;background:#ff5000;color:#fff">🔍 搜索 蓝牙耳机</div>{items}</div>""",
}


def chat_bubbles() -> str:
    lines = [
        "今晚七点老地方见？",
        "好的，我订了位子",
        "记得带上次的照片",
        "收到👌",
        "谁开车？我可以顺路接两个人",
        "我坐地铁过去",
        "那我们先点菜了",
        "好嘞，马上到",
    ]
    out = []
    for k, text in enumerate(lines):
        side = "flex-end" if k % 2 else "flex-start"
        color = "#95ec69" if k % 2 else "#fff"
        out.append(
            f'<div style="display:flex;justify-content:{side};padding:6px 12px"><span style="background:{color};'
            f'padding:8px 12px;border-radius:6px;font-size:15px;max-width:70%">{text}</span></div>'
        )
    return "".join(out)


def settings_rows() -> str:
    names = [
        "飞行模式",
        "无线局域网",
        "蓝牙",
        "蜂窝网络",
        "个人热点",
        "通知",
        "声音与触感",
        "专注模式",
        "屏幕使用时间",
        "通用",
        "控制中心",
        "显示与亮度",
    ]
    return "".join(
        f'<div style="background:#fff;padding:12px 16px;border-bottom:1px solid #ddd;font-size:16px">{n}'
        f'<span style="float:right;color:#999">›</span></div>'
        for n in names
    )


def feed_posts() -> str:
    texts = [
        "周末去了趟西湖，人山人海但风景真的好",
        "分享一个超简单的番茄炒蛋做法",
        "新买的键盘到了，手感很不错",
        "今天的晚霞也太好看了吧",
        "求推荐适合通勤的耳机",
    ]
    return "".join(
        f'<div style="padding:12px 16px;border-bottom:8px solid #f4f4f4"><b>用户{k + 1}</b><p style="font-size:15px">{t}</p>'
        f'<div style="height:90px;background:#dfe6ee"></div><div style="color:#888;font-size:13px">分享 · 评论 {k * 7 + 3} · 点赞 {k * 31 + 12}</div></div>'
        for k, t in enumerate(texts)
    )


def shop_items() -> str:
    return "".join(
        f'<div style="display:inline-block;width:46%;margin:2%;background:#fff;vertical-align:top">'
        f'<div style="height:120px;background:#e8e2d8"></div><div style="padding:6px;font-size:13px">无线蓝牙耳机 降噪 长续航 款式{k}</div>'
        f'<div style="color:#ff5000;padding:0 6px 6px">¥{99 + k * 20}</div></div>'
        for k in range(6)
    )


DESKTOP_PAGE = """<html><body style="margin:0;font-family:'Noto Sans CJK SC',sans-serif">
<div style="background:#24292f;color:#fff;padding:12px 24px">芯图文档中心 &nbsp; 首页 &nbsp; 指南 &nbsp; API &nbsp; 下载 <span style="float:right">登录 · 注册</span></div>
<div style="display:flex"><div style="width:240px;background:#f6f8fa;padding:16px;height:900px">{nav}</div>
<div style="padding:24px 40px;max-width:900px"><h1>{title}</h1>{body}</div></div></body></html>"""


ENGLISH_PAGE = (
    """<html><body style="margin:0;font-family:sans-serif">
<div style="background:#f1f3f4;padding:10px 20px;border-bottom:1px solid #ccc">◀ ▶ ⟳ &nbsp; https://mail.example.org/inbox</div>
<div style="display:flex"><div style="width:220px;padding:16px;line-height:2.2">Compose<br>Inbox (12)<br>Starred<br>Sent<br>Drafts<br>Spam<br>Settings</div>
<div style="flex:1;padding:16px">"""
    + "".join(
        f"<div style='border-bottom:1px solid #eee;padding:10px;font-size:15px'><b>Sender {k}</b> &nbsp; Meeting notes for week {k} - please review before Friday <span style='float:right'>{9 + k % 8}:{10 + k * 3 % 50}</span></div>"
        for k in range(14)
    )
    + """</div></div></body></html>"""
)


def desktop_html(title: str) -> str:
    nav = "".join(
        f"<p>{n}</p>"
        for n in ["快速开始", "安装", "配置", "分类接口", "统计", "用户与登录", "计费", "常见问题"]
    )
    body = "".join(
        f"<p style='font-size:16px;line-height:1.7'>{t}</p>"
        for t in [
            "本页介绍如何在本地运行服务，并通过接口上传图片完成分类。",
            "每张图片按内容的 SHA-256 计算哈希，命中缓存时直接返回结果，不会重复调用模型。",
            "离线模式下使用本地模型，无需网络，也无需 API 密钥。",
            "返回的结果包含类别、中文名称、置信度以及简短的描述。",
            "批量上传时每次最多二十张图片，超出部分会被拒绝。",
        ]
    )
    return DESKTOP_PAGE.format(nav=nav, title=title, body=body)


def render(chromium: str, html: str, width: int, height: int, scale: float, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(
            f"<html><head><meta charset='utf-8'><style>body{{margin:0}}</style></head><body>{html}</body></html>"
            if not html.startswith("<html")
            else html,
            encoding="utf-8",
        )
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--hide-scrollbars",
                f"--force-device-scale-factor={scale}",
                f"--window-size={width},{height}",
                f"--screenshot={shot}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").save(out, "PNG", optimize=True)


def make_screenshots(chromium: str) -> None:
    out = OUT / "screenshot"
    phone = [  # (page, CSS width, CSS height, device scale, clock, file name)
        ("chat", 360, 780, 3, "9:41", "phone_chat_1080x2340.png"),
        ("settings", 375, 667, 2, "14:05", "phone_settings_750x1334.png"),
        ("feed", 360, 800, 2, "21:17", "phone_feed_720x1600.png"),
        ("shop", 390, 844, 2, "08:30", "phone_shop_780x1688.png"),
        ("chat", 412, 915, 2, "23:02", "phone_chat_824x1830.png"),
    ]
    fillers = {
        "bubbles": chat_bubbles(),
        "rows": settings_rows(),
        "posts": feed_posts(),
        "items": shop_items(),
    }
    for page, w, h, scale, clock, name in phone:
        status = STATUS_BAR.format(clock=clock, bg="transparent")
        render(chromium, PAGES[page].format(status=status, **fillers), w, h, scale, out / name)
    render(
        chromium, desktop_html("分类接口使用说明"), 1366, 768, 1, out / "desktop_docs_1366x768.png"
    )
    render(chromium, desktop_html("常见问题"), 1280, 800, 1, out / "desktop_faq_1280x800.png")
    # A screenshot shared through a chat app: re-encoded as JPEG and shrunk.
    shared = Image.open(out / "phone_feed_720x1600.png").convert("RGB")
    save_photo(shared, "screenshot", "shared_feed_jpeg")
    # Dark mode: the same settings screen with inverted colours.
    light = Image.open(out / "phone_settings_750x1334.png").convert("RGB")
    ImageOps.invert(light).save(out / "phone_settings_dark_750x1334.png", "PNG", optimize=True)
    render(chromium, ENGLISH_PAGE, 1440, 900, 1, out / "desktop_english_1440x900.png")
    shared = Image.open(out / "desktop_faq_1280x800.png").convert("RGB")
    save_photo(shared, "screenshot", "shared_desktop_jpeg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sklearn-images",
        type=Path,
        default=None,
        help="folder with scikit-learn's china.jpg and flower.jpg",
    )
    args = parser.parse_args()
    sklearn_images: Path | None = args.sklearn_images
    if sklearn_images is None and util.find_spec("sklearn") is not None:
        sklearn_images = package_dir("sklearn") / "datasets" / "images"
    make_photos(sklearn_images)
    compose_groups(sklearn_images)
    make_idcards()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit(
            "chromium is needed for screenshots: apt-get install -y chromium fonts-noto-cjk"
        )
    make_screenshots(chromium)


if __name__ == "__main__":
    main()
