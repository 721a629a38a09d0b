"""A stand-in for selfie_multiclass_256x256.tflite, which no machine here has.

Same signature (1x256x256x3 float -> 1x256x256x6 logits), deterministic weights,
and MediaPipe-style metadata: normalization options, a label file and localized
label files packed as a zip archive after the flatbuffer.  Needs TensorFlow.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

LABELS = ("background", "hair", "body-skin", "face-skin", "clothes", "others")
LABELS_FR = ("arrière-plan", "cheveux", "peau du corps", "peau du visage", "vêtements", "autres")
LABELS_DE = ("Hintergrund", "Haare", "Körperhaut", "Gesichtshaut", "Kleidung", "Sonstiges")
MEAN = STD = 127.5


def make_standin_multiclass(path, *, batch_one_only: bool = False) -> Path:
    """Write the stand-in model to ``path`` and return the path.

    ``batch_one_only`` multiplies an NHWC tensor by a [1, C] one, which broadcasts
    only while the batch is 1: a model whose batch dimension cannot be freed.
    """
    path = Path(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    flatbuffer = _with_metadata(_convert(_network(batch_one_only)), _metadata_flatbuffer())
    path.write_bytes(flatbuffer)
    with zipfile.ZipFile(path, "a") as archive:  # appended after the flatbuffer, as MediaPipe does
        archive.writestr("labels.txt", "\n".join(LABELS) + "\n")
        archive.writestr("labels_fr.txt", "\n".join(LABELS_FR) + "\n")
        archive.writestr("labels_de.txt", "\n".join(LABELS_DE) + "\n")  # only findable by its name
    return path


def _network(batch_one_only: bool):
    """A small encoder-decoder with the patterns the real models have: strided conv,
    max pool, depthwise conv, squeeze-excite, bilinear upsampling."""
    import tensorflow as tf

    rng = np.random.default_rng(20240611)

    def weight(*shape):
        fan_in = int(np.prod(shape[:-1]))
        return tf.constant((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))

    w1, b1 = weight(3, 3, 3, 16), weight(1, 16)
    dw = weight(3, 3, 16, 1)
    se_down, se_up = weight(16, 4), weight(4, 16)
    w2, b2 = weight(3, 3, 16, 8), weight(1, 8)
    w_out, b_out = weight(1, 1, 8, 6), weight(1, 6)

    @tf.function(input_signature=[tf.TensorSpec([1, 256, 256, 3], tf.float32)])
    def network(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 2, "SAME") + b1)  # 128
        y = tf.nn.max_pool2d(y, 2, 2, "SAME")  # 64
        y = tf.nn.relu6(tf.nn.depthwise_conv2d(y, dw, [1, 1, 1, 1], "SAME"))
        if batch_one_only:  # TFLite folds the reshape into a [1, 16] broadcast
            excite = tf.sigmoid(tf.nn.relu(tf.reduce_mean(y, axis=[1, 2]) @ se_down) @ se_up)
            y = y * tf.reshape(excite, [1, 1, 1, 16])
        else:
            squeezed = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
            hidden = tf.nn.relu(tf.nn.conv2d(squeezed, se_down[None, None], 1, "SAME"))
            y = y * tf.sigmoid(tf.nn.conv2d(hidden, se_up[None, None], 1, "SAME"))
        y = tf.image.resize(y, [128, 128], method="bilinear")
        y = tf.nn.relu(tf.nn.conv2d(y, w2, 1, "SAME") + b2)
        y = tf.image.resize(y, [256, 256], method="bilinear")
        return tf.nn.conv2d(y, w_out, 1, "SAME") + b_out

    return network


def _convert(network) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([network.get_concrete_function()], network)
    return converter.convert()


def _metadata_flatbuffer() -> bytes:
    """ModelMetadata per tflite-support's metadata_schema.fbs (file identifier M001)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    def floats(values):
        b.StartVector(4, len(values), 4)
        for value in reversed(values):
            b.PrependFloat32(value)
        return b.EndVector()

    def associated_file(name, locale=None):
        name_off = b.CreateString(name)
        locale_off = b.CreateString(locale) if locale else None
        b.StartObject(4)
        b.PrependUOffsetTRelativeSlot(0, name_off, 0)
        b.PrependInt8Slot(2, 2, 0)  # TENSOR_AXIS_LABELS
        if locale_off is not None:
            b.PrependUOffsetTRelativeSlot(3, locale_off, 0)
        return b.EndObject()

    mean, std = floats([MEAN]), floats([STD])
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, mean, 0)
    b.PrependUOffsetTRelativeSlot(1, std, 0)
    normalization = b.EndObject()
    b.StartObject(2)  # ProcessUnit
    b.PrependUint8Slot(0, 1, 0)  # options_type = NormalizationOptions
    b.PrependUOffsetTRelativeSlot(1, normalization, 0)
    process_unit = b.EndObject()

    input_name, units = b.CreateString("image"), vector([process_unit])
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, input_name, 0)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    input_meta = b.EndObject()

    files = vector([associated_file("labels.txt"), associated_file("labels_fr.txt", "fr")])
    output_name = b.CreateString("segmentation")
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, output_name, 0)
    b.PrependUOffsetTRelativeSlot(6, files, 0)
    output_meta = b.EndObject()

    inputs, outputs = vector([input_meta]), vector([output_meta])
    b.StartObject(7)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraph = b.EndObject()

    model_name, subgraphs = b.CreateString("multiclass stand-in"), vector([subgraph])
    version = b.CreateString("1.0.0")
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, model_name, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(7, version, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def _with_metadata(model_bytes: bytes, metadata: bytes) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(model_bytes) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
