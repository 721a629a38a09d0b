"""tf2onnx handlers for MediaPipe's custom TFLite ops.

tf2onnx expects custom options as a flexbuffer, fails on MediaPipe's raw int32
structs and drops them, so :func:`custom_op_context` reads them from the
flatbuffer first and the handlers look them up by tensor name.  Importing this
module registers the handlers (tf2onnx's registry is global); they only work
inside a ``custom_op_context``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math

import numpy as np
from onnx import TensorProto
from tf2onnx.handler import tf_op
from tf2onnx.tflite.Model import Model

CONV_TRANSPOSE_BIAS = "Convolution2DTransposeBias"
MAX_POOL_ARGMAX = "MaxPoolingWithArgmax2D"
MAX_UNPOOL = "MaxUnpooling2D"
HANDLED = (CONV_TRANSPOSE_BIAS, MAX_POOL_ARGMAX, MAX_UNPOOL)

_SAME, _VALID = 1, 2  # TfLitePadding
_NHWC_TO_NCHW, _NCHW_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
# On ties the first maximum wins.  XNNPACK (LiteRT's default delegate, which runs
# these ops for MediaPipe) scans a window column by column, onnxruntime row by row
# (so does MediaPipe's reference kernel); pooling an N,C,W,H tensor makes
# onnxruntime pick the element TFLite picks.
_NHWC_TO_NCWH = _NCWH_TO_NHWC = [0, 3, 2, 1]


@dataclasses.dataclass
class _Conversion:
    options: dict[tuple[str, str], tuple[int, ...] | None]
    tflite_tie_order: bool
    errors: list[str] = dataclasses.field(default_factory=list)


_CURRENT: contextvars.ContextVar[_Conversion] = contextvars.ContextVar("segtool_custom_ops")


def read_custom_options(tflite_path) -> dict[tuple[str, str], tuple[int, ...] | None]:
    """{(custom_code, tensor name): int32 option struct} for every input and output of our ops.

    A tensor name shared by two ops of one kind with different options maps to
    None, so a lookup through it fails loudly instead of picking one.
    """
    with open(tflite_path, "rb") as f:
        buf = bytearray(f.read())
    model = Model.GetRootAsModel(buf, 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    found: dict[tuple[str, str], tuple[int, ...] | None] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = (codes[op.OpcodeIndex()] or b"").decode()
            if code not in HANDLED:
                continue
            values = _option_ints(op, buf)
            tensors = [op.Outputs(j) for j in range(op.OutputsLength())]
            tensors += [op.Inputs(j) for j in range(op.InputsLength())]
            for t in tensors:
                if t < 0:
                    continue
                key = (code, graph.Tensors(t).Name().decode())
                found[key] = values if found.get(key, values) == values else None
    return found


def pool_tensors(tflite_path) -> list[tuple[str, str]]:
    """(input, values output) tensor names of each MaxPoolingWithArgmax2D, in graph order."""
    with open(tflite_path, "rb") as f:
        buf = bytearray(f.read())
    model = Model.GetRootAsModel(buf, 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    found = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if (codes[op.OpcodeIndex()] or b"").decode() == MAX_POOL_ARGMAX:
                name = lambda t: graph.Tensors(t).Name().decode()  # noqa: E731
                found.append((name(op.Inputs(0)), name(op.Outputs(0))))
    return found


def _option_ints(op, buf: bytearray) -> tuple[int, ...]:
    if not op.CustomOptionsIsNone():
        raw = op.CustomOptionsAsNumpy().tobytes()
    else:  # models over 2 GB store options after the flatbuffer
        start, size = op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()
        raw = bytes(buf[start : start + size])
    raw = raw[: len(raw) // 4 * 4]
    return tuple(int(v) for v in np.frombuffer(raw, dtype="<i4"))


@contextlib.contextmanager
def custom_op_context(tflite_path, *, tflite_tie_order: bool = True):
    """Make the file's custom options visible to the handlers during one conversion."""
    state = _Conversion(read_custom_options(tflite_path), tflite_tie_order)
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def _options(node, code: str, count: int) -> tuple[int, ...]:
    state = _CURRENT.get(None)
    if state is None:
        raise RuntimeError("segtool custom-op handlers need segtool.convert.custom_ops.custom_op_context")
    for name in list(node.output) + list(node.input):
        values = state.options.get((code, name))
        if values is not None and len(values) >= count:
            return values
    raise ValueError(f"no unambiguous custom options found for {code} node {node.name!r}")


def _record_errors(handler):
    """tf2onnx only logs handler exceptions; keep them for the conversion report."""

    def wrapped(cls, ctx, node, **kwargs):
        try:
            return handler(cls, ctx, node, **kwargs)
        except Exception as exc:
            state = _CURRENT.get(None)
            if state is not None:
                state.errors.append(f"{node.type} {node.name!r}: {exc}")
            raise

    return classmethod(wrapped)


