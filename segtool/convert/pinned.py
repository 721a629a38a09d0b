"""Comparing a converted model with LiteRT where max pooling is decided by float noise.

A pooling window whose two largest values differ by less than the two runtimes' rounding
(1e-6 against differences of 1e-5 in the layers before) can pick a different element in
onnxruntime than in LiteRT, and ``MaxUnpooling2D`` then puts a value one pixel away: a
difference of ~0.1 in the hair logits that no conversion can remove, and that depends on
the CPU's SIMD path (MLAS and XNNPACK round differently), not on package versions.

So the network is checked in two parts, each exactly:
- every tensor up to and including the pooled values and the output, against LiteRT;
- the pooling decisions: each MaxPool that feeds an unpooling also runs on LiteRT's own
  input to it (a copy of the node, same attributes, same layout), and its indices drive the
  unpooling. On LiteRT's values the converted pooling must decide as LiteRT does, ties
  included (a row-major tie order fails here by > 0.1), while onnxruntime's own decisions
  are counted where they differ (``flipped_windows``) with the widest gap between the two
  picked values (``widest_flip``): float noise, never more than the runtimes' difference.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from . import ConversionError


@dataclasses.dataclass(frozen=True)
class PinnedComparison:
    max_abs_diff: float  # outputs, onnxruntime with LiteRT's pooling inputs vs LiteRT
    pool_input_diff: float  # largest difference of a pooling input, onnxruntime's own vs LiteRT's
    flipped_windows: int  # windows where onnxruntime's own decision differs from LiteRT's
    widest_flip: float  # largest gap (in LiteRT's values) between the two picked elements


def compare_pinned(tflite_path, onnx_path, inputs) -> PinnedComparison:
    import onnx

    from .custom_ops import pool_tensors

    model = onnx.load(str(onnx_path))
    pools = _unpooled_pools(model, dict((out, inp) for inp, out in pool_tensors(tflite_path)))
    probe = _with_outputs(model, [name for node, _ in pools for name in (node.input[0], node.output[1])])
    interpreter = _interpreter(tflite_path)
    worst = PinnedComparison(0.0, 0.0, 0, 0.0)
    perms = None
    for item in np.ascontiguousarray(inputs, dtype=np.float32):
        item = item[None]
        expected, lite = _run_litert(interpreter, item, [tflite_in for _, tflite_in in pools])
        own = _run(probe, item)
        if perms is None:  # the layout each pooling runs in, found once
            perms = [_layout_of(lite[i], own[node.input[0]]) for i, (node, _) in enumerate(pools)]
            pinned = _session_of(_pinned_model(model, pools, perms))
        feeds = {f"pinned_{i}": np.ascontiguousarray(lite[i].transpose(perm)) for i, perm in enumerate(perms)}
        got = _feed(pinned, item, feeds)
        result = _compare(pools, own, got, feeds, expected)
        worst = PinnedComparison(*(max(a, b) for a, b in zip(dataclasses.astuple(worst), dataclasses.astuple(result))))
    return worst


def _unpooled_pools(model, tflite_inputs: dict) -> list:
    """(MaxPool node, its TFLite input tensor name) for each pooling whose indices are used."""
    used = {name for node in model.graph.node for name in node.input}
    pools = []
    for node in model.graph.node:
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] in used:
            if node.output[0] not in tflite_inputs:
                raise ConversionError(f"{node.output[0]}: no MaxPoolingWithArgmax2D of that name in the TFLite file")
            pools.append((node, tflite_inputs[node.output[0]]))
    return pools


def _with_outputs(model, names: list):
    import onnx

    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    extended.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    return _session_of(extended)


def _session_of(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _pinned_model(model, pools, perms):
    """``model`` with each pooling's indices taken from a copy of it that pools ``pinned_<i>``."""
    import onnx

    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    graph = pinned.graph
    for i, ((node, _), perm) in enumerate(zip(pools, perms)):
        indices = f"pinned_{i}_indices"
        for consumer in graph.node:
            consumer.input[:] = [indices if n == node.output[1] else n for n in consumer.input]
        copy = onnx.helper.make_node("MaxPool", [f"pinned_{i}"], [f"pinned_{i}_values", indices], name=f"pinned_{i}")
        copy.attribute.extend(node.attribute)
        graph.node.append(copy)
        graph.input.append(onnx.helper.make_tensor_value_info(f"pinned_{i}", onnx.TensorProto.FLOAT, None))
        graph.output.append(onnx.helper.make_empty_tensor_value_info(indices))
    _sort_topologically(graph)
    return pinned


def _sort_topologically(graph) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        node = next(n for n in pending if all(name in ready for name in n.input))
        pending.remove(node)
        ordered.append(node)
        ready.update(node.output)
    del graph.node[:]
    graph.node.extend(ordered)


def _interpreter(tflite_path):
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is the purpose
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _run_litert(interpreter, item, names: list) -> tuple[list, list]:
    """LiteRT's outputs and the tensors called ``names``, for one item."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], item)
    interpreter.invoke()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return outputs, [interpreter.get_tensor(index[name]) for name in names]


def _run(session, item) -> dict:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: item})))


def _feed(session, item, feeds: dict) -> dict:
    first = next(i.name for i in session.get_inputs() if i.name not in feeds)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {first: item, **feeds})))


def _layout_of(nhwc: np.ndarray, pooled_input: np.ndarray) -> tuple:
    """The transpose of LiteRT's NHWC tensor that onnxruntime pools (same values, batch first)."""
    candidates = [(0, *p) for p in itertools.permutations((1, 2, 3))]
    fits = [p for p in candidates if nhwc.transpose(p).shape == pooled_input.shape]
    diffs = {p: float(np.max(np.abs(nhwc.transpose(p) - pooled_input))) for p in fits}
    best = min(diffs, key=diffs.get, default=None)
    if best is None or diffs[best] > 1e-2:
        raise ConversionError(f"a pooling input of shape {pooled_input.shape} matches no layout of LiteRT's {nhwc.shape}")
    return best


def _compare(pools, own: dict, got: dict, feeds: dict, expected: list) -> PinnedComparison:
    outputs = [o for o in got if not o.startswith("pinned_")]
    diff = max(float(np.max(np.abs(e - got[name]))) for e, name in zip(expected, outputs))
    pool_diff, flips, widest = 0.0, 0, 0.0
    for i, (node, _) in enumerate(pools):
        lite = feeds[f"pinned_{i}"]
        pool_diff = max(pool_diff, float(np.max(np.abs(own[node.input[0]] - lite))))
        mine, theirs = own[node.output[1]].ravel(), got[f"pinned_{i}_indices"].ravel()
        moved = mine != theirs
        flips += int(moved.sum())
        if moved.any():
            values = lite.ravel()
            widest = max(widest, float(np.max(np.abs(values[mine[moved]] - values[theirs[moved]]))))
    return PinnedComparison(diff, pool_diff, flips, widest)
