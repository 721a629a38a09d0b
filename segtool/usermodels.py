"""Users' own models: a TFLite or ONNX file, its bytes, or one kept under a name (`models add`).

A model's facts come from the file itself, as MediaPipe reads them: input and output shapes,
and from TFLite metadata the labels, localized label files, input normalization and activation.
A facts file beside the model (``<model file>.json``) or, for ONNX, the file's metadata_props
give what the file lacks and override what it says. A TFLite file is converted to ONNX once and
cached by its sha256 in ``user_dir()/converted``; only that first use needs the convert extra.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .errors import ModelError, UsageError
from .modelspec import ModelSpec, ResolvedModel, extra_hint, user_dir

SUFFIXES = (".tflite", ".onnx")
FACT_KEYS = ("labels", "localized_labels", "normalization", "activation")
ACTIVATIONS = ("none", "sigmoid", "softmax")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def facts_path(model_file: Path) -> Path:
    """The facts file a user may put beside a model: ``my_model.tflite.json``, ``my_model.onnx.json``."""
    return model_file.with_name(model_file.name + ".json")


def looks_like_path(model) -> bool:
    """A path, not a name: an os.PathLike, or a string with a folder separator or a model suffix."""
    if isinstance(model, os.PathLike):
        return True
    text = str(model)
    return "/" in text or os.sep in text or text.lower().endswith(SUFFIXES)


# ---- resolving a file or bytes --------------------------------------------------------------

def resolve_file(path: Path, name: Optional[str] = None) -> ResolvedModel:
    """A model file (TFLite or ONNX, told apart by its bytes) with its facts file, if any."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: {'is a folder, not' if path.is_dir() else 'no such'} model file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file ({exc.strerror or exc})") from exc
    facts = read_facts_file(facts_path(path))
    return _resolve(data, str(path), name or path.name, facts, onnx_file=path)


def resolve_buffer(data: bytes) -> ResolvedModel:
    """A model file's bytes (MediaPipe's model_asset_buffer); ONNX bytes are cached to a file."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"model_buffer must be bytes, not {type(data).__name__}")
    return _resolve(bytes(data), "model_buffer", "model_buffer", {}, onnx_file=None)


def _resolve(data: bytes, origin: str, name: str, user_facts: dict, onnx_file: Optional[Path]) -> ResolvedModel:
    from .convert.metadata import is_tflite  # zipfile and friends: only for a file of the user's

    sha256 = hashlib.sha256(data).hexdigest()
    if is_tflite(data):
        return _resolve_tflite(data, sha256, origin, name, user_facts)
    kind = _foreign_kind(data)
    if kind or (onnx_file is not None and onnx_file.suffix.lower() == ".tflite"):
        raise ModelError(f"{origin}: not a TFLite or ONNX model ({kind or 'no TFLite identifier'})")
    return _resolve_onnx(data, sha256, origin, name, user_facts, onnx_file)


def _foreign_kind(data: bytes) -> Optional[str]:
    """What the bytes plainly are when they are no model (the user's message says it)."""
    if not data:
        return "an empty file"
    signatures = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image", b"GIF8": "a GIF image",
                  b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "a gzip archive", b"%PDF": "a PDF document",
                  b"{": "a JSON or text file", b"<": "an HTML or XML file"}
    head = data.lstrip()[:8] if data[:1].isspace() else data[:8]
    return next((kind for magic, kind in signatures.items() if head.startswith(magic)), None)


def _resolve_tflite(data: bytes, sha256: str, origin: str, name: str, user_facts: dict) -> ResolvedModel:
    from .convert.metadata import NotTFLiteError, check_complete, read_metadata

    try:
        check_complete(data)
        metadata = read_metadata(data)
    except NotTFLiteError as exc:
        raise ModelError(f"{origin}: damaged or truncated TFLite file ({exc})") from exc
    inputs, outputs = metadata.signature.inputs, metadata.signature.outputs
    if not inputs or not outputs:
        raise ModelError(f"{origin}: a TFLite model without inputs or outputs is not a segmenter")
    if inputs[0].dtype != "float32":
        raise ModelError(f"{origin}: input type {inputs[0].dtype}: segtool runs float32-input models "
                         "(quantized-input models are not supported)")
    file_facts = {"labels": metadata.labels, "localized_labels": metadata.localized_labels,
                  "activation": metadata.activation}
    if metadata.normalization:
        file_facts["normalization"] = {"mean": list(metadata.normalization.mean),
                                       "std": list(metadata.normalization.std)}
    facts = _merged(file_facts, user_facts)
    spec = _spec(name, origin, inputs[0].shape, outputs[0].shape, facts, sha256)
    onnx_path, onnx_sha256 = converted(data, sha256, origin)
    return ResolvedModel(_with_file(spec, onnx_path, onnx_sha256), onnx_path)


