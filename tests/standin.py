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

from tflite_metadata import with_segmenter_metadata

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
    # No SEGMENTER_METADATA: the activation is left to segtool's default, as for files without it.
    path.write_bytes(with_segmenter_metadata(_convert(_network(batch_one_only)), labels=LABELS,
                                             localized={"fr": LABELS_FR}, mean=MEAN, std=STD, activation=None))
    with zipfile.ZipFile(path, "a") as archive:
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
