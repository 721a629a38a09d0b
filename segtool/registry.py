"""Model facts from models/manifest.json, where model files live, and checks that they are intact."""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from . import digest_cache
from .errors import ModelError, ModelNotInstalledError

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    file: str
    bundled: bool
    input_height: int
    input_width: int
    input_channels: int
    mean: float
    std: float
    activation: str
    labels: tuple[str, ...]
    source_url: str
    source_file: str
    source_sha256: Optional[str]
    onnx_sha256: Optional[str] = None
    source_size: Optional[int] = None  # bytes of the pinned source file
    localized_labels: dict = field(default_factory=dict)
    license: str = ""

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_height, self.input_width

    @property
    def output_channels(self) -> int:
        """Two-category models without softmax answer one probability channel (the second category)."""
        return 1 if len(self.labels) == 2 and self.activation in ("none", "sigmoid") else len(self.labels)

    def labels_for(self, locale: str = "en") -> tuple[str, ...]:
        """Labels in ``locale`` when the model ships them, English otherwise."""
        for key in (locale, locale.split("_")[0].split("-")[0]):
            if key in self.localized_labels:
                return tuple(self.localized_labels[key])
        return self.labels

    def with_facts(self, facts: dict) -> "ModelSpec":
        """This spec updated with what conversion learned from the model file itself."""
        return replace(self, **{k: v for k, v in _spec_fields(facts).items() if v is not None})


def _spec_fields(entry: dict) -> dict:
    source = entry.get("source", {})
    size = entry.get("input", {})
    norm = entry.get("normalization", {})
    return {
        "title": entry.get("title"),
        "file": entry.get("file"),
        "bundled": entry.get("bundled"),
        "input_height": size.get("height"),
        "input_width": size.get("width"),
        "input_channels": size.get("channels"),
        "mean": norm.get("mean"),
        "std": norm.get("std"),
        "activation": entry.get("activation"),
        "labels": tuple(entry["labels"]) if "labels" in entry else None,
        "localized_labels": entry.get("localized_labels"),
        "source_url": source.get("url"),
        "source_file": source.get("file"),
        "source_sha256": source.get("sha256"),
        "source_size": source.get("size"),
        "onnx_sha256": entry.get("onnx_sha256"),
        "license": entry.get("license"),
    }


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


def user_dir() -> Path:
    """Where `segtool models install` puts models; SEGTOOL_MODELS_DIR overrides it."""
    if os.environ.get("SEGTOOL_MODELS_DIR"):
        return Path(os.environ["SEGTOOL_MODELS_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "segtool" / "models"


def load_manifest(path: Optional[Path] = None) -> dict[str, ModelSpec]:
    path = path or bundled_dir() / MANIFEST_NAME
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read the model manifest ({exc})") from exc
    return {name: ModelSpec(name=name, **_defaults(_spec_fields(e))) for name, e in entries.items()}


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


@dataclass(frozen=True)
class ResolvedModel:
    """A spec together with the ONNX file that implements it."""

    spec: ModelSpec
    path: Path


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def source_checkout() -> Optional[Path]:
    """The git clone segtool runs from (an editable install), or None (a wheel)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def reinstall_hint(spec: ModelSpec) -> str:
    """How to get an intact copy, for how segtool was installed.

    Bundled models come with segtool: from git in a clone whose models/ is in use, from pip
    otherwise; downloaded ones from `models install`.
    """
    if not spec.bundled:
        return f"reinstall with `segtool models install {spec.name} --force`"
    checkout = source_checkout()
    if checkout is not None and bundled_dir().resolve() == (checkout / "models").resolve():
        return f"restore it from git (git -C {checkout} checkout models/{spec.file})"
    return "reinstall segtool (pip install --force-reinstall segtool)"


def extra_hint(extra: str) -> str:
    """The pip command that adds an optional extra, for how segtool was installed."""
    checkout = source_checkout()
    if checkout is not None:
        return f"pip install -e '{checkout}[{extra}]'"
    return f"pip install 'segtool[{extra}]'"
