"""Model facts from models/manifest.json, where model files live, and checks that they are intact.

`resolve` turns what a user names (a manifest name, an added name, a file, bytes) into a ResolvedModel.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Optional, Union

from . import digest_cache, usermodels
from .errors import ModelError, ModelNotInstalledError
from .modelspec import (ModelSpec, ResolvedModel, extra_hint, sha256_of, source_checkout,  # noqa: F401 (API)
                        spec_fields, user_dir)

MANIFEST_NAME = "manifest.json"


def bundled_dir() -> Path:
    """models/ beside the package in a checkout; share/segtool/models in a wheel install.

    SEGTOOL_BUNDLED_DIR overrides both (tests point it at a copy they may damage).
    """
    if os.environ.get("SEGTOOL_BUNDLED_DIR"):
        return Path(os.environ["SEGTOOL_BUNDLED_DIR"]).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "models"
    if (checkout / MANIFEST_NAME).is_file():
        return checkout
    return Path(sys.prefix) / "share" / "segtool" / "models"


def load_manifest(path: Optional[Path] = None) -> dict[str, ModelSpec]:
    path = path or bundled_dir() / MANIFEST_NAME
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read the model manifest ({exc})") from exc
    return {name: ModelSpec(name=name, **_defaults(spec_fields(e))) for name, e in entries.items()}


def _defaults(fields: dict) -> dict:
    fields = dict(fields)
    fields["localized_labels"] = fields.get("localized_labels") or {}
    fields["license"] = fields.get("license") or ""
    return fields


def spec_for(name: str) -> ModelSpec:
    specs = load_manifest()
    if name not in specs:
        raise ModelError(f"unknown model '{name}': choose one of {', '.join(specs)} (see `segtool models list`)")
    return specs[name]


def model_names() -> list[str]:
    """Every name `--model` takes: the manifest's, then those kept with `segtool models add`."""
    return [*load_manifest(), *(n for n in usermodels.added_names() if n not in load_manifest())]


def resolve(model: Union[str, os.PathLike] = "selfie", buffer: Optional[bytes] = None) -> ResolvedModel:
    """The ONNX file and facts behind what a user names as a model.

    ``buffer``: a TFLite or ONNX file's bytes (MediaPipe's ``model_asset_buffer``); it wins over
    ``model``. ``model``: a manifest name, a name kept with `segtool models add`, or a path (an
    ``os.PathLike`` is always a path; a string is one when it has a folder separator or ends in
    .tflite / .onnx). Raises ModelError, one line naming the model, for anything unusable.
    """
    if buffer is not None:
        return usermodels.resolve_buffer(buffer)
    if usermodels.looks_like_path(model):
        path = Path(os.fspath(model)).expanduser()
        return _known_onnx(path) or usermodels.resolve_file(path)
    name = str(model)
    if name in load_manifest():
        return locate(name)
    added = usermodels.added_file(name)
    if added is not None:
        return usermodels.resolve_file(added, name=name)
    raise ModelError(f"unknown model '{name}': choose one of {', '.join(model_names())}, or give a "
                     ".tflite or .onnx file (see `segtool models list`)")


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def installed_path(spec: ModelSpec) -> Path:
    return user_dir() / spec.file


def locate(name: str) -> ResolvedModel:
    """Find a model's ONNX file and its facts; bundled first, then the user's model directory."""
    spec = spec_for(name)
    if spec.bundled:
        path = bundled_dir() / spec.file
        if path.is_file():
            return ResolvedModel(spec, path)
    path = installed_path(spec)
    if not path.is_file():
        raise ModelNotInstalledError(
            f"model '{name}' is not installed: run `segtool models install {name}`"
        )
    return ResolvedModel(spec.with_facts(_read_sidecar(path, spec)), path)


def _known_onnx(path: Path) -> Optional[ResolvedModel]:
    """segtool's own conversion of a manifest model (models/deeplab.onnx, an installed hair.onnx),
    named by its path: the manifest's facts, unless a facts file beside it says otherwise."""
    if path.suffix.lower() != ".onnx" or not path.is_file() or usermodels.facts_path(path).is_file():
        return None
    try:
        digest = sha256_of(path)
    except OSError:
        return None  # resolve_file says why
    for name in load_manifest():
        try:
            known = locate(name)
        except ModelError:
            continue
        if known.spec.onnx_sha256 == digest:
            return ResolvedModel(known.spec, path)
    return None


