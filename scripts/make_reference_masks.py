#!/usr/bin/env python
"""Record MediaPipe Tasks' own masks as test fixtures (tests/fixtures/mediapipe/).

Run it where mediapipe is installed (the fixtures were made with 0.10.21, numpy<2), with
scikit-image and matplotlib for the test images:

    python scripts/make_reference_masks.py [--models-dir ../shared/models] [--out tests/fixtures/mediapipe]

For each case it writes ``<model>/<image>[_rot<deg>].npz`` holding what ImageSegmenter (IMAGE mode,
CPU) returns, unchanged in layout and convention:

* ``confidence_masks``: float16 (K, H, W), MediaPipe's masks for the channels in
  ``confidence_channels``, to keep the files small: one-channel models, the person probability;
  hair, channel 1 (channel 0 is its complement); DeepLab, the categories in the category mask.
* ``category_mask``: uint8 (H, W) as MediaPipe writes it. One-channel models: 0 = person,
  255 = background (segtool writes 1 and 0).
* ``rotation_degrees``: the ImageProcessingOptions used. MediaPipe returns the mask of the
  rotated tensor resized straight to the input's size, without turning it back.
* ``mediapipe_version``, ``image_shape``, ``image_sha256`` (of the RGB pixels fed in).

``tensors.npz`` holds MediaPipe's ImageToTensorCalculator output for a few sizes and rotations
(float range 0..255, so the values are the resampled uint8 levels): a bit-exact reference for
segtool.preprocess.

``--custom-out`` (tests/fixtures/mediapipe_custom) gets the same for a user's own model: DeepLab-v3's
network with metadata written by tests/tflite_metadata.py (labels, localized label files, softmax),
the very bytes tests/test_custom_models.py builds; each file also holds MediaPipe's ``labels``.

MediaPipe Tasks needs model metadata. The landscape and hair files have none, so metadata is
written into copies in a temporary directory: mean 0 / std 255 like the other selfie model;
labels "selfie" (one channel, activation NONE) and "background", "hair" (activation SOFTMAX:
label 1 being "hair" is what makes MediaPipe feed its 4th input channel zeros).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# model name -> (TFLite file, metadata to add: (labels, activation name) or None if it has its own)
MODELS = {
    "selfie": ("selfie_segmenter.tflite", None),
    "selfie_landscape": ("selfie_segmentation_landscape.tflite", (["selfie"], "NONE")),
    "deeplab": ("deeplab_v3.tflite", None),
    "hair": ("hair_segmentation.tflite", (["background", "hair"], "SOFTMAX")),
}

# (model, image, rotation_degrees)
CASES = [
    ("selfie", "astronaut", 0), ("selfie", "grace_hopper", 0),
    ("selfie", "astronaut", 180),
    ("selfie_landscape", "astronaut", 0), ("selfie_landscape", "grace_hopper", 0),
    ("deeplab", "chelsea", 0), ("deeplab", "coffee", 0),
    ("hair", "astronaut", 0), ("hair", "grace_hopper", 0),
]

# a user's own model (tests/tflite_metadata.py builds it): (model, image, rotation_degrees)
CUSTOM_CASES = [("custom_deeplab", image, 0) for image in ("astronaut", "chelsea", "coffee", "grace_hopper")] + [
    ("custom_selfie", image, 0) for image in ("astronaut", "grace_hopper")]

# ImageToTensorCalculator references: (image, tensor width, tensor height, rotation_degrees)
TENSOR_CASES = [
    ("grace_hopper", 256, 144, 90), ("coffee", 257, 257, 270),
]


def load_image(name: str) -> np.ndarray:
    """The test images as RGB uint8, from the packages that ship them."""
    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
    import skimage.data
    return np.ascontiguousarray(getattr(skimage.data, name)())


def model_with_metadata(models_dir: Path, name: str, workdir: Path) -> Path:
    file, metadata = MODELS[name]
    source = models_dir / file
    if metadata is None:
        return source
    from mediapipe.tasks.python.metadata.metadata_writers import image_segmenter, metadata_writer
    labels, activation = metadata
    label_file = metadata_writer.Labels().add(labels)
    writer = image_segmenter.MetadataWriter.create(
        bytearray(source.read_bytes()), [0.0], [255.0], labels=label_file,
        activation=image_segmenter.Activation[activation])
    model, _ = writer.populate()
    target = workdir / f"{name}.tflite"
    target.write_bytes(model)
    return target


def custom_model(models_dir: Path, name: str, workdir: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    import tflite_metadata

    target = workdir / f"{name}.tflite"
    target.write_bytes(getattr(tflite_metadata, name)(models_dir))
    return target


def labels_of(model_path: Path) -> list:
    from mediapipe.tasks.python import BaseOptions, vision
    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(model_path)))
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        return list(segmenter.labels)


def segment(model_path: Path, rgb: np.ndarray, rotation: int):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.vision.core.image_processing_options import ImageProcessingOptions
    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        output_confidence_masks=True, output_category_mask=True)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb),
                                   ImageProcessingOptions(rotation_degrees=rotation))
        confidence = np.stack([m.numpy_view().copy() for m in result.confidence_masks])
        return confidence, result.category_mask.numpy_view().copy()


def write_case(out: Path, model: str, image: str, rotation: int, model_path: Path, **extra) -> Path:
    import mediapipe as mp
    rgb = load_image(image)
    confidence, category = segment(model_path, rgb, rotation)
    channels = np.arange(confidence.shape[0])
    if confidence.shape[0] == 2:  # hair: channel 0 is 1 - channel 1
        channels = channels[1:]
    elif confidence.shape[0] > 2:  # DeepLab: only the categories that appear
        channels = np.unique(category).astype(np.int64)
    path = out / model / (image + (f"_rot{rotation}" if rotation else "") + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, confidence_masks=confidence[channels].astype(np.float16),
        confidence_channels=channels, category_mask=category,
        rotation_degrees=np.int64(rotation), mediapipe_version=np.str_(mp.__version__),
        image_shape=np.array(rgb.shape), image_sha256=np.str_(hashlib.sha256(rgb.tobytes()).hexdigest()),
        **extra)
    return path


def image_to_tensor_reference(rgb: np.ndarray, width: int, height: int, rotation: int) -> np.ndarray:
    """MediaPipe's ImageToTensorCalculator alone, with the ROI its Python task API builds."""
    import mediapipe as mp
    from mediapipe.framework.formats import rect_pb2
    from mediapipe.python import packet_creator, packet_getter
    config = f"""
      input_stream: "image" input_stream: "rect" output_stream: "floats"
      node {{ calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image"
        input_stream: "NORM_RECT:rect" output_stream: "TENSORS:tensors"
        options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{
          output_tensor_width: {width} output_tensor_height: {height}
          output_tensor_float_range {{ min: 0 max: 255 }} }} }} }}
      node {{ calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:tensors"
        output_stream: "FLOATS:floats" }}"""
    h, w = rgb.shape[:2]
    swap = rotation % 180 != 0  # as base_vision_task_api.convert_to_normalized_rect
    rect = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=h / w if swap else 1.0,
                                   height=w / h if swap else 1.0, rotation=-rotation * math.pi / 180.0)
    graph = mp.CalculatorGraph(graph_config=config)
    floats = []
    graph.observe_output_stream("floats", lambda _, p: floats.append(packet_getter.get_float_list(p)))
    graph.start_run()
    graph.add_packet_to_input_stream("image", packet_creator.create_image(
        mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)).at(0))
    graph.add_packet_to_input_stream("rect", packet_creator.create_proto(rect).at(0))
    graph.close()
    levels = np.asarray(floats[0], np.float32).reshape(height, width, 3)
    assert np.array_equal(levels, np.round(levels)), "expected whole uint8 levels"
    return levels.astype(np.uint8)


