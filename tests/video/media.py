"""Videos made by the tests with PyAV: solid colour scenes the fake LLM tells apart."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from tests.fixtures.fake_llm import COLOURS
from xintu.categories import Category

# container format → (codec, extension)
FORMATS = {
    "mp4": ("libx264", "mp4"),
    "mov": ("libx264", "mov"),
    "3gp": ("libx264", "3gp"),
    "webm": ("libvpx", "webm"),
}


def make_video(
    scenes: list[tuple[Category, float]],
    *,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    container: str = "mp4",
) -> bytes:
    """A video of solid-colour scenes: (category whose colour fills the frame, seconds)."""
    codec, _ = FORMATS[container]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        index = 0
        for category, seconds in scenes:
            pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            pixels[:, :] = COLOURS[category]
            # A little texture so that frames are not all identical to the encoder.
            pixels[size[1] // 2 :, : size[0] // 2] //= 2
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = index
                index += 1
                for packet in stream.encode(frame):
                    output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()
