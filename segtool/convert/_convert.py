"""TFLite -> ONNX conversion and its checks (imports TensorFlow; load lazily)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from . import ConversionError, ConversionReport
from .fast_graph import decompose_prelu
from .metadata import NotTFLiteError, read_signature, read_tensor_names

BATCH = "batch"
_BATCH_TOLERANCE = 1e-4  # batched kernels may sum in another order; real breakage is far larger


def _install_hint() -> str:
    from ..modelspec import extra_hint

    return f"install the conversion extra: {extra_hint('convert')}"


def _import_converters():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import onnx
        import tf2onnx

        from . import custom_ops
    except ImportError as exc:
        raise ConversionError(f"converting TFLite models needs tf2onnx and TensorFlow ({exc}); "
                              f"{_install_hint()}") from exc
    return onnx, tf2onnx, custom_ops


class _DropOptionWarnings(logging.Filter):
    """tf2onnx warns that it cannot parse our ops' options; custom_ops reads them itself."""

    def filter(self, record):
        return "Could not parse attributes for custom op" not in record.getMessage()


@contextlib.contextmanager
def _quiet_tf2onnx():
    loggers = [logging.getLogger("tf2onnx.tflite_utils"), logging.getLogger("tf2onnx.tfonnx")]
    noise = _DropOptionWarnings()
    for log in loggers:
        log.addFilter(noise)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            yield
    finally:
        for log in loggers:
            log.removeFilter(noise)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(tflite_path, onnx_path, *, opset: int, tflite_tie_order: bool, batch_inputs) -> ConversionReport:
    tflite_path, onnx_path = Path(tflite_path), Path(onnx_path)
    try:
        data = tflite_path.read_bytes()
        signature = read_signature(data)
    except (OSError, NotTFLiteError) as exc:
        raise ConversionError(f"cannot convert {tflite_path}: {exc}") from exc
    onnx, tf2onnx, custom_ops = _import_converters()
    # Node names come from a process-wide counter; restart it so a model's bytes
    # (and the manifest's onnx_sha256) do not depend on what was converted before.
    tf2onnx.utils.INTERNAL_NAME = 0
    with _quiet_tf2onnx(), custom_ops.custom_op_context(tflite_path, tflite_tie_order=tflite_tie_order) as state:
        try:
            model, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
        except Exception as exc:
            raise ConversionError(f"tf2onnx failed on {tflite_path}: {exc}") from exc
    _check_no_tflite_ops(model, tflite_path, state.errors)
    drop_identity_reshapes(model)
    decompose_prelu(model)
    canonicalize_names(model, keep=read_tensor_names(data))
    _check_model(onnx, model, tflite_path)
    dynamic, batch_diff = _try_dynamic_batch(model, batch_inputs, signature.inputs[0].shape)
    if dynamic:
        _check_model(onnx, model, tflite_path)
    _atomic_save(model, onnx_path)
    return ConversionReport(
        tflite_path=tflite_path,
        onnx_path=onnx_path,
        onnx_sha256=sha256_of(onnx_path),
        input_shape=tuple(signature.inputs[0].shape),
        output_shape=tuple(signature.outputs[0].shape),
        opset=opset,
        dynamic_batch=dynamic,
        batch_max_abs_diff=batch_diff,
        tflite_tie_order=tflite_tie_order,
        op_counts=_op_counts(model),
    )


def _check_no_tflite_ops(model, tflite_path, handler_errors: list[str]) -> None:
    left = sorted({n.op_type for n in model.graph.node if n.op_type.startswith("TFL_")})
    if left:
        detail = "; ".join(handler_errors) or "no handler is registered for them"
        raise ConversionError(f"{tflite_path}: TFLite ops left unconverted: {', '.join(left)} ({detail})")


def _check_model(onnx, model, tflite_path) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ConversionError(f"{tflite_path}: the converted model fails onnx.checker: {exc}") from exc


