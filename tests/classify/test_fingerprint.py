"""Perceptual fingerprints: stable across what phones and chat apps do to a photo, distinct
for different pictures, absent for pictures with too little structure."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.fixtures.images import make_image
from tests.fixtures.photos import photo
from xintu.images.fingerprint import Fingerprint, fingerprint

PHOTOS = [
    "pets/chelsea.jpg",
    "foods/coffee.jpg",
    "travel_scenery/china.jpg",
    "single_person/astronaut.jpg",
    "idcard/idcard_front_1.jpg",
]


def print_of(data: bytes) -> Fingerprint:
    value = fingerprint(Image.open(io.BytesIO(data)))
    assert value is not None
    return value


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 80D"
    return exif.tobytes()


@pytest.mark.parametrize("name", PHOTOS)
def test_fingerprint_is_stable_across_recompression_resizing_webp_and_exif_strip(
    name: str,
) -> None:
    original = print_of(photo(name, quality=95, exif=camera_exif()))
    copies = [photo(name, quality=q) for q in (60, 70, 80, 95)]
    copies += [photo(name, quality=80, long_side=side) for side in (720, 1024, 1440, 2048)]
    copies += [photo(name, quality=75, image_format="WEBP")]
    copies += [photo(name, quality=90)]  # EXIF stripped
    for copy in copies:
        assert original.matches(print_of(copy)), original.distance(print_of(copy))


def test_fingerprint_follows_the_exif_orientation() -> None:
    """A phone's original (pixels sideways, EXIF says rotate) and the copy a chat app sends
    (rotated pixels, no EXIF) are one picture."""
    upright = Image.open(io.BytesIO(photo("travel_scenery/china.jpg")))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    sideways = io.BytesIO()
    upright.rotate(90, expand=True).save(sideways, "JPEG", quality=90, exif=exif.tobytes())
    assert print_of(sideways.getvalue()).matches(print_of(photo("travel_scenery/china.jpg")))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("idcard/idcard_front_1.jpg", "idcard/idcard_front_2.jpg"),  # two ID cards
        ("idcard/passport_1.jpg", "idcard/identity_card_english.jpg"),
        ("screenshot/phone_settings_750x1334.png", "screenshot/phone_settings_dark_750x1334.png"),
        ("screenshot/phone_chat_1080x2340.png", "screenshot/phone_chat_824x1830.png"),
        ("pets/chelsea.jpg", "pets/chelsea_crop.jpg"),
        ("travel_scenery/china.jpg", "travel_scenery/china_left.jpg"),
        ("social_activities/group_3_plain_1.jpg", "social_activities/group_4_plain_2.jpg"),
    ],
)
def test_distinct_similar_pictures_do_not_match(first: str, second: str) -> None:
    assert not print_of(photo(first)).matches(print_of(photo(second)))


def test_burst_shots_do_not_match() -> None:
    """The camera moved a little between shots: 8 % shifts are different pictures."""
    image = Image.open(io.BytesIO(photo("travel_scenery/china.jpg")))
    width, height = image.size
    crop_w, crop_h = int(width * 0.92), int(height * 0.92)
    left = image.crop((0, 0, crop_w, crop_h))
    right = image.crop((width - crop_w, height - crop_h, width, height))
    prints = [fingerprint(shot) for shot in (left, right)]
    assert prints[0] is not None
    assert prints[1] is not None
    assert not prints[0].matches(prints[1])


def test_pictures_with_little_structure_have_no_fingerprint() -> None:
    assert fingerprint(Image.open(io.BytesIO(make_image(seed=1, size=(640, 480))))) is None
    assert fingerprint(Image.new("RGB", (800, 600), (200, 30, 30))) is None


def test_bands_split_the_hash() -> None:
    value = Fingerprint(phash=0x0123_4567_89AB_CDEF, thumb=bytes(48))
    assert value.bands == (0xCDEF, 0x89AB, 0x4567, 0x0123)
