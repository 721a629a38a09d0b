"""The one IO boundary: only this package imports imageio, Pillow, OpenEXR or ffmpeg.

paths    which files to process (arguments, folders, stdin)
images   decode still images to upright RGB uint8
writers  encode masks and pictures, always atomically
ledger   which files segtool wrote: only those may be replaced
storage  local paths or object-store URLs: listings, whole reads, whole uploads
video    frame sources and video writers (ffmpeg processes)
"""
from .images import (DEFAULT_MAX_PIXELS, ImageFacts, read_image, read_image_and_facts, read_image_as_stored,
                     to_rgb8)
from .ledger import LEDGER_NAME, file_identity, identities, may_replace, overwrite_problem, record_written
from .paths import InputItem, expand_inputs, image_extensions, inputs_from_manifest, is_output_name
from .storage import is_remote, location
from .writers import (atomic_output, category_palette, category_png_bytes, composite_extension, ensure_dir,
                      existing, image_bytes, npy_bytes, read_exr, write_category_png, write_category_preview,
                      write_exr, write_image, write_npy)

__all__ = [
    "DEFAULT_MAX_PIXELS", "ImageFacts", "InputItem", "LEDGER_NAME", "atomic_output", "category_palette",
    "category_png_bytes", "image_bytes", "npy_bytes",
    "composite_extension", "ensure_dir", "existing", "expand_inputs", "file_identity", "identities", "image_extensions", "inputs_from_manifest",
    "is_output_name", "is_remote", "location", "may_replace", "overwrite_problem", "read_exr", "read_image",
    "read_image_and_facts", "read_image_as_stored", "record_written", "to_rgb8", "write_category_png",
    "write_category_preview", "write_exr",
    "write_image", "write_npy",
]
_VIDEO_NAMES = ("VIDEO_EXTENSIONS", "PreviewWindow", "VideoInfo", "VideoReader", "VideoWriter", "is_video_path",
                "open_live", "open_video")
__all__ += list(_VIDEO_NAMES)


def __getattr__(name: str):
    # A still-image run never touches video: io.video (subprocess, ffmpeg's helpers, colour
    # tags) loads on the first use of one of its names instead of with the package.
    if name in _VIDEO_NAMES:
        from . import video
        return getattr(video, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
