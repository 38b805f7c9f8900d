"""Keyframes of a video with PyAV (FFmpeg inside its wheel): no web, no database.

Two passes over the file, both bounded:
1. **Scan**: demux every packet (timestamps prove the length, whatever the container
   declares) and decode keyframes only, at most ``_SCAN_KEYFRAMES`` of them spread over
   the duration. Encoders start a new keyframe at a cut, so the difference between
   consecutive keyframes' thumbnails finds the scene changes.
2. **Grab**: seek to each chosen time and decode up to it: half the frames spread evenly
   over the duration, the rest the strongest scene changes, at most ``max_frames``.
Each frame leaves as a JPEG, the way a client would upload a photo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from xintu.video.errors import InvalidVideo, VideoTooLong

# Keyframes decoded by the scan; phones write one every 1-2 s, so 240 cover a few minutes
# one by one and longer videos at an even stride.
_SCAN_KEYFRAMES = 240
# Mean absolute difference (0-1) of 16x16 thumbnails above which keyframes start a new scene.
SCENE_THRESHOLD = 0.12
_THUMB = 16
_MIN_GAP_S = 1.0
# Frames are sent to classifiers at most this large (the LLM sees no more detail).
_FRAME_MAX_SIDE = 1280
_JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class Keyframe:
    t: float  # seconds from the start of the video
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class Keyframes:
    duration_s: float
    frames: list[Keyframe]


@dataclass(frozen=True, slots=True)
class _Scanned:
    duration_s: float
    # (time, difference from the previous decoded keyframe) of the keyframes seen.
    changes: list[tuple[float, float]]


def extract_keyframes(
    path: Path, *, max_seconds: float, max_frames: int, max_pixels: int
) -> Keyframes:
    """The keyframes to classify. Blocking: run it in a worker thread.

    Raises ``VideoTooLong`` past ``max_seconds`` and ``InvalidVideo`` for anything FFmpeg
    cannot decode, a video without a video stream, frames over ``max_pixels``, or no frame.
    """
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise InvalidVideo("The file has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise InvalidVideo("The video stream's codec is unknown")
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                raise InvalidVideo(f"Frames of {width}x{height} exceed the pixel limit")
            declared = _declared_duration(container, stream)
            if declared is not None and declared > max_seconds:
                raise VideoTooLong(
                    f"The video lasts {declared:.0f} s; the limit is {max_seconds:g} s"
                )
            stream.thread_type = "AUTO"
            start = _start_time(stream)
            scanned = _scan(container, stream, start, declared, max_seconds)
            duration = max(declared or 0.0, scanned.duration_s)
            times = choose_times(duration, scanned.changes, max_frames)
            frames = _grab(container, stream, start, times)
    except (InvalidVideo, VideoTooLong):
        raise
    except Exception as exc:  # noqa: BLE001 - damaged input breaks PyAV in many ways (fuzzed)
        raise InvalidVideo(f"The video cannot be decoded: {type(exc).__name__}") from exc
    if not frames:
        raise InvalidVideo("No frame of the video could be decoded")
    return Keyframes(duration_s=round(duration, 3), frames=frames)


def _declared_duration(container: av.container.InputContainer, stream: VideoStream) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def _start_time(stream: VideoStream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _scan(
    container: av.container.InputContainer,
    stream: VideoStream,
    start: float,
    declared: float | None,
    max_seconds: float,
) -> _Scanned:
    stream.codec_context.skip_frame = "NONKEY"
    stride = (declared or 0.0) / _SCAN_KEYFRAMES
    next_decode = 0.0
    last_packet_t = 0.0
    changes: list[tuple[float, float]] = []
    previous: np.ndarray | None = None
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            t = float(packet.pts * packet.time_base) - start
            if t > max_seconds:
                raise VideoTooLong(f"The video is longer than the limit of {max_seconds:g} s")
            last_packet_t = max(last_packet_t, t)
            # Only keyframes are fed to the decoder, and only at the stride.
            if not packet.is_keyframe or t < next_decode or len(changes) >= _SCAN_KEYFRAMES:
                continue
            next_decode = t + stride
        try:
            decoded = packet.decode()  # the final empty packet flushes the decoder
        except av.FFmpegError:
            continue  # a damaged packet: the grab pass decides whether anything is left
        for frame in decoded:
            thumb = frame.to_ndarray(width=_THUMB, height=_THUMB, format="rgb24").astype(np.int16)
            change = 1.0 if previous is None else float(np.abs(thumb - previous).mean()) / 255
            previous = thumb
            changes.append((_frame_time(frame, start), change))
    stream.codec_context.skip_frame = "DEFAULT"
    return _Scanned(duration_s=last_packet_t, changes=changes)


def choose_times(
    duration: float, changes: list[tuple[float, float]], max_frames: int
) -> list[float]:
    """Half of ``max_frames`` spread evenly, the rest the strongest scene changes not
    too close to a time already chosen; sorted."""
    spread = max(1, max_frames // 2)
    times = [duration * (index + 0.5) / spread for index in range(spread)]
    # A cut this close to a chosen frame (at most 1 s) shows what that frame shows.
    gap = min(duration / (2 * max_frames), _MIN_GAP_S)
    cuts = sorted(
        (item for item in changes if item[1] >= SCENE_THRESHOLD and item[0] > 0),
        key=lambda item: -item[1],
    )
    for t, _ in cuts:
        if len(times) >= max_frames:
            break
        if all(abs(t - chosen) > gap for chosen in times):
            times.append(t)
    return sorted(times)


def _grab(
    container: av.container.InputContainer, stream: VideoStream, start: float, times: list[float]
) -> list[Keyframe]:
    frames: list[Keyframe] = []
    assert stream.time_base is not None
    for target in times:
        container.seek(
            int((target + start) / stream.time_base), stream=stream, backward=True, any_frame=False
        )
        frame = _decode_until(container, stream, start, target)
        if frame is None:
            continue
        t = max(0.0, _frame_time(frame, start))
        if frames and abs(frames[-1].t - t) < 1e-3:
            continue  # two targets in one frame's span
        frames.append(Keyframe(t=round(t, 3), jpeg=_jpeg(frame)))
    return frames


def _decode_until(
    container: av.container.InputContainer, stream: VideoStream, start: float, target: float
) -> VideoFrame | None:
    """The first frame at or after ``target`` (the last one when the video ends before)."""
    rate = stream.average_rate or Fraction(25)
    half_frame = 0.5 / float(rate)
    last: VideoFrame | None = None
    try:
        for frame in container.decode(stream):
            last = frame
            if _frame_time(frame, start) >= target - half_frame:
                return frame
    except av.FFmpegError:
        pass  # truncated or damaged past here: keep what was decoded
    return last


def _frame_time(frame: VideoFrame, start: float) -> float:
    t = frame.time
    return (float(t) - start) if t is not None else 0.0


def _jpeg(frame: VideoFrame) -> bytes:
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    if frame.rotation:
        image = image.rotate(frame.rotation, expand=True)
    image.thumbnail((_FRAME_MAX_SIDE, _FRAME_MAX_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()
