"""What a TFLite file says about itself, read without TensorFlow.

A tiny read-only flatbuffer walker covers the few tables needed (the TFLite
model schema and MediaPipe's TFLite metadata schema), so that a download can be
checked, and its labels and normalization read, on a machine without the
``convert`` extra.  MediaPipe model files with metadata are also zip archives:
the label files are appended to the flatbuffer.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
from pathlib import Path

TFLITE_MAGIC = b"TFL3"
_METADATA_NAME = b"TFLITE_METADATA"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union tag in metadata_schema.fbs
_LABEL_FILE_TYPES = (2, 3)  # TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS
_AXIS_LABELS = 2
_SEGMENTER_METADATA = "SEGMENTER_METADATA"  # MediaPipe's custom metadata holding ImageSegmenterOptions
ACTIVATIONS = {0: "none", 1: "sigmoid", 2: "softmax"}  # image_segmenter_metadata_schema.fbs
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8"}


class NotTFLiteError(ValueError):
    """The bytes are not a TFLite flatbuffer (or are truncated)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclasses.dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclasses.dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    signature: Signature
    normalization: Normalization | None
    labels: tuple[str, ...] | None
    localized_labels: dict[str, tuple[str, ...]]
    has_metadata: bool
    activation: str | None = None  # MediaPipe's SEGMENTER_METADATA; None when the file has none