def _read_sidecar(model_path: Path, spec: ModelSpec) -> dict:
    try:
        facts = json.loads(sidecar_path(model_path).read_text(encoding="utf-8"))
        problem = record_problem(facts, spec)
    except (OSError, ValueError) as exc:  # a truncated record or one that is not UTF-8 among them
        problem = str(exc)
    if problem:
        raise ModelError(f"{model_path}: its install record is missing or damaged ({problem}); "
                         f"{reinstall_hint(spec)}")
    return facts


def record_problem(facts, spec: ModelSpec) -> Optional[str]:
    """What is wrong with an install record (the .json beside an installed model), or None.

    `models install` writes it; anything else there (null, a list, wrong types, a label list
    of another length) would otherwise surface as a traceback far from the file at fault.
    """
    if not isinstance(facts, dict):
        return f"it holds {_JSON_KINDS.get(type(facts), type(facts).__name__)}, not an object"
    digest = facts.get("onnx_sha256")
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        return "no valid onnx_sha256"
    size, norm = facts.get("input", {}), facts.get("normalization", {})
    if not isinstance(size, dict) or not all(_is_count(size.get(k, 1)) for k in ("height", "width", "channels")):
        return "'input' is not positive height, width and channels"
    if not isinstance(norm, dict) or not all(_is_number(norm.get(k, 1)) for k in ("mean", "std")) \
            or norm.get("std") == 0:
        return "'normalization' is not a finite mean and a non-zero std"
    localized = facts.get("localized_labels", {})
    if not isinstance(localized, dict):
        return "'localized_labels' is not an object"
    for key, labels in (("en", facts.get("labels", spec.labels)), *localized.items()):
        if not (isinstance(labels, (list, tuple)) and len(labels) == len(spec.labels)
                and all(isinstance(label, str) for label in labels)):
            return f"the {key} labels are not {len(spec.labels)} names"
    return None


_JSON_KINDS = {type(None): "null", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "true or false"}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def verify(model: ResolvedModel, *, remembered: bool = True) -> None:
    """Raise ModelError unless the file's sha256 is the one recorded for it.

    ``remembered``: trust a digest verified before if the file is unchanged since (digest_cache);
    False hashes the file whatever (`segtool models verify`).
    """
    expected = model.spec.onnx_sha256
    try:
        actual = (digest_cache.verified_sha256(model.path, expected, user_dir(), sha256_of) if remembered
                  else sha256_of(model.path))
    except OSError as exc:
        raise ModelError(f"{model.path}: cannot read the model file ({exc.strerror or exc}); "
                         f"{reinstall_hint(model.spec)}") from exc
    if expected and actual != expected:
        raise ModelError(f"{model.path}: damaged model file (sha256 mismatch); {reinstall_hint(model.spec)}")


def labels_of(model: Union[str, os.PathLike], buffer: Optional[bytes] = None, locale: str = "en") -> tuple[str, ...]:
    """A model's category names, the model checked first (installed, intact): what a run needs
    to know before its segmenters are made (Ray's actors, the composites' subject)."""
    resolved = resolve(model, buffer=buffer)
    verify(resolved)
    return resolved.spec.labels_for(locale)


def reinstall_hint(spec: ModelSpec) -> str:
    """How to get an intact copy, for how segtool was installed.

    Bundled models come with segtool: from git in a clone whose models/ is in use, from pip
    otherwise; downloaded ones from `models install`.
    """
    if spec.custom:
        return usermodels.reconvert_hint(spec)
    if not spec.bundled:
        return f"reinstall with `segtool models install {spec.name} --force`"
    checkout = source_checkout()
    if checkout is not None and bundled_dir().resolve() == (checkout / "models").resolve():
        return f"restore it from git (git -C {checkout} checkout models/{spec.file})"
    return "reinstall segtool (pip install --force-reinstall segtool)"