def _resolve_onnx(data: bytes, sha256: str, origin: str, name: str, user_facts: dict,
                  onnx_file: Optional[Path]) -> ResolvedModel:
    session = _probe_session(data, origin)
    first_in, first_out = session.get_inputs()[0], session.get_outputs()[0]
    if first_in.type != "tensor(float)":
        raise ModelError(f"{origin}: input type {first_in.type}: segtool runs float32-input models")
    props = session.get_modelmeta().custom_metadata_map or {}
    facts = _merged(_facts_from_props(props, origin), user_facts)
    spec = _spec(name, origin, _dims(first_in.shape), _dims(first_out.shape), facts, sha256)
    if onnx_file is None:
        onnx_file = _cache_bytes(data, sha256, origin)
        return ResolvedModel(_with_file(spec, onnx_file, sha256), onnx_file)
    return ResolvedModel(_with_file(spec, onnx_file, None), onnx_file)


def _probe_session(data: bytes, origin: str):
    """A CPU session, unoptimized, only to read the graph's inputs, outputs and metadata."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's untyped errors for foreign or damaged bytes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{origin}: not a TFLite model, and onnxruntime cannot load it as ONNX ({first})") from exc
    if not session.get_inputs() or not session.get_outputs():
        raise ModelError(f"{origin}: an ONNX model without inputs or outputs is not a segmenter")
    return session


def _dims(shape) -> tuple:
    return tuple(d if isinstance(d, int) else -1 for d in shape)


# ---- facts ------------------------------------------------------------------------------------

def read_facts_file(path: Path) -> dict:
    """A user's facts file, checked; {} when there is none."""
    if not path.is_file():
        return {}
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read this model facts file ({exc})") from exc
    return _checked_facts(facts, str(path))


def _facts_from_props(props: dict, origin: str) -> dict:
    """An ONNX file's metadata_props under the facts file's keys, each value JSON (activation: a word)."""
    facts = {}
    for key in FACT_KEYS:
        if key in props:
            value = props[key]
            try:
                facts[key] = json.loads(value)
            except ValueError:
                if key != "activation":
                    raise ModelError(f"{origin}: metadata_props '{key}' is not JSON") from None
                facts[key] = value
    return _checked_facts(facts, f"{origin} (metadata_props)")


def _checked_facts(facts, where: str) -> dict:
    if not isinstance(facts, dict):
        raise ModelError(f"{where}: the model facts must be a JSON object")
    unknown = sorted(set(facts) - set(FACT_KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(FACT_KEYS)})")
    labels = facts.get("labels")
    if labels is not None and not _names(labels):
        raise ModelError(f"{where}: 'labels' must be a list of names")
    localized = facts.get("localized_labels", {})
    if not isinstance(localized, dict) or not all(_names(v) for v in localized.values()):
        raise ModelError(f"{where}: 'localized_labels' must map a locale to a list of names")
    norm = facts.get("normalization")
    if norm is not None and not (isinstance(norm, dict) and set(norm) == {"mean", "std"}
                                 and all(_numbers(norm[k]) for k in ("mean", "std"))):
        raise ModelError(f"{where}: 'normalization' must be {{\"mean\": number, \"std\": number}}")
    if facts.get("activation") is not None and str(facts["activation"]).lower() not in ACTIVATIONS:
        raise ModelError(f"{where}: 'activation' must be one of {', '.join(ACTIVATIONS)}")
    return facts


