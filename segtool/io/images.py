"""Decoding still images to upright RGB uint8."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError

DEFAULT_MAX_PIXELS = 100_000_000


def read_image(path: Path, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the first frame of ``path`` as upright (EXIF-rotated) RGB uint8 (H, W, 3).

    Grayscale, palette, CMYK and 16-bit images become RGB as a viewer shows them; transparent
    pixels are laid over white (an opaque image reads exactly as MediaPipe reads it).
    """
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    try:
        with iio.imopen(path, "r", plugin="pillow") as image_file:
            _check_pixels(path, image_file.properties(index=0).shape, max_pixels)
            frame = image_file.read(index=0, rotate=True)
            mode = image_file._image.mode
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied") from exc
    except MemoryError as exc:
        raise InputError(f"{path}: too large to decode in memory") from exc
    except Exception as exc:  # decoders raise anything from OSError to SyntaxError on bad bytes
        raise InputError(f"{path}: not a readable image ({reason(exc)})") from exc
    return to_rgb8(frame, mode)


def _check_pixels(path: Path, shape: tuple, max_pixels: Optional[int]) -> None:
    height, width = shape[0], shape[1]
    if max_pixels and height * width > max_pixels:
        raise InputError(
            f"{path}: {width}x{height} is {height * width:,} pixels, over the limit of "
            f"{max_pixels:,} (raise it with --max-pixels)"
        )


def to_rgb8(frame: np.ndarray, mode: str = "") -> np.ndarray:
    """Any decoded frame (gray, gray+alpha, RGB, RGBA, CMYK; 8 or 16 bit) as RGB uint8."""
    if mode == "CMYK":
        return _cmyk_to_rgb(frame)
    frame = _to_uint8(frame)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    channels = frame.shape[2]
    if channels in (2, 4):
        frame = _over_white(frame[:, :, :-1], frame[:, :, -1])
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == bool:
        return frame.astype(np.uint8) * 255
    if np.issubdtype(frame.dtype, np.integer):
        bits = 16 if frame.max(initial=0) > 255 or frame.dtype.itemsize >= 2 else 8
        return (frame.astype(np.uint32) >> (bits - 8)).clip(0, 255).astype(np.uint8)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if alpha.min() == 255:
        return color
    a = alpha[:, :, None].astype(np.float32) / 255.0
    return (color * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def _cmyk_to_rgb(frame: np.ndarray) -> np.ndarray:
    # Pillow hands CMYK JPEGs over as stored; Adobe's inverted CMYK is the common case.
    cmyk = frame.astype(np.float32) / 255.0
    k = cmyk[:, :, 3:4]
    return np.ascontiguousarray(((1.0 - cmyk[:, :, :3]) * (1.0 - k) * 255.0 + 0.5).astype(np.uint8))


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


