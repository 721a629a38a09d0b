"""Graph rewrites that make onnxruntime's CPU provider faster without changing a single output bit.

``decompose_prelu``: onnxruntime has no fused or blocked (NCHWc) PRelu. Each of the hair model's
100 PRelus ran as a slow broadcast kernel between layout conversions, 55% of its inference
time. Two exact decompositions replace it:

* where onnxruntime holds the PRelu's input in its blocked NCHWc layout (the input comes from a
  Conv, or from an Add of such tensors): ``Relu(x) + BatchNormalization(Relu(BatchNormalization(x)))``
  with the two BatchNormalizations scaling by -1 and by -slope (mean 0, variance 1, epsilon 0).
  onnxruntime turns each into a blocked 1x1 depthwise Conv (the Relu and the final Add fuse
  into them), so the tensor never leaves the blocked layout: ``(-a) * Relu(-x)`` is exactly
  ``a * Min(x, 0)``, and one of the two summands is always zero;
* elsewhere: ``Relu(x) + Min(x, 0) * a``, four fast vectorised kernels on plain NCHW tensors.

Keeping tensors blocked makes onnxruntime fuse more Adds into the Conv before them, and a fused
Add rounds differently (the Conv adds the other summand before its bias). So where an Add
joins a Conv's output with a tensor that only the rewrite made blocked, the Conv gets a
``Clip(-inf, inf)`` (exact identity; onnxruntime fuses it into the Conv as its activation,
which stops the Add fusion). And where a tensor comes back from the W/H-swapped layout of the
TFLite-tie-order pooling (a Transpose) into both a Conv and an Add, a 1x1 depthwise Conv with
weights 1 (exact identity) moves it into the blocked layout once, so the Add and what follows
stay blocked. On the hair network this takes onnxruntime's inference from about 13.5 to 11.3 ms
on 2 cores, with bit-identical outputs.
"""
from __future__ import annotations

import numpy as np

_ZERO = "segtool_prelu_zero"
_CLIP_LO = "segtool_clip_lo"
_CLIP_HI = "segtool_clip_hi"
_BN_ZEROS = "segtool_bn_zeros_{}"
_BN_ONES = "segtool_bn_ones_{}"
_BN_MINUS_ONES = "segtool_bn_minus_ones_{}"
_SWAP_HW = [0, 1, 3, 2]


def decompose_prelu(model) -> int:
    """Rewrite every PRelu of ``model`` (an onnx ModelProto) in place; return how many."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if not any(node.op_type == "PRelu" for node in graph.node):
        return 0
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.node for out in node.output}
    channels = _channels(model)

    new_weights: dict[str, np.ndarray] = {_ZERO: np.zeros((), np.float32)}
    # Tensors onnxruntime's NCHWc transformer keeps blocked, after and before this rewrite.
    blocked: set[str] = set()
    blocked_before: set[str] = set()
    renamed: dict[str, str] = {}
    nodes, count = [], 0

    def constant(name: str, value: np.ndarray) -> str:
        new_weights.setdefault(name, value.astype(np.float32))
        return name

    def is_conv(name: str) -> bool:
        node = producer.get(name)
        return node is not None and _is_blocked_conv(node, weights)

    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        if node.op_type == "PRelu":
            count += 1
            x, slope = node.input
            y = node.output[0]
            base = node.name or y
            a = weights.get(slope)
            c = channels.get(x)
            if x in blocked and a is not None and c is not None and a.size == c and a.shape[-2:] == (1, 1):
                neg, neg_relu, neg_part, pos = (f"{y}__{s}" for s in ("neg", "neg_relu", "neg_part", "positive"))
                zeros, ones = constant(_BN_ZEROS.format(c), np.zeros(c)), constant(_BN_ONES.format(c), np.ones(c))
                minus_a = constant(f"{y}__minus_slope", -a.reshape(c))
                nodes += [
                    helper.make_node("Relu", [x], [pos], name=f"{base}__relu"),
                    helper.make_node("BatchNormalization", [x, constant(_BN_MINUS_ONES.format(c), -np.ones(c)),
                                     zeros, zeros, ones], [neg], name=f"{base}__negate", epsilon=0.0),
                    helper.make_node("Relu", [neg], [neg_relu], name=f"{base}__neg_relu"),
                    helper.make_node("BatchNormalization", [neg_relu, minus_a, zeros, zeros, ones], [neg_part],
                                     name=f"{base}__scale", epsilon=0.0),
                    helper.make_node("Add", [pos, neg_part], [y], name=f"{base}__add"),
                ]
                blocked.add(y)
            else:
                nodes += [
                    helper.make_node("Relu", [x], [f"{y}__positive"], name=f"{base}__relu"),
                    helper.make_node("Min", [x, _ZERO], [f"{y}__negative_x"], name=f"{base}__min"),
                    helper.make_node("Mul", [f"{y}__negative_x", slope], [f"{y}__negative"], name=f"{base}__mul"),
                    helper.make_node("Add", [f"{y}__positive", f"{y}__negative"], [y], name=f"{base}__add"),
                ]
            continue
        if _is_blocked_conv(node, weights):
            blocked.add(node.output[0])
            blocked_before.add(node.output[0])
        elif node.op_type == "Add" and len(node.input) == 2:
            if all(name in blocked for name in node.input):
                blocked.add(node.output[0])
                convs = [k for k, name in enumerate(node.input) if is_conv(name)]
                other = node.input[1 - convs[0]] if len(convs) == 1 else None
                if other is not None and other not in blocked_before:
                    conv_out = node.input[convs[0]]
                    clipped = f"{conv_out}__no_add_fusion"
                    nodes.append(helper.make_node("Clip", [conv_out, constant(_CLIP_LO, np.array(-np.inf)),
                                                  constant(_CLIP_HI, np.array(np.inf))], [clipped], name=clipped))
                    node.input[convs[0]] = clipped
            if all(name in blocked_before for name in node.input):
                blocked_before.add(node.output[0])
        elif _is_swap_hw(node) and node.output[0] in channels:
            users = {user.op_type for user in consumers.get(node.output[0], [])}
            if {"Conv", "Add"} <= users:
                nodes.append(node)
                c = channels[node.output[0]]
                out = f"{node.output[0]}__blocked"
                nodes.append(helper.make_node("Conv", [node.output[0], constant(f"{out}__ones", np.ones((c, 1, 1, 1)))],
                                              [out], name=out, group=c, kernel_shape=[1, 1]))
                renamed[node.output[0]] = out
                blocked.add(out)
                continue
        nodes.append(node)

    for name, value in new_weights.items():
        graph.initializer.append(numpy_helper.from_array(value, name))
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _is_blocked_conv(node, weights) -> bool:
    """A 2-D float Conv with constant weights: onnxruntime's NCHWc transformer blocks its output."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return False
    w = weights.get(node.input[1])
    return w is not None and w.ndim == 4 and w.dtype == np.float32


def _is_swap_hw(node) -> bool:
    if node.op_type != "Transpose":
        return False
    perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
    return perm == [_SWAP_HW]


def _channels(model) -> dict[str, int]:
    """Channel count (dim 1) of each 4-D tensor whose shape inference knows it."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[value.name] = dims[1].dim_value
    return out