class _Table:
    """A flatbuffer table: fields are looked up by slot number through the vtable."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vtable = vtable
        self._vtable_len = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, slot: int) -> int:
        off = 4 + 2 * slot
        if off >= self._vtable_len:
            return 0
        rel = struct.unpack_from("<H", self.buf, self._vtable + off)[0]
        return self.pos + rel if rel else 0

    def _deref(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def scalar(self, slot: int, fmt: str, default=0):
        at = self._field(slot)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def table(self, slot: int) -> "_Table | None":
        at = self._field(slot)
        return _Table(self.buf, self._deref(at)) if at else None

    def string(self, slot: int) -> str | None:
        data = self.bytes(slot)
        return None if data is None else data.decode("utf-8")

    def bytes(self, slot: int) -> bytes | None:
        at = self._field(slot)
        if not at:
            return None
        start = self._deref(at)
        n = struct.unpack_from("<I", self.buf, start)[0]
        return bytes(self.buf[start + 4 : start + 4 + n])

    def vector(self, slot: int, fmt: str) -> tuple:
        at = self._field(slot)
        if not at:
            return ()
        start = self._deref(at)
        n = struct.unpack_from("<I", self.buf, start)[0]
        return struct.unpack_from(f"<{n}{fmt}", self.buf, start + 4)

    def tables(self, slot: int) -> list["_Table"]:
        at = self._field(slot)
        if not at:
            return []
        start = self._deref(at)
        n = struct.unpack_from("<I", self.buf, start)[0]
        return [_Table(self.buf, self._deref(start + 4 + 4 * i)) for i in range(n)]


def is_tflite(data: bytes) -> bool:
    return len(data) >= 8 and data[4:8] == TFLITE_MAGIC


def _root(data: bytes) -> _Table:
    if not is_tflite(data):
        raise NotTFLiteError("not a TFLite flatbuffer (no 'TFL3' identifier at offset 4)")
    try:
        return _Table(data, struct.unpack_from("<I", data, 0)[0])
    except struct.error as exc:
        raise NotTFLiteError(f"truncated TFLite flatbuffer: {exc}") from exc


def _tensor_info(tensor: _Table) -> TensorInfo:
    # Schema: Tensor{shape 0, type 1, buffer 2, name 3, ..., shape_signature 7}
    return TensorInfo(
        name=tensor.string(3) or "",
        shape=tuple(tensor.vector(0, "i")),
        dtype=_TENSOR_TYPES.get(tensor.scalar(1, "b"), "other"),
    )


def read_signature(data: bytes) -> Signature:
    """Input/output tensors of the main subgraph; raises NotTFLiteError on foreign bytes."""
    model = _root(data)
    try:
        subgraphs = model.tables(2)  # Model{..., subgraphs 2, ...}
        main = subgraphs[0]
        tensors = main.tables(0)
        return Signature(
            inputs=tuple(_tensor_info(tensors[i]) for i in main.vector(1, "i")),
            outputs=tuple(_tensor_info(tensors[i]) for i in main.vector(2, "i")),
        )
    except (struct.error, IndexError) as exc:
        raise NotTFLiteError(f"malformed TFLite flatbuffer: {exc}") from exc


def check_complete(data: bytes) -> None:
    """Raise NotTFLiteError unless every tensor buffer lies inside ``data`` (a truncated file's do not)."""
    model = _root(data)
    try:
        for buffer in model.tables(4):  # Buffer{data 0, offset 1, size 2}
            at = buffer._field(0)
            if at:
                start = buffer._deref(at)
                if start + 4 + struct.unpack_from("<I", data, start)[0] > len(data):
                    raise NotTFLiteError("truncated TFLite file: a weight buffer runs past its end")
            offset, size = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
            if offset > 1 and offset + size > len(data):
                raise NotTFLiteError("truncated TFLite file: a weight buffer runs past its end")
        read_signature(data)
    except (struct.error, IndexError) as exc:
        raise NotTFLiteError("truncated or damaged TFLite flatbuffer (an offset points past its end)") from exc


def read_tensor_names(data: bytes) -> set[str]:
    """Names of all tensors in all subgraphs."""
    return {t.string(3) or "" for graph in _root(data).tables(2) for t in graph.tables(0)}


def check_signature(path, inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> Signature:
    """Raise NotTFLiteError unless the file is a TFLite model with exactly these I/O shapes."""
    data = Path(path).read_bytes()
    sig = read_signature(data)
    got_in = [t.shape for t in sig.inputs]
    got_out = [t.shape for t in sig.outputs]
    if got_in != [tuple(s) for s in inputs] or got_out != [tuple(s) for s in outputs]:
        raise NotTFLiteError(
            f"{path}: unexpected model signature {got_in} -> {got_out}, "
            f"expected {[tuple(s) for s in inputs]} -> {[tuple(s) for s in outputs]}"
        )
    return sig


def _metadata_buffer(data: bytes, model: _Table) -> bytes | None:
    buffers = model.tables(4)  # Model{..., buffers 4, ..., metadata 6}
    for entry in model.tables(6):
        if entry.bytes(0) == _METADATA_NAME:
            buf = buffers[entry.scalar(1, "I")]
            blob = buf.bytes(0)
            offset, size = buf.scalar(1, "Q"), buf.scalar(2, "Q")
            if not blob and offset > 1:  # models over 2 GB keep buffers after the flatbuffer
                blob = data[offset : offset + size]
            return blob or None
    return None


def _normalization(tensor_meta: _Table) -> Normalization | None:
    # TensorMetadata{..., process_units 4}; ProcessUnit{options_type 0, options 1}
    for unit in tensor_meta.tables(4):
        if unit.scalar(0, "B") == _NORMALIZATION_OPTIONS:
            opts = unit.table(1)
            return Normalization(mean=tuple(opts.vector(0, "f")), std=tuple(opts.vector(1, "f")))
    return None


def _label_files(tensor_meta: _Table) -> list[tuple[str, str | None, int]]:
    # AssociatedFile{name 0, description 1, type 2, locale 3}
    return [
        (f.string(0), f.string(3) or None, f.scalar(2, "b"))
        for f in tensor_meta.tables(6)
        if f.scalar(2, "b") in _LABEL_FILE_TYPES and f.string(0)
    ]


def _read_lines(archive: zipfile.ZipFile | None, name: str) -> tuple[str, ...] | None:
    if archive is None or name not in archive.namelist():
        return None
    lines = [line.strip() for line in archive.read(name).decode("utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)  # blank lines inside keep their index: line i names class i


def _open_archive(data: bytes) -> zipfile.ZipFile | None:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return None


def read_metadata(path_or_bytes) -> ModelMetadata:
    """Signature, normalization, labels and activation of a TFLite file (a path or its bytes);
    missing parts are None / empty. Raises NotTFLiteError on foreign, truncated or damaged bytes.

    As MediaPipe reads them: the labels are the output tensor's first TENSOR_AXIS_LABELS file,
    whatever its locale; every label file with a locale is a display-name file for that locale.
    """
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray, memoryview)) \
        else Path(path_or_bytes).read_bytes()
    data = bytes(data)
    signature = read_signature(data)
    try:
        return _read_metadata(data, signature)
    except (struct.error, IndexError, UnicodeDecodeError, zipfile.BadZipFile, KeyError) as exc:
        raise NotTFLiteError(f"damaged TFLite metadata ({type(exc).__name__}: {exc})") from exc


def _read_metadata(data: bytes, signature: Signature) -> ModelMetadata:
    blob = _metadata_buffer(data, _root(data))
    if blob is None:
        return ModelMetadata(signature, None, None, {}, has_metadata=False)
    # ModelMetadata{..., subgraph_metadata 3}; SubGraphMetadata{input 2, output 3, ..., custom_metadata 9}
    subgraphs = _Table(blob, struct.unpack_from("<I", blob, 0)[0]).tables(3)
    if not subgraphs:
        return ModelMetadata(signature, None, None, {}, has_metadata=True)
    subgraph = subgraphs[0]
    inputs, outputs = subgraph.tables(2), subgraph.tables(3)
    normalization = _normalization(inputs[0]) if inputs else None
    archive = _open_archive(data)
    labels, localized = None, {}
    files = _label_files(outputs[0]) if outputs else []
    axis_first = sorted(files, key=lambda f: f[2] != _AXIS_LABELS)  # stable: MediaPipe's choice first
    for name, locale, _ in axis_first:
        lines = _read_lines(archive, name)
        if lines is None:
            continue
        if labels is None:
            labels = lines
        if locale is not None:
            localized.setdefault(locale, lines)
    localized.update(_localized_by_file_name(archive, localized))
    return ModelMetadata(signature, normalization, labels, localized, has_metadata=True,
                         activation=_activation(subgraph))


def _activation(subgraph: _Table) -> str | None:
    # CustomMetadata{name 0, data 1}; the data is an ImageSegmenterOptions flatbuffer {activation 0}
    for custom in subgraph.tables(9):
        if custom.string(0) == _SEGMENTER_METADATA:
            options = custom.bytes(1) or b""
            if len(options) < 8:
                return None
            value = _Table(options, struct.unpack_from("<I", options, 0)[0]).scalar(0, "b")
            return ACTIVATIONS.get(value)
    return None


def _localized_by_file_name(archive: zipfile.ZipFile | None, known: dict) -> dict[str, tuple[str, ...]]:
    """Label files named labels_<locale>.txt that the metadata does not list."""
    found = {}
    for name in archive.namelist() if archive else []:
        stem = Path(name).stem
        if Path(name).suffix == ".txt" and stem.startswith("labels_"):
            locale = stem[len("labels_") :]
            if locale and locale not in known:
                found[locale] = _read_lines(archive, name)
    return found
