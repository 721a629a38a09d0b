"""The one IO boundary: only this package imports imageio, Pillow, OpenEXR or ffmpeg.

paths    which files to process (arguments, folders, stdin)
images   decode still images to upright RGB uint8
writers  encode masks and pictures, always atomically
video    frame sources and video writers (ffmpeg processes)
"""
from .images import (DEFAULT_MAX_PIXELS, ImageFacts, read_image, read_image_facts, reason,
                     to_rgb8)
from .paths import IMAGE_EXTENSIONS, InputItem, expand_inputs
from .writers import (atomic_output, category_palette, composite_extension, ensure_dir, existing,
                      read_exr, write_category_png, write_exr, write_image, write_npy)

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageFacts", "InputItem", "atomic_output", "category_palette",
    "composite_extension", "ensure_dir", "existing", "expand_inputs", "read_exr", "read_image",
    "read_image_facts", "reason", "to_rgb8", "write_category_png", "write_exr",
    "write_image", "write_npy",
]
from .video import (VIDEO_EXTENSIONS, PreviewWindow, VideoInfo, VideoReader, VideoWriter, is_video_path,
                    open_live, open_video)

__all__ += ["VIDEO_EXTENSIONS", "PreviewWindow", "VideoInfo", "VideoReader", "VideoWriter", "is_video_path",
            "open_live", "open_video"]
