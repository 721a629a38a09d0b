"""Network output -> masks at image size, as MediaPipe Tasks' CPU TensorsToSegmentationCalculator.

Source: ``mediapipe/tasks/cc/vision/image_segmenter/calculators/tensors_to_segmentation_calculator.cc``
(MediaPipe 0.10.21), which treats the two outputs differently:

* Confidence masks (``ProcessForConfidenceMaskCpu``): the activation is applied on the network's
  grid, then each channel is resized with ``cv::resize(INTER_LINEAR)``: half-pixel centres, no
  antialiasing. No resize when the sizes already match.
* Category mask (``ProcessForCategoryMaskCpu``): its own bilinear interpolation of the *raw*
  values, corner-aligned (``scale = (in - 1) / (out - 1)``), per output pixel; sigmoid is then
  applied if it is the activation (softmax is skipped: it keeps the argmax); then
  ``std::max_element``, so ties go to the lowest index.

Rotation is where we differ on purpose: MediaPipe resizes the mask of the rotated tensor straight
to the input's width x height without turning it back (for 90/270 on a non-square image it is
rotated *and* stretched). We turn the network output back first, so masks line up with the input
image. ``rotation_degrees=0`` gives MediaPipe's layout for any rotation.
"""
from __future__ import annotations

import sys
import threading
from functools import lru_cache
from typing import Optional, Sequence

import cv2
import numpy as np

from .errors import UsageError

_F32 = np.float32
ACTIVATIONS = ("none", "softmax", "sigmoid")
_CHUNK_VALUES = 1 << 21  # values per chunk where the category mask interpolates exactly


def postprocess(raw: np.ndarray, *, activation: str, image_size: tuple[int, int],
                rotation_degrees: int = 0, confidence: bool = True, category: bool = False):
    """Return ``(confidence_masks, category_mask)``; each is None unless asked for.

    ``raw`` is float32 ``(h, w, C)``: one image's network output. ``confidence_masks`` is float32
    ``(C, H, W)``; a one-channel model (a person probability p) gives two masks ``(1 - p, p)``.
    ``category_mask`` is uint8 ``(H, W)`` of category indices; for one channel, 1 (person) where
    p > 0.5, else 0. MediaPipe writes that mask the other way round, 0 for person and 255 for
    background: ours == (MediaPipe's == 0), MediaPipe's == 255 * (1 - ours).
    """
    raw = _oriented(raw, rotation_degrees)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    if activation == "softmax" and raw.shape[2] == 1:
        raise ValueError("softmax needs more than one channel")
    height, width = (int(v) for v in image_size)
    masks = _confidence_masks(raw, activation, height, width) if confidence else None
    labels = _category_mask(raw, activation, height, width) if category else None
    return masks, labels


