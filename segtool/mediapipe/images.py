"""``mp.Image`` and ``mp.ImageFormat``: MediaPipe's image container over a read-only numpy array.

As in MediaPipe 0.10.21: the constructor copies ``data``; ``numpy_view()`` is a read-only view,
(H, W) for one channel and (H, W, C) otherwise; uint8 data takes GRAY8, SRGB or SRGBA, uint16
GRAY16, SRGB48 or SRGBA64, float32 VEC32F1, VEC32F2 or VEC32F4, and other pairings raise the
errors MediaPipe raises. Where MediaPipe crashes the process (uint16 formats) or silently
misreads (SRGB given four channels, non-contiguous arrays), this checks and works.
"""
from __future__ import annotations

import enum
import os
from typing import Any

import numpy as np


class ImageFormat(enum.IntEnum):
    """Pixel formats, with MediaPipe's numbers (``mediapipe::ImageFormat::Format``)."""

    UNKNOWN = 0
    SRGB = 1
    SRGBA = 2
    GRAY8 = 3
    GRAY16 = 4
    SRGB48 = 7
    SRGBA64 = 8
    VEC32F1 = 9
    SBGRA = 11
    VEC32F2 = 12
    VEC32F4 = 13

    def __str__(self) -> str:  # "ImageFormat.SRGB" as MediaPipe prints it, not IntEnum's "1"
        return f"ImageFormat.{self.name}"


# format -> (numpy dtype, channels)
_LAYOUT = {
    ImageFormat.GRAY8: (np.uint8, 1), ImageFormat.SRGB: (np.uint8, 3), ImageFormat.SRGBA: (np.uint8, 4),
    ImageFormat.SBGRA: (np.uint8, 4),
    ImageFormat.GRAY16: (np.uint16, 1), ImageFormat.SRGB48: (np.uint16, 3), ImageFormat.SRGBA64: (np.uint16, 4),
    ImageFormat.VEC32F1: (np.float32, 1), ImageFormat.VEC32F2: (np.float32, 2), ImageFormat.VEC32F4: (np.float32, 4),
}
# MediaPipe's own words for a format that does not suit the data's type
_WRONG_FORMAT = {
    np.dtype(np.uint8): "uint8 image data should be one of the GRAY8, SRGB, and SRGBA MediaPipe image formats.",
    np.dtype(np.uint16): "uint16 image data should be one of the GRAY16, SRGB48, and SRGBA64 MediaPipe image formats.",
    np.dtype(np.float32): "float image data should be either VEC32F1, VEC32F2, or VEC32F4 MediaPipe image formats.",
}
_BY_CHANNELS = {1: ImageFormat.GRAY8, 3: ImageFormat.SRGB, 4: ImageFormat.SRGBA}


