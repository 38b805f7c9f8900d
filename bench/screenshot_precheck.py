"""Precision and recall of the screenshot pre-check (``xintu/inference/precheck.py``).

Run: ``python -m bench.screenshot_precheck [--per-device 8] [--seed 1]``

Screenshots: app and web layouts rendered by headless Chromium at real phone and monitor
sizes (``tests/fixtures/screens.py``), each as the PNG original and as the JPEG copies
clients upload (long side 1024 at quality 85 and 50).

Non-screenshots (nothing here comes from /work/shared/EVAL_EXCLUSIONS.md's sources):
- photos and photo edits of the GIMP manual (Debian ``gimp-help-en``, GFDL) and the photo
  wallpapers of Debian ``ukui-wallpapers`` (GPL); digital-art wallpapers of Debian
  ``gnome-backgrounds`` and ``sway-backgrounds`` (CC BY-SA / CC0);
- each as it is, and made to look like a screenshot on purpose: cropped and resized to an
  exact phone or monitor size and saved as PNG without EXIF, the same as the client's JPEG,
  letterboxed on black at a phone size, and as a meme (caption band of text over the photo);
- photos of screens: every rendered screenshot photographed on its display
  (``photo_of_screen``: tilt, perspective, blur, moiré, vignetting, noise), cropped to the
  screen's own aspect ratio, as PNG at the device's exact size and as the client's JPEG.

Install the sources with ``apt-get install chromium fonts-noto-cjk gimp-help-en
ukui-wallpapers gnome-backgrounds sway-backgrounds``; missing ones are reported and skipped.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tests.fixtures.screens import DESKTOPS, PHONES, photo_of_screen, screenshots
from xintu.images.validation import prepare_image
from xintu.inference import precheck

PHOTO_DIRS = {
    "gimp-help-en": [
        Path("/usr/share/gimp/2.0/help/en/images/tutorials"),
        Path("/usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping"),
        Path("/usr/share/gimp/2.0/help/en/images/filters/examples"),
    ],
    "ukui-wallpapers": [Path("/usr/share/backgrounds")],
}
ART_DIRS = {
    "gnome-backgrounds": [Path("/usr/share/backgrounds/gnome")],
    "sway-backgrounds": [Path("/usr/share/backgrounds/sway")],
}
UKUI_FILES = {
    "2004default.jpg", "calla.png", "city.png", "desert.png", "firstgeneration.jpg",
    "fluent-color.png", "focal-ubuntukylin.png", "goldfish.png", "rhythm.jpg",
    "rollpaper.png", "string.jpg", "the-mouse.jpg",
}  # fmt: skip
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
MAX_PIXELS = 40_000_000


def encode(image: Image.Image, kind: str) -> bytes:
    """``png``: lossless at this size; ``client85``/``client50``: the client's upload."""
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, "PNG", compress_level=1)
    elif kind == "original":
        image.save(buffer, "JPEG", quality=92)
    else:
        copy = image.convert("RGB")
        copy.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        copy.save(buffer, "JPEG", quality=85 if kind == "client85" else 50)
    return buffer.getvalue()


def source_images(dirs: dict[str, list[Path]]) -> Iterator[tuple[str, Image.Image]]:
    for source, folders in dirs.items():
        count = 0
        for folder in folders:
            if not folder.is_dir():
                continue
            paths = sorted(folder.iterdir())
            if folder.name == "examples":
                # ~190 filter results of a handful of photos: every fourth is variety enough.
                paths = paths[::4]
            for path in paths:
                if path.suffix.lower() not in SUFFIXES:
                    continue
                if source == "ukui-wallpapers" and path.name not in UKUI_FILES:
                    continue
                image = Image.open(path)
                if min(image.size) < 200:
                    continue
                count += 1
                yield source, image.convert("RGB")
        message = f"{count} images" if count else "not installed, skipped"
        print(f"  {source}: {message}", flush=True)