def _oriented(raw: np.ndarray, rotation_degrees: int) -> np.ndarray:
    """Turn the output of a tensor rotated clockwise back to the image's orientation (a view)."""
    raw = np.asarray(raw, dtype=_F32)
    if raw.ndim != 3 or 0 in raw.shape:
        raise ValueError(f"expected one image's output (h, w, C), got shape {raw.shape}")
    if rotation_degrees % 90:
        raise ValueError(f"rotation_degrees must be a multiple of 90, not {rotation_degrees}")
    return np.rot90(raw, (rotation_degrees // 90) % 4)


# ---- confidence masks ---------------------------------------------------------------------

def _confidence_masks(raw: np.ndarray, activation: str, height: int, width: int) -> np.ndarray:
    planes = _activated_planes(raw, activation)
    if raw.shape[2] == 1:  # (1 - p, p): background, person
        out = _OUTPUTS.empty((2, height, width))
        _resize_into(planes[0], out[1])
        np.subtract(_F32(1), out[1], out=out[0])
        return out
    out = _OUTPUTS.empty((planes.shape[0], height, width))
    for plane, mask in zip(planes, out):  # one resize per channel straight into the output
        _resize_into(plane, mask)
    return out


class _Recycled:
    """Large float32 arrays handed out again once nothing outside this pool refers to them.

    A fresh array of DeepLab's 21 masks at 1080p (174 MB) is beyond what malloc keeps for reuse
    (glibc maps anything over 32 MiB anew): the kernel maps and zeroes its pages on every call,
    which cost more than the 21 resizes that fill them (about 30 of 65 ms). Reuse is safe because
    an array goes out again only when this pool holds the last reference: a result, any view of
    its masks (numpy views refer to the array that owns the memory) and any exported buffer each
    hold one. Free-threaded Pythons count references differently: no pool there.
    """

    SMALLEST = 32 << 20  # below this, malloc reuses freed memory by itself
    MOST = 512 << 20  # what the pool may hold between calls, at most

    def __init__(self, keep: int = 2):
        self._arrays: list[np.ndarray] = []
        self._keep = keep
        self._lock = threading.Lock()
        self._enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
        # References to an idle array, counted exactly as ``empty`` counts them: the list's, the loop's, the call's.
        for _, probe in enumerate([np.empty(0, _F32)]):
            self._idle_refs = sys.getrefcount(probe)

    def empty(self, shape: tuple) -> np.ndarray:
        if not self._enabled or int(np.prod(shape)) * 4 < self.SMALLEST:
            return np.empty(shape, _F32)
        with self._lock:
            for index, array in enumerate(self._arrays):
                if array.shape == shape and sys.getrefcount(array) <= self._idle_refs:
                    self._arrays.append(self._arrays.pop(index))  # most recently used last
                    return array
            array = np.empty(shape, _F32)
            kept = [*self._arrays, array][-self._keep:]
            while kept and sum(each.nbytes for each in kept) > self.MOST:
                kept.pop(0)  # a 4K frame's 21 masks (700 MB) are not worth holding between calls
            self._arrays = kept
            return array


_OUTPUTS = _Recycled()


def probabilities(raw: np.ndarray, activation: str) -> np.ndarray:
    """The network's own grid as probabilities, float32 (C, h, w), without resizing.

    The hair network's fourth input in video is the previous frame's hair channel of this.
    """
    return _activated_planes(raw, activation)


def argmax_first(masks: np.ndarray) -> np.ndarray:
    """``masks.argmax(axis=0)`` as uint8 (ties keep the lowest index), one vectorised pass per
    channel: numpy's argmax over the first axis of a (C, H, W) array walks it pixel by pixel
    (45 ms for two 1080p masks, not 1)."""
    best = masks[0].copy()
    index = np.zeros(best.shape, np.uint8)
    for channel in range(1, masks.shape[0]):
        higher = masks[channel] > best  # strictly: ties keep the first maximum
        np.copyto(best, masks[channel], where=higher)
        index[higher] = channel
    return index


def _activated_planes(raw: np.ndarray, activation: str) -> np.ndarray:
    """``_activate`` channel-first, (C, h, w) contiguous, with the very same float results.

    Softmax over a short last axis is numpy's slow case (13 ms for hair's 512x512x2); plane by
    plane it is 25x faster. The channel sum follows the order numpy's sum over that axis uses.
    """
    if activation != "softmax" or raw.shape[2] > _PAIRWISE_BLOCK:
        return _channels_first(_activate(raw, activation))
    planes = _channels_first(raw)
    planes -= planes.max(axis=0)
    np.exp(planes, out=planes)
    planes /= _numpy_order_sum(planes)
    return planes


def _channels_first(values: np.ndarray) -> np.ndarray:
    """(h, w, C) -> a new float32 (C, h, w) array: OpenCV's transpose of the (h*w, C) matrix,
    6x faster than numpy's strided copy (DeepLab's 257x257x21: 2 against 12 ms); the same values."""
    height, width, count = values.shape
    values = np.ascontiguousarray(values, dtype=_F32)
    if count == 1:
        return values.reshape(1, height, width).copy()
    return cv2.transpose(values.reshape(height * width, count)).reshape(count, height, width)


_PAIRWISE_BLOCK = 128  # numpy sums up to this many values with 8 accumulators, more recursively


def _numpy_order_sum(planes: np.ndarray) -> np.ndarray:
    """``planes.sum(axis=0)`` added up as numpy adds the channels of one pixel (pairwise_sum)."""
    count = planes.shape[0]
    if count < 8:
        total = planes[0].copy()
        for plane in planes[1:]:
            total += plane
        return total
    partial = [planes[j].copy() for j in range(8)]
    end = count - count % 8
    for start in range(8, end, 8):
        for j in range(8):
            partial[j] += planes[start + j]
    total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]))
    for plane in planes[end:]:
        total += plane
    return total


