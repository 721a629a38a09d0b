"""``mediapipe.tasks.python.vision`` (``mp.tasks.vision``): the image segmenter and its types."""
from . import core, image_segmenter
from .core.image_processing_options import ImageProcessingOptions
from .core.vision_task_running_mode import VisionTaskRunningMode as RunningMode
from .image_segmenter import ImageSegmenter, ImageSegmenterOptions, ImageSegmenterResult

__all__ = ["ImageProcessingOptions", "ImageSegmenter", "ImageSegmenterOptions", "ImageSegmenterResult",
           "RunningMode", "core", "image_segmenter"]
