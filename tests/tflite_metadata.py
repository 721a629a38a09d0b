"""Write MediaPipe image-segmenter metadata into a TFLite file, as MediaPipe's metadata writer does.

Used by the tests (segtool's venv, TensorFlow's TFLite schema) and by
scripts/make_reference_masks.py (MediaPipe's venv, MediaPipe's copy of the same schema), so that
both sides run the very same model bytes.

tflite-support's writer cannot be installed beside TensorFlow here (it pins protobuf<4) and does
not write MediaPipe's SEGMENTER_METADATA (the activation), so the flatbuffers are built by hand,
per metadata_schema.fbs (file identifier M001) and MediaPipe's image_segmenter_metadata_schema.fbs
(V001). Label files go into a zip archive appended to the flatbuffer, where MediaPipe looks.
"""
from __future__ import annotations

import io
import zipfile
from typing import Optional, Sequence

ACTIVATIONS = {"none": 0, "sigmoid": 1, "softmax": 2}
_AXIS_LABELS = 2
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_IMAGE_PROPERTIES = 2  # ContentProperties
_RGB, _GRAYSCALE = 1, 2


def with_segmenter_metadata(model: bytes, *, labels: Optional[Sequence[str]] = None,
                            localized: Optional[dict] = None, mean: float = 127.5, std: float = 127.5,
                            activation: Optional[str] = "softmax") -> bytes:
    """``model`` (a TFLite file's bytes, its own metadata dropped) with new metadata.

    ``labels``: the default label file (labels.txt, no locale). ``localized``: locale -> labels,
    each its own label file with that locale (labels_<locale>.txt). ``activation``: None writes
    no SEGMENTER_METADATA at all.
    """
    files = {}
    if labels is not None:
        files[("labels.txt", None)] = labels
    for locale, names in (localized or {}).items():
        files[(f"labels_{locale}.txt", locale)] = names
    metadata = _metadata(list(files), mean, std, activation)
    data = _replace_metadata(model, metadata)
    if not files:
        return data
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:  # not a zip yet: a new archive goes after the flatbuffer
        for (name, _), names in files.items():
            archive.writestr(name, "\n".join(names) + "\n")
    return out.getvalue()


def _schema():
    try:
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError:  # MediaPipe's venv: its own copy of the TFLite schema
        from mediapipe.tasks.metadata import schema_py_generated as schema
    return schema