def _activate(raw: np.ndarray, activation: str) -> np.ndarray:
    if activation == "softmax":  # StableSoftmax: subtract the max first
        e = np.exp(raw - raw.max(axis=2, keepdims=True))
        return e / e.sum(axis=2, keepdims=True)
    if activation == "sigmoid":
        return _sigmoid(raw)
    return raw


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) -> inf gives the right limit, 0
        return (_F32(1) / (_F32(1) + np.exp(-x))).astype(_F32, copy=False)


def _resize_into(plane: np.ndarray, out: np.ndarray) -> None:
    if plane.shape == out.shape:
        out[...] = plane
        return
    resized = cv2.resize(plane, (out.shape[1], out.shape[0]), dst=out, interpolation=cv2.INTER_LINEAR)
    if not np.may_share_memory(resized, out):  # an OpenCV that would not write into the view
        out[...] = resized


# ---- the subject, for composites --------------------------------------------------------------

def subject_classes(count: int, classes: Optional[Sequence[int]] = None) -> tuple[int, ...]:
    """The categories a composite's subject is made of, out of ``count`` masks: ``classes``, or
    all but the background (index 0); a model with a single output mask has no background
    channel, and that mask is the subject."""
    default = range(1, count) if count > 1 else range(count)
    chosen = tuple(int(c) for c in classes) if classes is not None else tuple(default)
    if not chosen or any(not 0 <= c < count for c in chosen):
        raise UsageError(f"classes {list(chosen)} do not fit a model with {count} categories")
    return chosen


def subject_probability(masks: np.ndarray, chosen: Sequence[int]) -> np.ndarray:
    """float32 (H, W): the chosen masks added up and clipped to [0, 1] (one mask: that mask)."""
    if len(chosen) == 1:
        return masks[chosen[0]]
    # Added in place, one mask at a time: the additions np.add.reduce makes, in its order, without
    # first copying the chosen masks (DeepLab's 20 at 1080p are 166 MB; 31 -> 8 ms).
    total = masks[chosen[0]] + masks[chosen[1]]
    for index in chosen[2:]:
        np.add(total, masks[index], out=total)
    return np.clip(total, 0.0, 1.0, out=total)


# ---- category mask ------------------------------------------------------------------------