def _atomic_save(model, onnx_path: Path) -> None:
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(onnx_path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, onnx_path)


def drop_identity_reshapes(model) -> None:
    """Remove Reshapes that keep their input's shape.

    tf2onnx turns transposes of [1, C, 1, 1] tensors into Reshapes and cancels
    a varying subset of them from run to run; removing the no-ops makes the graph
    the same every time (and a few nodes smaller).
    """
    import onnx
    from onnx import numpy_helper

    dims = _inferred_dims(onnx.shape_inference.infer_shapes(model))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    outputs = {v.name for v in model.graph.output}
    rename: dict[str, str] = {}
    keep = []
    for node in model.graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        target = initializers.get(node.input[1]) if node.op_type == "Reshape" else None
        if target is not None and node.output[0] not in outputs and _same_shape(dims.get(node.input[0]), target):
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    _drop_unused_initializers(model)


def _same_shape(shape, target) -> bool:
    if shape is None or len(shape) != len(target) or any(d is None for d in shape):
        return False
    return all(t == 0 or t == d for t, d in zip(target.tolist(), shape))


def canonicalize_names(model, keep: set[str]) -> None:
    """Rename tf2onnx's generated names in node order and sort the initializers.

    tf2onnx numbers names from a global counter and walks sets of nodes, so the
    same file converts to different bytes from run to run; canonical names keep
    onnx_sha256 reproducible.  TFLite's names for activations are kept for
    debugging; weights are renamed too, because when tf2onnx merges equal
    constants the name it keeps varies.
    """
    graph = model.graph
    _sort_nodes_from_outputs(graph)
    weights = {i.name for i in graph.initializer}
    keep = (keep - weights) | {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    mapping: dict[str, str] = {}

    def canon(name: str, kind: str) -> str:
        if name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"{kind}_{len(mapping)}"
        return mapping[name]

    for node in graph.node:
        if not node.domain:
            node.ClearField("domain")  # tf2onnx sets an explicit "" on some nodes only
        node.input[:] = [canon(n, "t") for n in node.input]
        node.output[:] = [canon(n, "t") for n in node.output]
    names = set()
    for i, node in enumerate(graph.node):
        node.name = node.output[0] if node.output[0] not in names else f"{node.op_type}_{i}"
        names.add(node.name)
    for init in graph.initializer:
        init.name = canon(init.name, "t")
    ordered = sorted(graph.initializer, key=lambda t: t.name)
    copies = [type(ordered[0])() for _ in ordered] if ordered else []
    for copy, original in zip(copies, ordered):
        copy.CopyFrom(original)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def _sort_nodes_from_outputs(graph) -> None:
    """Topological order by depth-first walk from the outputs, inputs in order.

    tf2onnx breaks ties between independent nodes differently from run to run;
    this order depends only on the graph's structure.
    """
    producer = {out: node for node in graph.node for out in node.output}
    ordered, done = [], set()
    for output in graph.output:
        stack = [(producer.get(output.name), False)]
        while stack:
            node, inputs_done = stack.pop()
            if node is None or id(node) in done:
                continue
            if inputs_done:
                done.add(id(node))
                ordered.append(node)
                continue
            stack.append((node, True))
            stack.extend((producer.get(name), False) for name in reversed(node.input))
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _try_dynamic_batch(model, batch_inputs, input_shape) -> tuple[bool, float | None]:
    """Keep the dynamic-batch rewrite only if a batch reproduces the single runs.

    Returns (dynamic, max abs diff of that check); a model that fails keeps batch 1.
    """
    if batch_inputs is None:
        batch_inputs = blocky_noise(input_shape[1:], count=2)
    static = model.SerializeToString()
    make_batch_dynamic(model)
    diff = batch_consistency(model.SerializeToString(), np.ascontiguousarray(batch_inputs, np.float32))
    if diff is None or diff > _BATCH_TOLERANCE:
        model.ParseFromString(static)
        return False, diff
    return True, diff


def make_batch_dynamic(model) -> None:
    """Give inputs and outputs a symbolic batch dimension; rewrite Reshape shapes that bake in 1."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_value == 1:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH
    del model.graph.value_info[:]
    while _rewrite_batch_reshapes(model):
        pass


def _rewrite_batch_reshapes(model) -> bool:
    """One pass: Reshape nodes whose data carries the batch but whose target starts with 1.

    After the batch, onnx shape inference knows a leading dimension only as the
    symbol or not at all (Resize with scales loses it); a concrete 1 means no batch.
    The target's leading 1 becomes 0 ("copy the input's dimension"), which keeps
    any -1 elsewhere in the target valid.
    """
    import onnx
    from onnx import numpy_helper

    shapes = _inferred_dims(onnx.shape_inference.infer_shapes(model))
    initializers = {i.name: i for i in model.graph.initializer}
    changed = False
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        target = numpy_helper.to_array(initializers[node.input[1]])
        if target.size == 0 or target[0] != 1 or isinstance(shapes.get(node.input[0], [1])[0], int):
            continue
        new_name = node.input[1] + "__dynamic_batch"
        if new_name not in initializers:
            fixed = target.copy()
            fixed[0] = 0
            model.graph.initializer.append(numpy_helper.from_array(fixed, new_name))
            initializers[new_name] = model.graph.initializer[-1]
        node.input[1] = new_name
        changed = True
    _drop_unused_initializers(model)
    return changed


def _inferred_dims(model) -> dict[str, list]:
    dims = {}
    for value in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        shape = value.type.tensor_type.shape
        dims[value.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in shape.dim]
    return dims


def _drop_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)


def _session(model_bytes_or_path, *, quiet: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4 if quiet else 3  # a failing batch probe is expected, not an error
    source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, Path) else model_bytes_or_path
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def blocky_noise(item_shape, *, count: int, seed: int = 0) -> np.ndarray:
    """Noise in flat 16 and 32 px blocks: unlike pixel noise it makes the segmenters answer."""
    h, w, c = item_shape
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        size = 16 << (i % 2)
        cells = rng.random((-(-h // size), -(-w // size), c), dtype=np.float32)
        items.append(np.repeat(np.repeat(cells, size, 0), size, 1)[:h, :w])
    return np.stack(items)


def batch_consistency(model_bytes: bytes, batch: np.ndarray) -> float | None:
    """Max abs difference between one batched run and single runs (None if the batch fails)."""
    session = _session(model_bytes, quiet=True)
    name = session.get_inputs()[0].name
    try:
        together = session.run(None, {name: batch})
    except Exception:
        return None
    worst = 0.0
    for i in range(len(batch)):
        alone = session.run(None, {name: batch[i : i + 1]})
        for a, b in zip(together, alone):
            worst = max(worst, float(np.max(np.abs(a[i : i + 1] - b))))
    return worst


def compare(tflite_path, onnx_path, inputs) -> float:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ConversionError(f"comparing with TFLite needs ai-edge-litert ({exc}); {_install_hint()}") from exc
    batch = np.ascontiguousarray(inputs, dtype=np.float32)
    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    in_index = interpreter.get_input_details()[0]["index"]
    out_indices = [d["index"] for d in interpreter.get_output_details()]
    session = _session(Path(onnx_path))
    name = session.get_inputs()[0].name
    if tuple(batch.shape[1:]) != tuple(interpreter.get_input_details()[0]["shape"][1:]):
        raise ConversionError(f"inputs of shape {batch.shape} do not fit {tflite_path}")
    worst = 0.0
    for item in batch:
        interpreter.set_tensor(in_index, item[None])
        interpreter.invoke()
        expected = [interpreter.get_tensor(i) for i in out_indices]
        got = session.run(None, {name: item[None]})
        worst = max([worst] + [float(np.max(np.abs(e - g))) for e, g in zip(expected, got)])
    return worst
