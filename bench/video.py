"""How long keyframe extraction takes (xintu/video/frames.py), the blocking part of
``POST /classify/video`` that runs in a worker thread before any classifier is called.

Encodes phone-like H.264 MP4s with PyAV (a scene cut every ``--scene-s`` seconds, moving
noise so that every frame costs the decoder work, a keyframe every second as phones
write), then times ``extract_keyframes`` on each and prints frames found, time and the
ratio of video duration to extraction time.

    .venv/bin/python bench/video.py [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xintu.video.frames import extract_keyframes  # noqa: E402


def encode(path: Path, width: int, height: int, seconds: int, fps: int, scene_s: int) -> None:
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = fps
        base = np.zeros((height, width, 3), dtype=np.uint8)
        for index in range(seconds * fps):
            if index % (scene_s * fps) == 0:
                base[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
            pixels = base.copy()
            noise = rng.integers(0, 40, size=(height // 8, width // 8, 3), dtype=np.uint8)
            pixels[: height // 8, : width // 8] += noise
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scene-s", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'video':>18} {'MB':>6} {'frames':>6} {'median s':>9} {'video s / extraction s':>23}")
    with tempfile.TemporaryDirectory() as directory:
        for width, height in ((640, 360), (1280, 720), (1920, 1080)):
            path = Path(directory) / f"{height}p.mp4"
            encode(path, width, height, args.seconds, args.fps, args.scene_s)
            timings = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                keyframes = extract_keyframes(
                    path, max_seconds=600, max_frames=8, max_pixels=40_000_000
                )
                timings.append(time.perf_counter() - started)
            median = statistics.median(timings)
            size_mb = path.stat().st_size / 1e6
            label = f"{height}p {args.seconds}s {args.fps}fps"
            print(
                f"{label:>18} {size_mb:6.1f} {len(keyframes.frames):6d} {median:9.3f} "
                f"{args.seconds / median:23.0f}"
            )


if __name__ == "__main__":
    main()
