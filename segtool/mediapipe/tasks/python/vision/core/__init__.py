"""``mediapipe.tasks.python.vision.core``: running mode, image processing options, and ``image``
(where newer MediaPipe releases keep ``Image`` and ``ImageFormat``)."""
from . import image, image_processing_options, vision_task_running_mode

__all__ = ["image", "image_processing_options", "vision_task_running_mode"]