def write_tensors(out: Path) -> Path:
    import mediapipe as mp
    arrays = {"mediapipe_version": np.str_(mp.__version__)}
    for image, width, height, rotation in TENSOR_CASES:
        arrays[f"{image}__{width}x{height}__rot{rotation}"] = image_to_tensor_reference(
            load_image(image), width, height, rotation)
    path = out / "tensors.npz"
    np.savez_compressed(path, **arrays)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "mediapipe")
    parser.add_argument("--custom-out", type=Path, default=ROOT / "tests" / "fixtures" / "mediapipe_custom")
    parser.add_argument("--only", choices=["bundled", "custom"], default=None, help="write only these fixtures")
    args = parser.parse_args(argv)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "custom":
            args.out.mkdir(parents=True, exist_ok=True)
            paths = {m: model_with_metadata(args.models_dir, m, Path(tmp)) for m in MODELS}
            written += [write_case(args.out, m, i, r, paths[m]) for m, i, r in CASES]
            written.append(write_tensors(args.out))
        if args.only != "bundled":
            for model in sorted({m for m, _, _ in CUSTOM_CASES}):
                path = custom_model(args.models_dir, model, Path(tmp))
                labels = np.array(labels_of(path))
                written += [write_case(args.custom_out, m, i, r, path, labels=labels)
                            for m, i, r in CUSTOM_CASES if m == model]
    for path in written:
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")
    print(f"total {sum(p.stat().st_size for p in written) / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
