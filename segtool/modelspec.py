"""What segtool knows about one model (ModelSpec), where users' models live, and small shared helpers.

Kept apart from registry.py, which reads the manifest and resolves a model, so that the modules
registry relies on (usermodels, convert) can use these without an import circle.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional


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
    # A user's own model (a file, bytes or `segtool models add`), facts read from the file itself:
    custom: bool = False
    channels: Optional[int] = None  # the network's output channels, where known from the file
    labels_given: bool = True  # False: the file names no categories; labels are made-up ones
    # What MediaPipe's ImageSegmenter.labels says for this model where it differs from ``labels``:
    # a one-channel model's TFLite metadata names its one mask (['selfie']); segtool.mediapipe reads it.
    mediapipe_labels: Optional[tuple[str, ...]] = None

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_height, self.input_width

    @property
    def output_channels(self) -> int:
        """Two-category models without softmax answer one probability channel (the second category)."""
        if self.channels:
            return self.channels
        return 1 if len(self.labels) == 2 and self.activation in ("none", "sigmoid") else len(self.labels)

    def labels_for(self, locale: str = "en") -> tuple[str, ...]:
        """Labels in ``locale`` when the model ships them, English otherwise."""
        for key in (locale, locale.split("_")[0].split("-")[0]):
            if key in self.localized_labels:
                return tuple(self.localized_labels[key])
        return self.labels

    def with_facts(self, facts: dict) -> "ModelSpec":
        """This spec updated with what conversion learned from the model file itself."""
        return replace(self, **{k: v for k, v in spec_fields(facts).items() if v is not None})


def spec_fields(entry: dict) -> dict:
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
        "mediapipe_labels": tuple(entry["mediapipe_labels"]) if "mediapipe_labels" in entry else None,
    }


@dataclass(frozen=True)
class ResolvedModel:
    """A spec together with the ONNX file that implements it."""

    spec: ModelSpec
    path: Path


def user_dir() -> Path:
    """Where `segtool models install` and `models add` put models, and where converted TFLite files
    are cached; SEGTOOL_MODELS_DIR overrides it."""
    if os.environ.get("SEGTOOL_MODELS_DIR"):
        return Path(os.environ["SEGTOOL_MODELS_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "segtool" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_checkout() -> Optional[Path]:
    """The git clone segtool runs from (an editable install), or None (a wheel)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def extra_hint(extra: str) -> str:
    """The pip command that adds an optional extra, for how segtool was installed."""
    checkout = source_checkout()
    if checkout is not None:
        return f"pip install -e '{checkout}[{extra}]'"
    return f"pip install 'segtool[{extra}]'"