def _category_mask(raw: np.ndarray, activation: str, height: int, width: int) -> np.ndarray:
    """MediaPipe's per-pixel interpolate-then-decide, computed only where it can matter.

    An interpolated value is a convex combination of its 4 grid neighbours, so where all four
    neighbours decide the same category the pixel does too: take the grid's decision there and
    interpolate exactly (MediaPipe's float order) only at pixels of grid cells whose corners
    disagree (a superset of the pixels whose neighbours disagree). A cell's pixels are a block
    (neighbour indices rise with the position), so they are listed from the few unsure cells,
    a chunk of cells at a time to bound memory. Labels are upsampled by whole-row copies (_widen).
    """
    grid = _decide(raw, activation)
    if grid.shape == (height, width):  # every position falls on a grid point: nothing to interpolate
        return grid
    ys, xs = _corner_aligned(raw.shape[0], height), _corner_aligned(raw.shape[1], width)
    labels = _widen(grid, xs[0])[ys[0]]
    for rows, cols in _unsure_pixels(_unsure_cells(grid), ys[0], xs[0], _CHUNK_VALUES // raw.shape[2]):
        labels[rows, cols] = _decide(_interpolate(raw, rows, cols, ys, xs), activation)
    return labels


def _unsure_cells(grid: np.ndarray) -> np.ndarray:
    """bool (h, w): True where a grid point's label differs from its right, lower or diagonal one."""
    padded = np.pad(grid, ((0, 1), (0, 1)), mode="edge")
    here = padded[:-1, :-1]
    return (here != padded[:-1, 1:]) | (here != padded[1:, :-1]) | (here != padded[1:, 1:])


def _unsure_pixels(unsure: np.ndarray, row_cells: np.ndarray, col_cells: np.ndarray, most: int):
    """(rows, cols) of the output pixels whose cell (``row_cells[y]``, ``col_cells[x]``) is unsure,
    in chunks of at most about ``most`` pixels (a cell's block is never split)."""
    cell_rows, cell_cols = np.nonzero(unsure)
    if not cell_rows.size:
        return
    # Each cell's block of output rows and columns: the positions whose neighbour index is it.
    first_row = np.searchsorted(row_cells, cell_rows)
    heights = np.searchsorted(row_cells, cell_rows, side="right") - first_row
    first_col = np.searchsorted(col_cells, cell_cols)
    widths = np.searchsorted(col_cells, cell_cols, side="right") - first_col
    # Every block within the largest block's offsets, the offsets past its own size dropped.
    down = np.arange(max(1, int(heights.max())))[:, None]
    across = np.arange(max(1, int(widths.max())))[None, :]
    per_chunk = max(1, most // (down.size * across.size))
    for start in range(0, cell_rows.size, per_chunk):
        chunk = slice(start, start + per_chunk)
        inside = (down < heights[chunk, None, None]) & (across < widths[chunk, None, None])
        rows = np.broadcast_to(first_row[chunk, None, None] + down, inside.shape)[inside]
        cols = np.broadcast_to(first_col[chunk, None, None] + across, inside.shape)[inside]
        yield rows, cols


def _widen(grid: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``grid[:, cols]``, gathered as rows of the transposed grid: 5x faster than numpy's column gather."""
    return np.ascontiguousarray(np.ascontiguousarray(grid.T)[cols].T)


def _decide(values: np.ndarray, activation: str) -> np.ndarray:
    """Category per pixel from raw (..., C) values; one channel: 1 where p > 0.5.

    Sigmoid is applied as MediaPipe does (float32 saturation can create ties); softmax is not.
    """
    if activation == "sigmoid":
        values = _sigmoid(values)
    if values.shape[-1] == 1:
        return (values[..., 0] > 0.5).astype(np.uint8)
    if values.shape[-1] == 2:  # argmax over a 2-long axis is numpy's slow case; the same answer,
        first, second = values[..., 0], values[..., 1]  # ties and NaN (argmax takes the first NaN) included
        return ((second > first) | (np.isnan(second) & ~np.isnan(first))).view(np.uint8)
    return values.argmax(axis=-1).astype(np.uint8)  # first maximum, like std::max_element


def _interpolate(raw, rows, cols, ys, xs) -> np.ndarray:
    """MediaPipe's BilinearInterpolate at output pixels (rows, cols): along y, then along x.

    Returns the (pixels, C) values. The same float32 operations, pixel by pixel, as interpolating
    whole rows along y first and then picking the columns; the four neighbours are taken by flat
    index (np.take of rows is several times faster than 2-d fancy indexing).
    """
    (y0, y1, ty), (x0, x1, tx) = ys, xs
    flat = raw.reshape(-1, raw.shape[2])
    width = raw.shape[1]
    top, bottom, weight = y0[rows] * width, y1[rows] * width, ty[rows, None]
    left_x, right_x = x0[cols], x1[cols]
    top_left, top_right = np.take(flat, top + left_x, axis=0), np.take(flat, top + right_x, axis=0)
    left = top_left + (np.take(flat, bottom + left_x, axis=0) - top_left) * weight
    right = top_right + (np.take(flat, bottom + right_x, axis=0) - top_right) * weight
    return left + (right - left) * tx[cols, None]


@lru_cache(maxsize=32)
def _corner_aligned(n_in: int, n_out: int):
    """Neighbour indices and weight per output position: floor/ceil of ``i * (in-1)/(out-1)``.

    float32 throughout, like MediaPipe. MediaPipe divides by zero when the image is one pixel
    wide or high; we sample the first row/column there.
    """
    scale = _F32(n_in - 1) / _F32(n_out - 1) if n_out > 1 else _F32(0)
    pos = np.arange(n_out, dtype=_F32) * scale
    lo = np.maximum(np.floor(pos), 0).astype(np.intp)
    hi = np.minimum(np.ceil(pos), n_in - 1).astype(np.intp)
    t = np.clip(pos - lo.astype(_F32), 0, 1).astype(_F32)
    for a in (lo, hi, t):
        a.flags.writeable = False
    return lo, hi, t


def pixel_counts(mask: np.ndarray) -> np.ndarray:
    """How many pixels hold each value 0..255 of a uint8 mask (int64[256]): the categories present.

    OpenCV's calcHist is 15x faster than np.bincount here, but counts in float32, exact to 2**24:
    larger masks are counted in bands of rows.
    """
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    rows = max(1, (1 << 24) // max(1, mask.shape[1]))
    counts = np.zeros(256, np.int64)
    for top in range(0, mask.shape[0], rows):
        counts += cv2.calcHist([mask[top:top + rows]], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return counts