class Image:
    """An image or video frame: ``Image(image_format, data)`` copies ``data`` (a numpy array).

    ``numpy_view()`` returns the pixels read-only; copy it to modify. Results of the segmenter are
    Images too: confidence masks VEC32F1, the category mask GRAY8.
    """

    def __init__(self, image_format: ImageFormat, data: np.ndarray):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"Image data must be a numpy array, not {type(data).__name__}")
        image_format = _format(image_format)
        if data.dtype not in _WRONG_FORMAT:
            raise TypeError(f"Image data must be uint8, uint16 or float32, not {data.dtype}")
        dtype, channels = _LAYOUT.get(image_format, (None, None))
        if dtype is None or np.dtype(dtype) != data.dtype:
            raise RuntimeError(_WRONG_FORMAT[data.dtype])
        self._init(image_format, _shaped(data, channels, image_format).copy())

    def _init(self, image_format: ImageFormat, pixels: np.ndarray) -> None:
        pixels.flags.writeable = False
        self._format = image_format
        self._pixels = pixels  # (H, W, C), C-contiguous, never written again

    @classmethod
    def wrap(cls, image_format: ImageFormat, pixels: np.ndarray) -> "Image":
        """An Image over ``pixels`` without a copy (segtool's own results); ``pixels`` must not change."""
        image = cls.__new__(cls)
        dtype, channels = _LAYOUT[image_format]
        image._init(image_format, np.ascontiguousarray(_shaped(np.asarray(pixels, dtype), channels, image_format)))
        return image

    @classmethod
    def create_from_file(cls, file_name: str) -> "Image":
        """Decode an image file as it is stored: GRAY8, SRGB or SRGBA (alpha kept), 8 bits per
        channel, EXIF orientation not applied (as MediaPipe). RuntimeError if it cannot be read.

        JPEG and GIF files decode to MediaPipe's very pixels where ``libstb`` is installed (the
        ``mediapipe-compat`` extra): MediaPipe decodes with stb_image, whose JPEG pixels differ
        from libjpeg's by up to 3 levels on a few % of pixels (masks then agree ~99.98 %), and
        which gives GIFs an alpha channel (SRGBA).
        """
        from ..errors import InputError
        from ..io import read_image_as_stored

        pixels = _stb_decoded(os.fspath(file_name))
        try:
            if pixels is None:
                pixels = read_image_as_stored(os.fspath(file_name))
        except InputError as exc:
            raise RuntimeError(f"Image decoding failed: {exc}") from exc
        channels = pixels.shape[2] if pixels.ndim == 3 else 1
        return cls.wrap(_BY_CHANNELS[channels], pixels)

    def numpy_view(self) -> np.ndarray:
        """The pixels, read-only: (H, W) for one channel, (H, W, C) otherwise."""
        return self._pixels[:, :, 0] if self._pixels.shape[2] == 1 else self._pixels.view()

    @property
    def width(self) -> int:
        return int(self._pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self._pixels.shape[0])

    @property
    def channels(self) -> int:
        return int(self._pixels.shape[2])

    @property
    def step(self) -> int:
        """Bytes per row."""
        return int(self._pixels.strides[0])

    @property
    def image_format(self) -> ImageFormat:
        return self._format

    def is_contiguous(self) -> bool:
        return True

    def is_empty(self) -> bool:
        return self._pixels.size == 0

    def is_aligned(self, alignment_boundary: int) -> bool:
        """True when every row starts on a multiple of ``alignment_boundary`` bytes (1 or a power of 2)."""
        if alignment_boundary < 1 or alignment_boundary & (alignment_boundary - 1):
            raise ValueError(f"alignment_boundary must be 1 or a power of 2, not {alignment_boundary}")
        return self._pixels.ctypes.data % alignment_boundary == 0 and self.step % alignment_boundary == 0

    def uses_gpu(self) -> bool:
        return False

    def __getitem__(self, key: Any):
        """``image[row, col]`` for one channel, ``image[row, col, channel]`` otherwise, as MediaPipe."""
        key = key if isinstance(key, tuple) else (key,)
        wanted = 2 if self.channels == 1 else 3
        if len(key) != wanted:
            raise IndexError(f"Invalid index dimension: {len(key)}")
        return self.numpy_view()[key].item()

    def __repr__(self) -> str:
        return f"<segtool.mediapipe.Image {self._format.name} {self.width}x{self.height}>"


def _stb_decoded(path: str):
    """A local JPEG or GIF file decoded by stb_image (MediaPipe's decoder), or None to use
    segtool's own reader (the same pixels for the other formats): another format, libstb not
    installed, too many pixels, or bytes stb refuses (segtool's reader then gives its one-line
    error, or decodes what stb cannot)."""
    try:
        with open(path, "rb") as stream:
            if not stream.read(6).startswith((b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
                return None
        import libstb
    except (OSError, ImportError):
        return None
    from ..io import DEFAULT_MAX_PIXELS

    try:
        facts = libstb.iminfo(path)
        if facts.width * facts.height > DEFAULT_MAX_PIXELS:
            return None
        pixels = libstb.imread(path)
    except libstb.Error:
        return None
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def _format(value) -> ImageFormat:
    try:
        return ImageFormat(value)
    except ValueError:
        raise TypeError(f"image_format must be an ImageFormat, not {value!r}") from None


def _shaped(data: np.ndarray, channels: int, image_format: ImageFormat) -> np.ndarray:
    """``data`` as (H, W, C), or ValueError naming what the format needs."""
    if data.ndim == 2 and channels == 1:
        data = data[:, :, None]
    if data.ndim != 3 or data.shape[2] != channels:
        layout = "(H, W) or (H, W, 1)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"{image_format.name} needs {layout} data, not shape {data.shape}")
    return data


def as_rgb_array(image: Image) -> np.ndarray:
    """The pixels segtool's segmenter reads for ``image``, as MediaPipe reads them: the alpha
    channel is ignored (not laid over anything), BGRA turned to RGB, gray as gray."""
    if not isinstance(image, Image):
        raise ValueError(
            f"expected a segtool.mediapipe.Image, not {type(image).__name__}; wrap arrays with "
            "mp.Image(image_format=mp.ImageFormat.SRGB, data=array)"
        )
    pixels = image.numpy_view()
    if image.image_format is ImageFormat.SBGRA:
        return pixels[:, :, 2::-1]
    if image.image_format in (ImageFormat.SRGBA, ImageFormat.SRGBA64):
        return pixels[:, :, :3]
    if image.image_format in (ImageFormat.VEC32F2, ImageFormat.VEC32F4, ImageFormat.UNKNOWN):
        raise ValueError(f"{image.image_format.name} images cannot be segmented: use SRGB, SRGBA, GRAY8 or 16-bit RGB")
    return pixels