def crop_to(image: Image.Image, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A random crop of ``image`` with the aspect ratio of ``size``, resized to it."""
    width, height = image.size
    target = size[0] / size[1]
    scale = rng.uniform(0.7, 1.0)
    if width / height > target:
        crop_h = int(height * scale)
        crop_w = int(crop_h * target)
    else:
        crop_w = int(width * scale)
        crop_h = int(crop_w / target)
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h)).resize(
        size, Image.Resampling.LANCZOS
    )


def letterbox(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size, (0, 0, 0))
    copy = image.copy()
    copy.thumbnail(size, Image.Resampling.LANCZOS)
    canvas.paste(copy, ((size[0] - copy.width) // 2, (size[1] - copy.height) // 2))
    return canvas


def meme(image: Image.Image, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A caption band of two or three lines of text over the photo, as shared pictures have."""
    canvas = Image.new("RGB", size, (255, 255, 255))
    band = int(size[1] * rng.uniform(0.15, 0.3))
    canvas.paste(crop_to(image, (size[0], size[1] - band), rng), (0, band))
    draw = ImageDraw.Draw(canvas)
    font_size = max(16, size[0] // 16)
    font = ImageFont.truetype(FONT, font_size) if Path(FONT).exists() else None
    lines = rng.randint(2, 3)
    for line in range(lines):
        text = "".join(rng.choice("今天周一又要上班了哈哈哈我太难了吧") for _ in range(10))
        draw.text((size[0] // 12, int(band * (line + 0.5) / (lines + 0.5))), text, "black", font)
    return canvas


def negatives(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    sizes = [device.size for device in PHONES + DESKTOPS]
    for group, dirs in (("photo", PHOTO_DIRS), ("art", ART_DIRS)):
        for _source, image in source_images(dirs):
            yield f"{group}:as-is", encode(image, "original")
            size = rng.choice(sizes)
            if rng.random() < 0.5:
                size = size[::-1] if size[0] > size[1] else size
            cropped = crop_to(image, size, rng)
            yield f"{group}:screen-size-png", encode(cropped, "png")
            yield f"{group}:screen-size-client", encode(cropped, "client85")
            phone = rng.choice(PHONES).size
            yield f"{group}:letterbox-png", encode(letterbox(image, phone), "png")
            yield f"{group}:meme-client", encode(meme(image, phone, rng), "client85")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-device", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    print("rendering screenshots …", flush=True)
    shots = screenshots(args.seed, args.per_device)
    detected: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    timings: list[float] = []

    def evaluate(group: str, data: bytes) -> None:
        image = prepare_image(data, MAX_PIXELS)
        started = time.perf_counter()
        evidence = precheck.detect(image)
        timings.append((time.perf_counter() - started) * 1000)
        totals[group] += 1
        if sum(totals.values()) % 100 == 0:
            negative_hits = sum(n for g, n in detected.items() if not g.startswith("screenshot"))
            print(f"  {sum(totals.values())} evaluated, detected {dict(detected)}, "
                  f"false positives so far {negative_hits}", flush=True)  # fmt: skip
        if evidence is not None:
            detected[group] += 1
            if not group.startswith("screenshot"):
                print(f"  false positive: {group} {precheck.measure(image)}", flush=True)

    for _name, shot in shots:
        for kind in ("png", "client85", "client50"):
            evaluate(f"screenshot:{kind}", encode(shot, kind))
    print("photographing screens …", flush=True)
    backgrounds = [image for _source, image in source_images(PHOTO_DIRS) if min(image.size) >= 300]
    for _name, shot in shots:
        surroundings = rng.choice(backgrounds) if backgrounds else None
        photo = photo_of_screen(shot, rng, surroundings)
        evaluate("screen-photo:screen-size-png", encode(photo, "png"))
        evaluate("screen-photo:client", encode(photo, "client85"))
    print("other non-screenshots …", flush=True)
    for group, data in negatives(rng):
        evaluate(group, data)

    print(f"\n{'group':34} {'images':>7} {'called screenshot':>18} {'rate':>7}")
    for group in sorted(totals):
        rate = detected[group] / totals[group]
        print(f"{group:34} {totals[group]:7d} {detected[group]:18d} {rate:7.1%}")
    true_positive = sum(detected[g] for g in totals if g.startswith("screenshot"))
    positives = sum(totals[g] for g in totals if g.startswith("screenshot"))
    false_positive = sum(detected[g] for g in totals if not g.startswith("screenshot"))
    negative = sum(totals[g] for g in totals if not g.startswith("screenshot"))
    precision = true_positive / (true_positive + false_positive) if true_positive else 0.0
    # Wilson 95 % upper bound of the false-positive rate: zero errors in n is not zero risk.
    z = 1.96
    rate = false_positive / negative
    bound = (
        rate
        + z * z / (2 * negative)
        + z * math.sqrt(rate * (1 - rate) / negative + z * z / (4 * negative**2))
    ) / (1 + z * z / negative)
    timings.sort()
    print(
        f"\nscreenshots {positives}, non-screenshots {negative}\n"
        f"precision {precision:.2%} (TP {true_positive}, FP {false_positive})\n"
        f"recall {true_positive / positives:.2%}\n"
        f"false-positive rate {rate:.2%} (95 % upper bound {bound:.2%})\n"
        f"time per image: median {timings[len(timings) // 2]:.1f} ms, "
        f"p95 {timings[int(len(timings) * 0.95)]:.1f} ms"
    )


if __name__ == "__main__":
    main()
