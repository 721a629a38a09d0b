"""The device graph: normalisation, network, upsampling and the argmax in one ONNX graph.

On CUDA the exact path spends most of an image's time on the CPU around a network that takes a
millisecond: the float tensor's upload, 21 full-size DeepLab masks upsampled one by one, a
per-pixel argmax, and the result's download. This module wraps the model's network in one graph
that onnxruntime's CUDA provider runs from end to end:

    pixels  uint8 (N, h, w, 3)  the model-size pixels (preprocess.resample_to_model, on the CPU)
    size    int64 (2,)          the images' height and width (one size per call)
      -> Gather(value table)    the exact float tensor of preprocess.image_to_tensor
      -> [hair: + a zero 4th channel, as MediaPipe feeds still images]
      -> network
      -> confidence  float32 (N, C, H, W): activation on the grid, then half-pixel bilinear
                     (MediaPipe's cv::resize INTER_LINEAR); one-channel models give (1 - p, p)
      -> category    uint8 (N, H, W): corner-aligned bilinear of the raw values, [sigmoid],
                     first maximum (MediaPipe's ProcessForCategoryMaskCpu)

Only the outputs asked for are in the graph: a category-only graph never builds a full-size
confidence mask on the host. Resampling to the model's size stays on the CPU: it is exact
there (OpenCV 4's fixed-point warp, preprocess.py), 0.2 ms, runs on --jobs threads, and sends
the GPU 192 KiB per image instead of a 6 MiB 1080p frame.

The same graph runs on the CPU provider, which is how tests compare it with the exact path
(float operation order differs: confidences by up to 1e-5, the category at near-ties only). It needs
the ``onnx`` package to build; without it segtool keeps the exact path and says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .preprocess import value_table

_P = "segtool_"  # prefix of every name this module adds, apart from the network's


@dataclass(frozen=True)
class GraphOutputs:
    """Which outputs a device graph computes."""

    confidence: bool = True
    category: bool = False
    subject: Optional[tuple[int, ...]] = None  # the categories whose masks the subject alpha adds up


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def build(model_path: Path, spec, wanted: GraphOutputs) -> bytes:
    """The serialised device graph around the network in ``model_path`` (a segtool ONNX model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    network_input, network_output = graph.input[0].name, graph.output[0].name
    channels = graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    height, width = spec.input_size
    inputs = [helper.make_tensor_value_info(_P + "pixels", TensorProto.UINT8, ["batch", height, width, 3]),
              helper.make_tensor_value_info(_P + "size", TensorProto.INT64, [2])]
    outputs = []
    if wanted.confidence:
        outputs.append(helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["batch", "C", "H", "W"]))
    if wanted.category:
        outputs.append(helper.make_tensor_value_info("category", TensorProto.UINT8, ["batch", "H", "W"]))
    if wanted.subject:
        outputs.append(helper.make_tensor_value_info("subject", TensorProto.FLOAT, ["batch", "H", "W"]))
    constants = [numpy_helper.from_array(value_table(float(spec.mean), float(spec.std)), _P + "table")]
    constants += [numpy_helper.from_array(np.asarray(c, np.int64), f"{_P}class_{c}") for c in set(wanted.subject or ())]
    constants += [numpy_helper.from_array(np.asarray(v, np.int64), _P + n) for n, v in _INT_CONSTANTS.items()]
    constants += [numpy_helper.from_array(np.asarray([v], np.float32), _P + n) for n, v in _FLOAT_CONSTANTS.items()]
    nodes = (_pre_nodes(helper, network_input, spec.input_channels) + list(graph.node)
             + _post_nodes(helper, network_output, channels, spec.activation, wanted))
    wrapped = helper.make_graph(nodes, "segtool_device_graph", inputs, outputs,
                                initializer=[*constants, *graph.initializer], value_info=list(graph.value_info))
    return helper.make_model(wrapped, opset_imports=list(model.opset_import),
                             ir_version=model.ir_version).SerializeToString()


_INT_CONSTANTS = {"zero": [0], "two": [2], "three": [3], "channel_axis": [1]}
_FLOAT_CONSTANTS = {"half": 0.5, "one": 1.0, "nothing": 0.0}


def _pre_nodes(helper, network_input: str, input_channels: int) -> list:
    """uint8 pixels -> the exact float tensor (a 256-entry table lookup), 4 channels for hair."""
    rgb = _P + "rgb" if input_channels == 4 else network_input
    nodes = [helper.make_node("Cast", [_P + "pixels"], [_P + "levels"], to=7),  # int64: Gather's index
             helper.make_node("Gather", [_P + "table", _P + "levels"], [rgb], axis=0)]
    if input_channels == 4:  # MediaPipe feeds the hair network zeros for still images
        nodes += [
            helper.make_node("Shape", [rgb], [_P + "rgb_shape"]),
            helper.make_node("Slice", [_P + "rgb_shape", _P + "zero", _P + "three"], [_P + "nhw"]),
            helper.make_node("Concat", [_P + "nhw", _P + "channel_axis"], [_P + "zeros_shape"], axis=0),
            helper.make_node("ConstantOfShape", [_P + "zeros_shape"], [_P + "zeros"],
                             value=helper.make_tensor("value", 1, [1], [0.0])),
            helper.make_node("Concat", [rgb, _P + "zeros"], [network_input], axis=3),
        ]
    return _named(nodes, "pre/")