def _names(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _numbers(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                for v in values)


def _merged(file_facts: dict, user_facts: dict) -> dict:
    """The user's facts over the file's; empty values in the file count as missing."""
    merged = {k: v for k, v in file_facts.items() if v}
    merged.update({k: v for k, v in user_facts.items() if v is not None})
    return merged


def _spec(name: str, origin: str, input_shape: tuple, output_shape: tuple, facts: dict, sha256: str) -> ModelSpec:
    height, width, channels = _input_size(input_shape, origin)
    out_channels = _output_channels(output_shape, origin)
    mean, std = _normalization(facts.get("normalization"), origin)
    activation = str(facts.get("activation") or "none").lower()
    if activation == "softmax" and out_channels == 1:
        raise ModelError(f"{origin}: softmax activation on a one-channel output; use sigmoid or none")
    labels, given = _labels(facts.get("labels"), out_channels, origin, "labels")
    localized = {locale: _labels(names, out_channels, origin, f"{locale} labels")[0]
                 for locale, names in (facts.get("localized_labels") or {}).items()}
    return ModelSpec(name=name, title=origin, file="", bundled=False, input_height=height, input_width=width,
                     input_channels=channels, mean=mean, std=std, activation=activation, labels=labels,
                     source_url=origin, source_file=Path(origin).name, source_sha256=sha256,
                     localized_labels=localized, custom=True, channels=out_channels, labels_given=given)


def _input_size(shape: tuple, origin: str) -> tuple[int, int, int]:
    if len(shape) == 4 and shape[0] in (1, -1) and all(d > 0 for d in shape[1:]) and shape[3] in (3, 4):
        return int(shape[1]), int(shape[2]), int(shape[3])
    hint = ""
    if len(shape) == 4 and shape[1] in (3, 4) and shape[3] not in (3, 4):
        hint = " (channels first: segtool runs NHWC models, as TFLite's are)"
    elif len(shape) == 4 and shape[3] in (3, 4) and min(shape[1:3]) < 0:
        hint = " (its height and width are not fixed: segtool needs a model of one input size)"
    raise ModelError(f"{origin}: input {_shape(shape)} is not an image (1, height, width, 3){hint}")


def _output_channels(shape: tuple, origin: str) -> int:
    if len(shape) == 4 and shape[0] in (1, -1) and all(d > 0 for d in shape[1:]) and min(shape[1:3]) > 1:
        return int(shape[3])
    raise ModelError(f"{origin}: output {_shape(shape)} is not a segmentation map (1, height, width, categories)")


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("?" if d < 0 else str(d) for d in shape) + ")"


def _normalization(norm: Optional[dict], origin: str) -> tuple[float, float]:
    """One mean and std for all channels; MediaPipe needs these facts too (0.10.21 crashes without)."""
    if not norm:
        raise ModelError(f"{origin}: no input normalization (mean, std) in the model's metadata; give it in "
                         f"{_facts_hint(origin)} as {{\"normalization\": {{\"mean\": 127.5, \"std\": 127.5}}}}")
    mean, std = (norm[k] if isinstance(norm[k], (list, tuple)) else [norm[k]] for k in ("mean", "std"))
    if len(set(mean)) > 1 or len(set(std)) > 1:
        raise ModelError(f"{origin}: per-channel normalization {list(mean)} / {list(std)} is not supported; "
                         "segtool takes one mean and one std")
    if std[0] == 0:
        raise ModelError(f"{origin}: normalization std is 0")
    return float(mean[0]), float(std[0])


def _facts_hint(origin: str) -> str:
    return "a facts file <model>.json" if origin == "model_buffer" else str(facts_path(Path(origin)))


def _labels(names, out_channels: int, origin: str, what: str) -> tuple[tuple[str, ...], bool]:
    """Labels in segtool's convention: a one-channel model has two, (background, its category)."""
    categories = max(out_channels, 2)
    if not names:
        return (("background", "foreground") if out_channels == 1
                else tuple(str(i) for i in range(categories))), False
    names = tuple(names)
    if out_channels == 1 and len(names) == 1:
        return ("background", *names), True
    if len(names) != categories:
        raise ModelError(f"{origin}: {len(names)} {what} for {out_channels} output channel(s)")
    return names, True


def _with_file(spec: ModelSpec, onnx_path: Path, onnx_sha256: Optional[str]) -> ModelSpec:
    return replace(spec, file=str(onnx_path), onnx_sha256=onnx_sha256)


# ---- the conversion cache -------------------------------------------------------------------

def cache_dir() -> Path:
    return user_dir() / "converted"


def converted(data: bytes, sha256: str, origin: str) -> tuple[Path, str]:
    """The cached ONNX conversion of TFLite ``data`` and its sha256; converts it on first use.

    Safe when several processes use a new file at once: each converts into a temporary folder
    and renames the result into place (a lock, where the OS has one, spares the repeated work).
    """
    folder = _writable(cache_dir())
    onnx_path, record = folder / f"{sha256}.onnx", folder / f"{sha256}.json"
    cached = _cached(onnx_path, record)
    if cached:
        return onnx_path, cached
    with _locked(folder / ".lock"):  # one for the folder: conversions are rare, files stay few
        cached = _cached(onnx_path, record)
        if cached:
            return onnx_path, cached
        onnx_sha256 = _convert(data, origin, folder, onnx_path)
        _write_atomic(record, json.dumps({"onnx_sha256": onnx_sha256, "source": origin,
                                          "source_sha256": sha256}, indent=2).encode())
    return onnx_path, onnx_sha256


def _cached(onnx_path: Path, record: Path) -> Optional[str]:
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        digest = json.loads(record.read_text(encoding="utf-8")).get("onnx_sha256")
        if isinstance(digest, str) and onnx_path.is_file():
            return digest
    return None


def _convert(data: bytes, origin: str, folder: Path, onnx_path: Path) -> str:
    from .convert import ConversionError, convert_tflite, quiet_native_logs

    with tempfile.TemporaryDirectory(dir=folder, prefix=".converting-") as work:
        tflite = Path(work) / "model.tflite"
        tflite.write_bytes(data)
        try:
            with quiet_native_logs():  # TensorFlow logs from C++ as it is imported, too
                _require_converters(origin)
                report = convert_tflite(tflite, Path(work) / "model.onnx")
        except ConversionError as exc:
            message = str(exc).replace(str(tflite), origin)
            raise ModelError(f"{origin}: cannot convert this TFLite model to ONNX "
                             f"({message.replace(origin + ': ', '')})") from exc
        os.replace(report.onnx_path, onnx_path)
    return report.onnx_sha256


def _require_converters(origin: str) -> None:
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401  (imports TensorFlow)
    except ImportError as exc:
        hint = extra_hint("convert")
        also = "" if hint == "pip install 'segtool[convert]'" else f" (from this checkout: {hint})"
        raise ModelError(f"{origin}: converting a TFLite model (once; then it is cached) needs the convert "
                         f"extra ({exc.name or exc} is missing): pip install 'segtool[convert]'{also}") from exc


def _cache_bytes(data: bytes, sha256: str, origin: str) -> Path:
    path = _writable(cache_dir()) / f"{sha256}.onnx"
    if not path.is_file():
        _write_atomic(path, data)
    return path


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{folder}: cannot keep models there ({exc.strerror or exc}); "
                         "set SEGTOOL_MODELS_DIR to a writable folder") from exc
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.part-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ModelError(f"{path}: cannot write ({exc.strerror or exc}); "
                         "set SEGTOOL_MODELS_DIR to a writable folder") from exc


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # Windows: the atomic renames alone keep the cache whole
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reconvert_hint(spec: ModelSpec) -> str:
    if spec.onnx_sha256 and Path(spec.file).parent == cache_dir():
        return f"delete {spec.file} and use the model again: segtool converts it anew"
    return f"check the model file {spec.source_url}"