def _replace_metadata(model: bytes, metadata: bytes) -> bytes:
    import flatbuffers
    import numpy as np

    schema = _schema()
    unpacked = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    unpacked.metadata = [m for m in (unpacked.metadata or []) if m.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    unpacked.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(unpacked.buffers) - 1
    unpacked.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + len(metadata) + 4096)
    builder.Finish(unpacked.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _metadata(files: list, mean: float, std: float, activation: Optional[str]) -> bytes:
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

    def associated_file(name, locale):
        name_off = b.CreateString(name)
        locale_off = b.CreateString(locale) if locale else None
        b.StartObject(4)  # AssociatedFile{name 0, description 1, type 2, locale 3}
        b.PrependUOffsetTRelativeSlot(0, name_off, 0)
        b.PrependInt8Slot(2, _AXIS_LABELS, 0)
        if locale_off is not None:
            b.PrependUOffsetTRelativeSlot(3, locale_off, 0)
        return b.EndObject()

    def image_content(color_space):
        b.StartObject(2)  # ImageProperties{color_space 0, default_size 1}
        b.PrependInt8Slot(0, color_space, 0)
        properties = b.EndObject()
        b.StartObject(3)  # Content{content_properties_type 0, content_properties 1, range 2}
        b.PrependUint8Slot(0, _IMAGE_PROPERTIES, 0)
        b.PrependUOffsetTRelativeSlot(1, properties, 0)
        return b.EndObject()

    mean_off, std_off = floats([mean]), floats([std])
    b.StartObject(2)  # NormalizationOptions{mean 0, std 1}
    b.PrependUOffsetTRelativeSlot(0, mean_off, 0)
    b.PrependUOffsetTRelativeSlot(1, std_off, 0)
    normalization = b.EndObject()
    b.StartObject(2)  # ProcessUnit{options_type 0, options 1}
    b.PrependUint8Slot(0, _NORMALIZATION_OPTIONS, 0)
    b.PrependUOffsetTRelativeSlot(1, normalization, 0)
    units = vector([b.EndObject()])

    input_name, input_content = b.CreateString("image"), image_content(_RGB)
    b.StartObject(7)  # TensorMetadata{name 0, ..., content 3, process_units 4, ..., associated_files 6}
    b.PrependUOffsetTRelativeSlot(0, input_name, 0)
    b.PrependUOffsetTRelativeSlot(3, input_content, 0)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    input_meta = b.EndObject()

    label_files = vector([associated_file(name, locale) for name, locale in files]) if files else None
    output_name, output_content = b.CreateString("segmentation_masks"), image_content(_GRAYSCALE)
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, output_name, 0)
    b.PrependUOffsetTRelativeSlot(3, output_content, 0)
    if label_files is not None:
        b.PrependUOffsetTRelativeSlot(6, label_files, 0)
    output_meta = b.EndObject()

    custom = None
    if activation is not None:
        options = _segmenter_options(ACTIVATIONS[activation])
        data = b.CreateByteVector(options)
        custom_name = b.CreateString("SEGMENTER_METADATA")
        b.StartObject(2)  # CustomMetadata{name 0, data 1}
        b.PrependUOffsetTRelativeSlot(0, custom_name, 0)
        b.PrependUOffsetTRelativeSlot(1, data, 0)
        custom = vector([b.EndObject()])

    inputs, outputs = vector([input_meta]), vector([output_meta])
    b.StartObject(10)  # SubGraphMetadata{..., input 2, output 3, ..., custom_metadata 9}
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    if custom is not None:
        b.PrependUOffsetTRelativeSlot(9, custom, 0)
    subgraph = b.EndObject()

    model_name, subgraphs = b.CreateString("ImageSegmenter"), vector([subgraph])
    version = b.CreateString("1.5.0")  # min_parser_version: custom_metadata needs 1.5.0
    b.StartObject(8)  # ModelMetadata{name 0, ..., subgraph_metadata 3, ..., min_parser_version 7}
    b.PrependUOffsetTRelativeSlot(0, model_name, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(7, version, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def _segmenter_options(activation: int) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(64)
    b.StartObject(2)  # ImageSegmenterOptions{activation 0, min_parser_version 1}
    b.PrependInt8Slot(0, activation, -1)  # written even when 0 (NONE), as a reader may expect
    b.Finish(b.EndObject(), file_identifier=b"V001")
    return bytes(b.Output())


# ---- the custom model the tests and the MediaPipe fixtures share -----------------------------

VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
              "cow", "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
              "train", "tv")
VOC_FR = ("arrière-plan", "avion", "vélo", "oiseau", "bateau", "bouteille", "bus", "voiture", "chat", "chaise",
          "vache", "table à manger", "chien", "cheval", "moto", "personne", "plante en pot", "mouton", "canapé",
          "train", "télévision")
VOC_DE = ("Hintergrund", "Flugzeug", "Fahrrad", "Vogel", "Boot", "Flasche", "Bus", "Auto", "Katze", "Stuhl",
          "Kuh", "Esstisch", "Hund", "Pferd", "Motorrad", "Person", "Topfpflanze", "Schaf", "Sofa", "Zug",
          "Fernseher")
VOC_JA = ("背景", "飛行機", "自転車", "鳥", "ボート", "ボトル", "バス", "車", "猫", "椅子", "牛", "食卓", "犬", "馬",
          "オートバイ", "人", "鉢植え", "羊", "ソファ", "電車", "テレビ")


def custom_deeplab(models_dir) -> bytes:
    """DeepLab-v3's network with metadata written here: labels, three localized label files,
    normalization and MediaPipe's softmax activation."""
    from pathlib import Path

    source = (Path(models_dir) / "deeplab_v3.tflite").read_bytes()
    return with_segmenter_metadata(source, labels=VOC_LABELS, localized={"fr": VOC_FR, "de": VOC_DE, "ja": VOC_JA},
                                   mean=127.5, std=127.5, activation="softmax")


def custom_selfie(models_dir) -> bytes:
    """The legacy square selfie network (no metadata of its own) with one label, "person", mean 0 /
    std 255 and activation none: one probability channel, as MediaPipe's selfie models."""
    from pathlib import Path

    source = (Path(models_dir) / "selfie_segmentation.tflite").read_bytes()
    return with_segmenter_metadata(source, labels=("person",), localized={"fr": ("personne",)},
                                   mean=0.0, std=255.0, activation="none")
