"""The errors of the video endpoint (DESIGN §4.9)."""

from __future__ import annotations

from xintu.errors import AppError, UnsupportedMediaType


class VideoTooLarge(AppError):
    status_code = 413
    code = "video_too_large"
    detail = "The video is larger than XINTU_MAX_VIDEO_BYTES"


class VideoTooLong(AppError):
    status_code = 422
    code = "video_too_long"
    detail = "The video is longer than XINTU_MAX_VIDEO_SECONDS"


class InvalidVideo(AppError):
    status_code = 400
    code = "invalid_video"
    detail = "The video cannot be decoded"


class UnsupportedVideo(UnsupportedMediaType):
    detail = "Not a supported video type (MP4, MOV, WebM, 3GP)"


class MissingVideo(AppError):
    status_code = 422
    code = "missing_video"
    detail = "No video in the request: send multipart field 'video'"


class UploadIncomplete(AppError):
    status_code = 400
    code = "upload_incomplete"
    detail = "The client closed the connection before the upload was complete"
