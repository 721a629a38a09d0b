"""Image -> model input tensor, reproducing MediaPipe Tasks' CPU preprocessing bit for bit.

MediaPipe Tasks (0.10.21) has two image-to-tensor paths, chosen by the model's input channels:

* 3 channels: ``ImageToTensorCalculator`` with its OpenCV converter
  (``mediapipe/calculators/tensor/image_to_tensor_converter_opencv.cc``). The region of interest
  is the whole image, rotated by ``-rotation_degrees`` (``GetRoi`` in ``image_to_tensor_utils.cc``;
  for 90/270 the Python task swaps the normalised width and height first,
  ``vision/core/base_vision_task_api.py``). Its four ``cv::boxPoints`` corners are mapped onto the
  tensor's corners ``(0, h), (0, 0), (w, 0), (w, h)`` by ``cv::getPerspectiveTransform`` and sampled
  with ``cv::warpPerspective(INTER_LINEAR, BORDER_REPLICATE)``. So tensor pixel ``x`` samples the
  image at ``x * W / w``: corner-aligned, not half-pixel. The uint8 result becomes float through
  ``convertTo(scale, offset)``. No aspect-ratio padding (``keep_aspect_ratio`` is false).
* 4 channels (the hair model): ``ImageTransformationCalculator`` + ``TensorConverterCalculator``
  (``image_segmenter_graph.cc``, ``ConvertImageToTensors``): a plain ``cv::resize`` stretch,
  ``INTER_AREA`` when both sides shrink, else ``INTER_LINEAR`` (``image_transformation_calculator.cc``,
  ``RenderCpu``). MediaPipe does not rotate on this path at all; we rotate (see below).

OpenCV 5 samples at exact float coordinates where 4.x, which MediaPipe links, rounds them to
1/32 pixel, and its ``boxPoints``/``getPerspectiveTransform`` differ in the last bits: on
non-integer scales that moved 7% of tensor values by 1-2 levels. So the whole chain is
re-implemented here as OpenCV 4.x computes it (same matrix bits, same coordinate rounding, same
integer weights) and no longer depends on the installed OpenCV.

Rotation: the tensor shows the image turned clockwise by ``rotation_degrees``, as in MediaPipe;
``segtool.postprocess`` turns the masks back.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .errors import UsageError

_F32 = np.float32
_INTER_BITS = 5  # OpenCV's warp quantises source coordinates to 1/32 pixel
_INTER_TAB = 1 << _INTER_BITS
BORDERS = ("replicate", "zero")


def image_to_tensor(image: np.ndarray, size: tuple[int, int], *, mean: float, std: float,
                    rotation_degrees: int = 0, input_channels: int = 3, border: str = "replicate") -> np.ndarray:
    """Return float32 ``(height, width, 3)``: the resampled pixels as ``(pixel - mean) / std``.

    ``image`` is RGB uint8 ``(H, W, 3)``; ``size`` is the model input's ``(height, width)``.
    ``input_channels`` is the model's: 4 selects MediaPipe's resize path for 4-channel models
    (hair); the caller appends the fourth channel. Output is identical to MediaPipe's tensor.
    ``border`` is how samples past the image's edge read: ``replicate`` (MediaPipe Tasks) or
    ``zero`` (black, the legacy ``mp.solutions`` graphs' ``BORDER_ZERO``).
    """
    pixels = resample_to_model(image, size, rotation_degrees=rotation_degrees, input_channels=input_channels,
                               border=border)
    # A float32 lookup table through OpenCV: the same values as indexing it, 5x faster.
    return cv2.LUT(pixels, value_table(float(mean), float(std)))


def resample_to_model(image: np.ndarray, size: tuple[int, int], *, rotation_degrees: int = 0,
                      input_channels: int = 3, border: str = "replicate") -> np.ndarray:
    """The first half of ``image_to_tensor``: uint8 ``(height, width, 3)`` at the model's size.

    The device graph (segtool.gpu_graph) takes these pixels and does the value table itself:
    a quarter of the float tensor's bytes to move, and the same tensor in the end.
    """
    image = _check_image(image)
    _check_rotation(rotation_degrees)
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, not {border!r}")
    height, width = (int(v) for v in size)
    if input_channels == 4:
        return _stretch(image, height, width, rotation_degrees)
    return _warp(image, height, width, rotation_degrees, border)


ACCEPTED_IMAGES = ("uint8 or uint16 (H, W) or (H, W, 1) gray, (H, W, 3) RGB or (H, W, 4) RGBA; "
                   "float32 or float64 of those shapes holding 0..1")


def validate_image(image) -> np.ndarray:
    """``image`` (an array, or anything np.asarray takes, such as a PIL image) as the array the
    segmenter reads, or a UsageError (a ValueError) that says what is accepted: ACCEPTED_IMAGES,
    as MediaPipe's mp.Image formats (GRAY8, SRGB, SRGBA, GRAY16, SRGB48, SRGBA64, VEC32F1).

    Other integer types are taken when every value is 0..255 (np.array([[...]]) is int64). A bool
    array is a mask, not a picture; two channels (gray + alpha, or a VEC32F2 field) are ambiguous;
    floats over 1 are almost always 0..255 values, which would read as white: all refused.
    Non-contiguous and read-only arrays are fine: the segmenter never writes to its input.
    """
    try:
        array = np.asarray(image)
    except Exception as exc:  # whatever np.asarray makes of odd objects
        raise UsageError(f"not an image ({type(image).__name__}); accepted: {ACCEPTED_IMAGES}") from exc
    _check_layout(array)
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize >= 4:
        return _check_unit_range(array)
    if np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
        low, high = int(array.min()), int(array.max())
        if 0 <= low and high <= 255:
            return array
        raise UsageError(f"{array.dtype} image holds {low}..{high}: integer images hold 0..255 (uint8) "
                         f"or 0..65535 (uint16); accepted: {ACCEPTED_IMAGES}")
    raise UsageError(f"{array.dtype} is not an image type; accepted: {ACCEPTED_IMAGES}")


def _check_layout(array: np.ndarray) -> None:
    channels = array.shape[2] if array.ndim == 3 else 1
    if array.ndim == 4 and array.shape[0] == 1:
        raise UsageError(f"shape {array.shape} is a batch of one: pass image[0] (or use segment_batch)")
    if array.ndim not in (2, 3) or channels not in (1, 3, 4) or array.size == 0:
        raise UsageError(f"shape {array.shape} is not an image: accepted: {ACCEPTED_IMAGES}")


def _check_unit_range(array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise UsageError(f"{array.dtype} image holds NaN or infinity; accepted: {ACCEPTED_IMAGES}")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        hint = " (0..255 values: divide by 255, or pass uint8)" if high <= 255.0 and low >= 0.0 else ""
        raise UsageError(f"{array.dtype} image holds {low:g}..{high:g}, outside 0..1{hint}; "
                         f"accepted: {ACCEPTED_IMAGES}")
    return array


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def _check_rotation(rotation_degrees: int) -> None:
    if rotation_degrees % 90:
        raise ValueError(f"rotation_degrees must be a multiple of 90, not {rotation_degrees}")


@lru_cache(maxsize=16)
def value_table(mean: float, std: float) -> np.ndarray:
    """float32 value of each uint8 level, as MediaPipe computes it.

    The metadata's mean/std become a float range (image_preprocessing_graph.cc), the range a
    scale and offset (GetValueRangeTransformation), applied by OpenCV's convertTo, whose AVX2
    kernel rounds ``p * scale + offset`` once (an FMA): computing it in float64 and rounding to
    float32 reproduces that.
    """
    lo = _F32(_F32(0.0 - _F32(mean)) / _F32(std))
    hi = _F32(_F32(255.0 - _F32(mean)) / _F32(std))
    scale = _F32((hi - lo) / _F32(255.0))
    table = (np.arange(256, dtype=np.float64) * float(scale) + float(lo)).astype(_F32)
    table.flags.writeable = False
    return table


def _stretch(image: np.ndarray, height: int, width: int, rotation_degrees: int) -> np.ndarray:
    """MediaPipe's 4-channel path: cv::resize, INTER_AREA only when both sides shrink."""
    image = np.rot90(image, -(rotation_degrees // 90) % 4)
    shrink = image.shape[0] > height and image.shape[1] > width
    return cv2.resize(np.ascontiguousarray(image), (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _warp(image: np.ndarray, height: int, width: int, rotation_degrees: int, border: str = "replicate"
          ) -> np.ndarray:
    """warpPerspective(INTER_LINEAR, BORDER_REPLICATE or BORDER_CONSTANT 0) of OpenCV 4.x for 8-bit images.

    OpenCV 4.x's warp is a remap with fixed-point maps (integer tap, 1/32-pixel fraction), and
    cv2.remap given such maps still computes exactly that in every OpenCV, 15x faster than the
    numpy gather below, which remains for coordinates past int16 (images over 32767 pixels).
    """
    maps = _remap_plan(image.shape[0], image.shape[1], height, width, rotation_degrees)
    if maps is not None:
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=mode, borderValue=0)
    taps, weights = _sampling_plan(image.shape[0], image.shape[1], height, width, rotation_degrees, border)
    # The zero border's taps point one past the last pixel, at a black one.
    flat = np.concatenate([image.reshape(-1, 3), np.zeros((1, 3), np.uint8)]) if border == "zero" \
        else image.reshape(-1, 3)
    acc = flat[taps[0]] * weights[0]
    for tap, weight in zip(taps[1:], weights[1:]):
        acc += flat[tap] * weight
    # Weights sum to 32*32; OpenCV scales them to 2**15 and rounds half up, which is this.
    return ((acc + 512) >> 10).astype(np.uint8).reshape(height, width, 3)


@lru_cache(maxsize=8)
def _remap_plan(src_h: int, src_w: int, height: int, width: int, rotation_degrees: int):
    """cv2.remap's fixed-point maps of the warp: int16 (x, y) taps and 1/32-pixel fractions.

    None when a tap does not fit int16. Cached: video frames of one size reuse it.
    """
    inverse = _roi_inverse_matrix(src_w, src_h, height, width, rotation_degrees)
    fx, fy = _fixed_point_coords(inverse, height, width)
    x0, y0 = fx >> _INTER_BITS, fy >> _INTER_BITS
    short = np.iinfo(np.int16)
    if min(x0.min(), y0.min()) < short.min or max(x0.max(), y0.max()) > short.max:
        return None
    taps = np.stack([x0, y0], axis=-1).astype(np.int16)
    fractions = ((fy & (_INTER_TAB - 1)) * _INTER_TAB + (fx & (_INTER_TAB - 1))).astype(np.uint16)
    for array in (taps, fractions):
        array.flags.writeable = False
    return taps, fractions


@lru_cache(maxsize=8)
def _sampling_plan(src_h: int, src_w: int, height: int, width: int, rotation_degrees: int,
                   border: str = "replicate"):
    """Flat indices of the 4 bilinear taps and their integer weights, for every tensor pixel.

    Cached: video frames of one size reuse it.
    """
    inverse = _roi_inverse_matrix(src_w, src_h, height, width, rotation_degrees)
    fx, fy = _fixed_point_coords(inverse, height, width)
    x0, y0 = fx >> _INTER_BITS, fy >> _INTER_BITS
    ax, ay = fx & (_INTER_TAB - 1), fy & (_INTER_TAB - 1)
    cols = [np.clip(x0, 0, src_w - 1), np.clip(x0 + 1, 0, src_w - 1)]  # BORDER_REPLICATE
    rows = [np.clip(y0, 0, src_h - 1), np.clip(y0 + 1, 0, src_h - 1)]
    wx, wy = [_INTER_TAB - ax, ax], [_INTER_TAB - ay, ay]
    taps = tuple((rows[i] * src_w + cols[j]).ravel() for i in (0, 1) for j in (0, 1))
    if border == "zero":  # taps outside the image read the black pixel at index src_h * src_w
        x, y = [x0, x0 + 1], [y0, y0 + 1]
        outside = [((y[i] < 0) | (y[i] >= src_h) | (x[j] < 0) | (x[j] >= src_w)).ravel()
                   for i in (0, 1) for j in (0, 1)]
        taps = tuple(np.where(out, src_h * src_w, tap) for tap, out in zip(taps, outside))
    weights = tuple((wy[i] * wx[j]).astype(np.int32).reshape(-1, 1) for i in (0, 1) for j in (0, 1))
    return taps, weights


def _fixed_point_coords(m: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates in 1/32 pixel, in OpenCV 4.x WarpPerspectiveInvoker's float64 order.

    OpenCV walks the output in blocks; the block origin enters the sum separately from the
    offset inside the block, which changes the last bit, so the blocks are reproduced.
    """
    block_h = min(16, height)
    block_w = min(1024 // block_h, width)
    cols = np.arange(width)
    xb = (cols - cols % block_w).astype(np.float64)
    x1 = (cols % block_w).astype(np.float64)
    y = np.arange(height, dtype=np.float64)[:, None]
    m = m.ravel()
    w = m[6] * xb + m[7] * y + m[8] + m[6] * x1
    with np.errstate(divide="ignore"):
        w = np.where(w != 0, _INTER_TAB / w, 0.0)
    fx = ((m[0] * xb + m[1] * y + m[2]) + m[0] * x1) * w
    fy = ((m[3] * xb + m[4] * y + m[5]) + m[3] * x1) * w
    limit = float(2 ** 31 - 1)
    # saturate_cast<int>: round half to even, clamp to int range
    return (np.rint(np.clip(fx, -limit - 1, limit)).astype(np.int64),
            np.rint(np.clip(fy, -limit - 1, limit)).astype(np.int64))


# ---- the region of interest and its matrix, in MediaPipe's and OpenCV 4.x's float arithmetic ----

def _roi_inverse_matrix(src_w: int, src_h: int, height: int, width: int, rotation_degrees: int):
    """Tensor -> image matrix that MediaPipe's warpPerspective ends up using (3x3 float64)."""
    corners = _roi_corners(src_w, src_h, rotation_degrees)
    dst = [(0.0, float(height)), (0.0, 0.0), (float(width), 0.0), (float(width), float(height))]
    return _invert3(_perspective_transform(corners, dst))


def _roi_corners(src_w: int, src_h: int, rotation_degrees: int):
    """cv::boxPoints of MediaPipe's rotated ROI covering the whole image."""
    norm_w, norm_h = 1.0, 1.0
    if abs(rotation_degrees % 180) != 0:  # base_vision_task_api.py swaps them for 90/270
        norm_w, norm_h = src_h / src_w, src_w / src_h
    roi_w = _F32(norm_w) * _F32(src_w)  # NormalizedRect holds float32; GetRoi multiplies in float
    roi_h = _F32(norm_h) * _F32(src_h)
    radians = _F32(-rotation_degrees * math.pi / 180.0)
    degrees = _F32(float(radians * _F32(180.0)) / math.pi)  # `rotation * 180.f / M_PI`
    return _box_points(_F32(0.5) * _F32(src_w), _F32(0.5) * _F32(src_h), roi_w, roi_h, degrees)


def _box_points(cx, cy, w, h, degrees):
    """OpenCV 4.x RotatedRect::points in float32 (OpenCV 5 computes the last two differently)."""
    angle = float(degrees) * math.pi / 180.0
    b = _F32(_F32(math.cos(angle)) * _F32(0.5))
    a = _F32(_F32(math.sin(angle)) * _F32(0.5))
    p0 = (cx - a * h - b * w, cy + b * h - a * w)
    p1 = (cx + a * h - b * w, cy - b * h - a * w)
    p2 = (_F32(2) * cx - p0[0], _F32(2) * cy - p0[1])
    p3 = (_F32(2) * cx - p1[0], _F32(2) * cy - p1[1])
    return [p0, p1, p2, p3]


def _perspective_transform(src, dst):
    """cv::getPerspectiveTransform of OpenCV 4.x: an 8x8 system solved by its LU (DECOMP_LU)."""
    a = [[0.0] * 8 for _ in range(8)]
    b = [0.0] * 8
    for i, ((sx, sy), (dx, dy)) in enumerate(zip(src, dst)):
        dx, dy = _F32(dx), _F32(dy)
        a[i][0:3] = a[i + 4][3:6] = [float(sx), float(sy), 1.0]
        a[i][6], a[i][7] = float(-sx * dx), float(-sy * dx)  # float32 products, as in OpenCV
        a[i + 4][6], a[i + 4][7] = float(-sx * dy), float(-sy * dy)
        b[i], b[i + 4] = float(dx), float(dy)
    x = _lu_solve(a, b)
    return [[x[0], x[1], x[2]], [x[3], x[4], x[5]], [x[6], x[7], 1.0]]


def _lu_solve(a, b):
    """OpenCV 4.x LUImpl: partial pivoting, then back substitution dividing by the pivot."""
    n = len(a)
    for i in range(n):
        k = max(range(i, n), key=lambda r: (abs(a[r][i]), -r))  # first largest, as OpenCV
        if abs(a[k][i]) < 2.220446049250313e-14:
            raise ValueError("degenerate region of interest")
        a[i], a[k], b[i], b[k] = a[k], a[i], b[k], b[i]
        d = -1.0 / a[i][i]
        for j in range(i + 1, n):
            alpha = a[j][i] * d
            for c in range(i + 1, n):
                a[j][c] += alpha * a[i][c]
            b[j] += alpha * b[i]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for c in range(i + 1, n):
            s -= a[i][c] * b[c]
        b[i] = s / a[i][i]
    return b


def _invert3(s):
    """cv::invert (DECOMP_LU) of a 3x3 matrix: OpenCV's closed form."""
    det = (s[0][0] * (s[1][1] * s[2][2] - s[1][2] * s[2][1])
           - s[0][1] * (s[1][0] * s[2][2] - s[1][2] * s[2][0])
           + s[0][2] * (s[1][0] * s[2][1] - s[1][1] * s[2][0]))
    if det == 0:
        raise ValueError("degenerate region of interest")
    d = 1.0 / det
    return np.array([
        [(s[1][1] * s[2][2] - s[1][2] * s[2][1]) * d, (s[0][2] * s[2][1] - s[0][1] * s[2][2]) * d,
         (s[0][1] * s[1][2] - s[0][2] * s[1][1]) * d],
        [(s[1][2] * s[2][0] - s[1][0] * s[2][2]) * d, (s[0][0] * s[2][2] - s[0][2] * s[2][0]) * d,
         (s[0][2] * s[1][0] - s[0][0] * s[1][2]) * d],
        [(s[1][0] * s[2][1] - s[1][1] * s[2][0]) * d, (s[0][1] * s[2][0] - s[0][0] * s[2][1]) * d,
         (s[0][0] * s[1][1] - s[0][1] * s[1][0]) * d],
    ])