def _same_pads(in_size: int, out_size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((out_size - 1) * stride + kernel - in_size, 0)
    return total // 2, total - total // 2


def _transpose_input(ctx, node, index: int, perm: list[int]) -> None:
    name = node.input[index]
    transpose = ctx.insert_new_node_on_input(node, "Transpose", name, input_index=index, perm=perm)
    shape = ctx.get_shape(name)
    if shape is not None:
        ctx.set_shape(transpose.output[0], [shape[p] for p in perm])


def _transpose_output(ctx, node, index: int, perm: list[int], inverse: list[int]) -> None:
    name = node.output[index]
    shape = ctx.get_shape(name)
    transpose = ctx.insert_new_node_on_output("Transpose", name, perm=perm)
    if shape is not None:
        ctx.set_shape(transpose.output[0], shape)
        ctx.set_shape(name, [shape[p] for p in inverse])


@tf_op("TFL_" + CONV_TRANSPOSE_BIAS)
class ConvolutionTransposeBias:
    """ConvTranspose with the bias as third input; weights [O, kh, kw, I] -> [I, O, kh, kw]."""

    @_record_errors
    def version_11(cls, ctx, node, **kwargs):
        padding, stride_w, stride_h = _options(node, CONV_TRANSPOSE_BIAS, 3)[:3]
        _, kh, kw, _ = ctx.get_shape(node.input[1])
        strides, kernel = (stride_h, stride_w), (kh, kw)
        pads, extra = [0, 0, 0, 0], [0, 0]
        if padding == _SAME:  # output = input * stride, so (in - 1) * s + k - out = k - s
            for axis in (0, 1):
                total = kernel[axis] - strides[axis]
                if total < 0:  # kernel smaller than stride: grow the output at the end
                    extra[axis] = -total
                else:
                    pads[axis], pads[axis + 2] = total // 2, total - total // 2
        elif padding != _VALID:
            raise ValueError(f"unsupported padding {padding}")
        node.type = "ConvTranspose"
        node.set_attr("kernel_shape", list(kernel))
        node.set_attr("strides", list(strides))
        node.set_attr("pads", pads)
        if any(extra):
            node.set_attr("output_padding", extra)
        _transpose_input(ctx, node, 1, [3, 0, 1, 2])
        _transpose_input(ctx, node, 0, _NHWC_TO_NCHW)
        _transpose_output(ctx, node, 0, _NCHW_TO_NHWC, _NHWC_TO_NCHW)


def _pool_geometry(values: tuple[int, ...]) -> tuple[int, tuple[int, int], tuple[int, int]]:
    padding, stride_w, stride_h, filter_w, filter_h, activation = values[:6]
    if activation != 0:
        raise ValueError(f"fused activation {activation} is not supported")
    return padding, (stride_h, stride_w), (filter_h, filter_w)


def _layout():
    """(perm into the pooling layout, perm back, that layout's spatial axes as H=0 / W=1)."""
    if _CURRENT.get().tflite_tie_order:
        return _NHWC_TO_NCWH, _NCWH_TO_NHWC, (1, 0)
    return _NHWC_TO_NCHW, _NCHW_TO_NHWC, (0, 1)


@tf_op("TFL_" + MAX_POOL_ARGMAX)
class MaxPoolingWithArgmax:
    """ONNX MaxPool with its Indices output (int64, flattened over the pooling layout)."""

    @_record_errors
    def version_11(cls, ctx, node, **kwargs):
        padding, strides, kernel = _pool_geometry(_options(node, MAX_POOL_ARGMAX, 6))
        _, in_h, in_w, _ = ctx.get_shape(node.input[0])
        pads = [0, 0, 0, 0]
        if padding == _SAME:
            for axis, size in enumerate((in_h, in_w)):
                out = math.ceil(size / strides[axis])
                pads[axis], pads[axis + 2] = _same_pads(size, out, kernel[axis], strides[axis])
        elif padding != _VALID:
            raise ValueError(f"unsupported padding {padding}")
        to_layout, from_layout, spatial = _layout()
        node.type = "MaxPool"
        node.set_attr("kernel_shape", [kernel[a] for a in spatial])
        node.set_attr("strides", [strides[a] for a in spatial])
        node.set_attr("pads", [pads[a] for a in spatial] + [pads[a + 2] for a in spatial])
        ctx.set_dtype(node.output[1], TensorProto.INT64)
        _transpose_input(ctx, node, 0, to_layout)
        for index in (0, 1):
            _transpose_output(ctx, node, index, from_layout, to_layout)


@tf_op("TFL_" + MAX_UNPOOL)
class MaxUnpooling:
    """ONNX MaxUnpool in the same layout as the pooling that produced the indices."""

    @_record_errors
    def version_11(cls, ctx, node, **kwargs):
        padding, strides, kernel = _pool_geometry(_options(node, MAX_UNPOOL, 6))
        # MediaPipe's kernel outputs input * filter; ONNX's default, (input - 1) * stride
        # + filter, is the same only when they are equal (2x2, stride 2 in these models).
        if padding != _VALID or strides != kernel:
            raise ValueError(f"unsupported unpooling: padding {padding}, strides {strides}, filter {kernel}")
        to_layout, from_layout, spatial = _layout()
        node.type = "MaxUnpool"
        node.set_attr("kernel_shape", [kernel[a] for a in spatial])
        node.set_attr("strides", [strides[a] for a in spatial])
        node.set_attr("pads", [0, 0, 0, 0])
        _transpose_input(ctx, node, 0, to_layout)
        _transpose_input(ctx, node, 1, to_layout)
        _transpose_output(ctx, node, 0, from_layout, to_layout)