# ---- models kept under a name -----------------------------------------------------------------

def added_dir() -> Path:
    return user_dir() / "added"


def added_names() -> list[str]:
    folder = added_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def added_file(name: str) -> Optional[Path]:
    for suffix in SUFFIXES:
        path = added_dir() / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def add(name: str, file: Path, *, taken: list[str], force: bool = False) -> ResolvedModel:
    """Keep a copy of ``file`` (and its facts file) under ``name``, checked and converted first.

    ``taken``: names that may not be reused (the manifest's).
    """
    if not _NAME.fullmatch(name) or name.lower().endswith(SUFFIXES):
        raise UsageError(f"'{name}' is not a model name: use letters, digits, '_', '-' and '.', "
                         "and no .tflite/.onnx ending")
    if name in taken:
        raise UsageError(f"'{name}' is a built-in model's name; choose another")
    existing = added_file(name)
    if existing is not None and not force:
        raise UsageError(f"model '{name}' is already added; --force replaces it")
    file = Path(file).expanduser()
    resolve_file(file, name=name)  # refused here, before anything is kept, if it cannot run
    from .convert.metadata import is_tflite

    suffix = ".tflite" if is_tflite(file.read_bytes()[:8]) else ".onnx"
    folder = _writable(added_dir())
    target = folder / f"{name}{suffix}"
    _write_atomic(target, file.read_bytes())
    facts = facts_path(file)
    if facts.is_file():
        _write_atomic(facts_path(target), facts.read_bytes())
    else:
        with contextlib.suppress(FileNotFoundError):
            facts_path(target).unlink()
    if existing is not None and existing != target:
        remove_files(existing)
    return resolve_file(target, name=name)


def remove(name: str) -> Path:
    path = added_file(name)
    if path is None:
        raise UsageError(f"no model '{name}' was added (see `segtool models list`)")
    remove_files(path)
    return path


def remove_files(path: Path) -> None:
    for each in (path, facts_path(path)):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()

