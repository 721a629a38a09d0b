"""The running mode of a vision task, fixed when the task is created."""
from __future__ import annotations

import enum


class VisionTaskRunningMode(enum.Enum):
    """IMAGE: single images (``segment``); VIDEO: decoded frames with timestamps
    (``segment_for_video``); LIVE_STREAM: frames delivered to a callback (``segment_async``)."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    LIVE_STREAM = "LIVE_STREAM"
