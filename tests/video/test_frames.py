"""Keyframe extraction on damaged input: a clear refusal or frames, never a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.video.media import make_video
from xintu.categories import Category
from xintu.video.errors import InvalidVideo, VideoTooLong
from xintu.video.frames import extract_keyframes


def _damaged(video: bytes, rng: random.Random, kind: int) -> bytes:
    data = bytearray(video)
    if kind == 0:  # flipped bytes
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # cut short
        data = data[: rng.randrange(16, len(data))]
    else:  # a run of garbage
        start, length = rng.randrange(len(data)), rng.randint(1, 500)
        data[start : start + length] = rng.randbytes(length)
    return bytes(data)


@pytest.mark.parametrize("container", ["mp4", "mov", "webm"])
def test_damaged_videos_are_refused_or_decoded_never_crash(container: str, tmp_path: Path) -> None:
    video = make_video([(Category.pets, 3.0), (Category.foods, 2.0)], container=container)
    rng = random.Random(container)
    path = tmp_path / "video"
    outcomes: set[str] = set()
    for attempt in range(150):
        path.write_bytes(_damaged(video, rng, attempt % 3))
        try:
            keyframes = extract_keyframes(
                path, max_seconds=600, max_frames=8, max_pixels=40_000_000
            )
        except (InvalidVideo, VideoTooLong) as error:
            outcomes.add(error.code)
        else:
            assert keyframes.frames
            assert all(frame.jpeg.startswith(b"\xff\xd8\xff") for frame in keyframes.frames)
            outcomes.add("decoded")
    assert "invalid_video" in outcomes
    assert "decoded" in outcomes