def _post_nodes(helper, network_output: str, channels: int, activation: str, wanted: GraphOutputs) -> list:
    raw, sizes = _P + "raw", _P + "sizes"
    nodes = [
        helper.make_node("Transpose", [network_output], [raw], perm=[0, 3, 1, 2]),  # NHWC -> NCHW
        helper.make_node("Shape", [raw], [_P + "raw_shape"]),
        helper.make_node("Slice", [_P + "raw_shape", _P + "zero", _P + "two"], [_P + "nc"]),
        helper.make_node("Concat", [_P + "nc", _P + "size"], [sizes], axis=0),  # (N, C, H, W)
    ]
    # The subject alpha adds up full-size masks on the device; they come back only if asked for.
    masks = "confidence" if wanted.confidence else _P + "confidence"
    if wanted.confidence or wanted.subject:
        nodes += _confidence_nodes(helper, raw, sizes, channels, activation, masks)
    if wanted.category:
        nodes += _category_nodes(helper, raw, sizes, channels, activation)
    if wanted.subject:
        nodes += _subject_nodes(helper, masks, wanted.subject)
    return _named(nodes, "post/")


def _named(nodes: list, stage: str) -> list:
    for node in nodes:
        node.name = _P + stage + node.output[0]
    return nodes


def _activation(helper, source: str, target: str, activation: str) -> list:
    if activation == "softmax":
        return [helper.make_node("Softmax", [source], [target], axis=1)]
    if activation == "sigmoid":
        return [helper.make_node("Sigmoid", [source], [target])]
    return [helper.make_node("Identity", [source], [target])]


def _confidence_nodes(helper, raw: str, sizes: str, channels: int, activation: str, masks: str) -> list:
    grid, up = _P + "probabilities", _P + "confidence_up"
    nodes = _activation(helper, raw, grid, activation)
    nodes.append(helper.make_node("Resize", [grid, "", "", sizes], [masks if channels > 1 else up],
                                  mode="linear", coordinate_transformation_mode="half_pixel"))
    if channels == 1:  # (1 - p, p): background, person
        nodes += [helper.make_node("Sub", [_P + "one", up], [_P + "background"]),
                  helper.make_node("Concat", [_P + "background", up], [masks], axis=1)]
    return nodes


def _subject_nodes(helper, masks: str, classes: tuple[int, ...]) -> list:
    """postprocess.subject_probability on the device: the masks of ``classes`` added up in the
    same order, clipped to [0, 1] (one class: its mask as it is)."""
    picked = [f"{_P}subject_{i}" for i in range(len(classes))]
    nodes = [helper.make_node("Gather", [masks, f"{_P}class_{c}"], [name], axis=1)
             for c, name in zip(classes, picked)]
    if len(classes) == 1:
        return nodes + [helper.make_node("Identity", picked, ["subject"])]
    total = picked[0]
    for index, name in enumerate(picked[1:], start=1):
        nodes.append(helper.make_node("Add", [total, name], [f"{_P}subject_sum_{index}"]))
        total = f"{_P}subject_sum_{index}"
    return nodes + [helper.make_node("Min", [total, _P + "one"], [_P + "subject_at_most_one"]),
                    helper.make_node("Max", [_P + "subject_at_most_one", _P + "nothing"], ["subject"])]


def _category_nodes(helper, raw: str, sizes: str, channels: int, activation: str) -> list:
    up, decided = _P + "category_up", _P + "category_values"
    nodes = [helper.make_node("Resize", [raw, "", "", sizes], [up], mode="linear",
                              coordinate_transformation_mode="align_corners")]
    # Sigmoid as MediaPipe applies it (float32 saturation can make ties); softmax keeps the argmax.
    nodes += _activation(helper, up, decided, "sigmoid" if activation == "sigmoid" else "none")
    if channels == 1:
        nodes += [helper.make_node("Greater", [decided, _P + "half"], [_P + "person"]),
                  helper.make_node("Squeeze", [_P + "person", _P + "channel_axis"], [_P + "person_hw"]),
                  helper.make_node("Cast", [_P + "person_hw"], ["category"], to=2)]
    else:
        nodes += [helper.make_node("ArgMax", [decided], [_P + "argmax"], axis=1, keepdims=0),  # first maximum
                  helper.make_node("Cast", [_P + "argmax"], ["category"], to=2)]
    return nodes


class DeviceGraph:
    """A device graph's session: model-size pixels of images of one size in, their masks out."""

    def __init__(self, session, wanted: GraphOutputs):
        self._session = session
        self.wanted = wanted

    @property
    def providers(self) -> list[str]:
        return self._session.providers

    def run(self, pixels: list[np.ndarray], image_size: tuple[int, int]) -> list[tuple]:
        """``(confidence (C, H, W), category (H, W), subject (H, W))`` per image, in order; each
        None when not asked for."""
        batch = pixels[0][None] if len(pixels) == 1 else np.stack(pixels)
        out = self._session.run_all({_P + "pixels": batch, _P + "size": np.asarray(image_size, np.int64)})
        wanted = [out.get(name) for name in ("confidence", "category", "subject")]
        return [tuple(None if each is None else each[i] for each in wanted) for i in range(len(pixels))]
