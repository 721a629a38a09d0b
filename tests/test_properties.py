"""Property-based tests: the numeric stages (shapes, ranges and channel counts for any input),
and the real CLI with arbitrary option values and odd paths (never a traceback, a hang, an
unknown exit status or a partial file)."""
from __future__ import annotations

import os
import subprocess

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segtool import postprocess, preprocess
from segtool.io import to_rgb8


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROTATIONS = st.sampled_from([0, 90, 180, 270, -90, 450])
sides = st.integers(min_value=1, max_value=48)


def rgb_images():
    return st.tuples(sides, sides, st.integers(0, 2**32 - 1)).map(
        lambda t: np.random.default_rng(t[2]).integers(0, 256, (t[0], t[1], 3), dtype=np.uint8))


# ---- to_rgb8 ----------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64,
                          np.float16, np.float32, np.float64, np.bool_])


@st.composite
def any_image_array(draw):
    shape = (draw(sides), draw(sides))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    if channels:
        shape += (channels,)
    return draw(arrays(draw(DTYPES), shape))


@FAST
@given(any_image_array())
def test_to_rgb8_gives_contiguous_rgb_uint8_of_the_same_size(frame):
    rgb = to_rgb8(frame)
    assert rgb.dtype == np.uint8 and rgb.shape == (*frame.shape[:2], 3) and rgb.flags.c_contiguous


@FAST
@given(st.tuples(sides, sides).flatmap(lambda s: arrays(np.uint8, s)))
def test_to_rgb8_gray_is_three_equal_channels(gray):
    rgb = to_rgb8(gray)
    assert np.array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))


@FAST
@given(rgb_images())
def test_to_rgb8_leaves_rgb8_and_opaque_rgba_alone(image):
    assert np.array_equal(to_rgb8(image), image)
    opaque = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    assert np.array_equal(to_rgb8(opaque), image)


@FAST
@given(st.tuples(sides, sides).flatmap(lambda s: arrays(np.uint16, s)))
def test_to_rgb8_sixteen_bit_keeps_the_high_byte(deep):
    assert np.array_equal(to_rgb8(deep)[..., 0], (deep >> 8).astype(np.uint8))


# ---- preprocessing ----------------------------------------------------------------------------

@FAST
@given(rgb_images(), sides, sides, ROTATIONS, st.sampled_from([(0.0, 255.0), (127.5, 127.5)]))
def test_tensor_has_the_model_size_and_normalised_range(image, height, width, rotation, norm):
    mean, std = norm
    tensor = preprocess.image_to_tensor(image, (height, width), mean=mean, std=std,
                                        rotation_degrees=rotation)
    assert tensor.shape == (height, width, 3) and tensor.dtype == np.float32
    low, high = (0 - mean) / std, (255 - mean) / std
    assert np.isfinite(tensor).all() and tensor.min() >= low - 1e-6 and tensor.max() <= high + 1e-6


@FAST
@given(st.integers(1, 48), st.integers(1, 48), st.sampled_from([0, 90, 180, 270]))
def test_tensor_of_a_flat_image_is_flat(height, width, rotation):
    image = np.full((height, width, 3), (10, 20, 30), np.uint8)
    tensor = preprocess.image_to_tensor(image, (16, 24), mean=0.0, std=255.0, rotation_degrees=rotation)
    assert np.allclose(tensor, np.array([10, 20, 30], np.float32) / 255.0, atol=1e-6)


# ---- postprocessing ---------------------------------------------------------------------------

ACTIVATIONS = st.sampled_from(["none", "sigmoid", "softmax"])


@st.composite
def network_outputs(draw):
    """A raw output (h, w, C) as a model of that activation could give it."""
    activation = draw(ACTIVATIONS)
    channels = draw(st.integers(2 if activation == "softmax" else 1, 6))
    shape = (draw(sides), draw(sides), channels)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if activation == "none":  # already probabilities (the selfie models end in a sigmoid)
        raw = rng.random(shape, dtype=np.float32)
    else:
        raw = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 30.0]))).astype(np.float32)
    return raw, activation


@FAST
@given(network_outputs(), st.tuples(st.integers(1, 80), st.integers(1, 80)), ROTATIONS)
def test_masks_have_the_image_size_and_valid_values(output, image_size, rotation):
    raw, activation = output
    confidence, category = postprocess.postprocess(raw, activation=activation, image_size=image_size,
                                                   rotation_degrees=rotation, confidence=True, category=True)
    classes = max(2, raw.shape[2])
    assert confidence.shape == (classes, *image_size) and confidence.dtype == np.float32
    assert category.shape == image_size and category.dtype == np.uint8
    assert category.max() < classes
    assert np.isfinite(confidence).all()
    assert confidence.min() >= 0.0 and confidence.max() <= 1.0 + 1e-6
    if activation == "softmax" or raw.shape[2] == 1:
        assert np.allclose(confidence.sum(axis=0), 1.0, atol=1e-4)


@FAST
@given(network_outputs(), st.tuples(st.integers(1, 80), st.integers(1, 80)))
def test_asking_for_one_mask_gives_only_that_one(output, image_size):
    raw, activation = output
    confidence, category = postprocess.postprocess(raw, activation=activation, image_size=image_size)
    assert category is None and confidence.shape[1:] == image_size
    confidence, category = postprocess.postprocess(raw, activation=activation, image_size=image_size,
                                                   confidence=False, category=True)
    assert confidence is None and category.shape == image_size


@FAST
@given(rgb_images(), ROTATIONS, st.integers(1, 4))
def test_image_to_masks_round_trip_has_the_upright_input_size(image, rotation, channels):
    # The segmenter's path without a network: the tensor's own pixels stand in for its output.
    tensor = preprocess.image_to_tensor(image, (20, 12), mean=0.0, std=255.0, rotation_degrees=rotation)
    raw = np.ascontiguousarray(np.resize(tensor, (20, 12, channels)))
    activation = "softmax" if channels > 1 else "none"
    confidence, category = postprocess.postprocess(raw, activation=activation, image_size=image.shape[:2],
                                                   rotation_degrees=rotation, category=True)
    assert confidence.shape[1:] == image.shape[:2] and category.shape == image.shape[:2]


@FAST
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([90, 180, 270]))
def test_rotation_turns_the_mask_back(height, width, rotation):
    # A mask that marks the image's left column must still mark its left column after the
    # tensor went through the network turned by ``rotation``.
    probability = np.zeros((height, width, 1), np.float32)
    probability[:, 0] = 1.0
    turned = np.rot90(probability, -(rotation // 90))  # what a network sees turned clockwise
    confidence, _ = postprocess.postprocess(np.ascontiguousarray(turned), activation="none",
                                            image_size=(height, width), rotation_degrees=rotation)
    assert np.allclose(confidence[1], probability[..., 0])


# ---- the real CLI with arbitrary option values and odd paths ----------------------------------

# subprocesses are slow and CI has 2 cores: a few dozen examples, the same ones every run
CLI = settings(max_examples=30, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# What a person (or a script with a bug) might type for a value: numbers of every kind, words,
# empty strings, unicode digits; never NUL, which no command line can hold.
_typed = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**12, 10**12).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e999", "0", "1", "0.05", "20000", "0x10", " 1", "١", "red",
                     "#00b140", "0,177,64", "hair", "person,background", "png", "jpg", "webp", "npy", "exr",
                     "selfie", "deeplab", "hair", "cuda", "cpu", "fr", "-", "--blur"]),
    _typed,
)
IMAGE_OPTIONS = ["--blur-strength", "--threads", "-j", "-b", "--max-pixels", "--replace-bg", "--recolor-hair",
                 "--classes", "--composite-format", "--confidence-format", "--model", "--device", "--locale"]
VIDEO_OPTIONS = ["--blur-strength", "--threads", "--smooth", "--max-pixels", "--replace-bg", "--classes", "--model",
                 "--confidence-format", "--mask-video"]
IMAGE_FLAGS = ["--blur", "--cutout", "--alpha-mask", "--palette", "--strip-metadata", "--category-mask",
               "--no-confidence-masks", "--skip-existing", "--json", "-r", "--no-refine", "-q"]
VIDEO_FLAGS = ["--blur", "--cutout", "--alpha", "--alpha-mask", "--palette", "--category-mask", "--confidence-masks",
               "--no-audio", "-q"]
# File names that have broken tools: spaces, a leading dash, non-ASCII, bytes that are not UTF-8.
NAMES = st.sampled_from(["a b", "-dash", "café", "日本", os.fsdecode(b"bad\xff"), ".hidden", "x" * 120, "a.jpg.png"])
OUTPUTS = st.sampled_from(["out", "out/", "in", "file.txt/out", "out.mp4", "out.gif", "deep/er/out"])


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["image", "image", "image", "video"]))
    options, flags = (IMAGE_OPTIONS, IMAGE_FLAGS) if command == "image" else (VIDEO_OPTIONS, VIDEO_FLAGS)
    args = []
    for option in draw(st.lists(st.sampled_from(options), max_size=4, unique=True)):
        args += [option, draw(VALUES)]
    args += draw(st.lists(st.sampled_from(flags), max_size=3, unique=True))
    return command, draw(NAMES), draw(st.sampled_from(["picture", "missing", "folder", "text"])), args, draw(OUTPUTS)


def _input(folder, kind: str, name: str, command: str):
    import badinput_corpus as corpus
    from clips import make_clip

    path = folder / "in" / (name + (".mp4" if command == "video" else ".png"))
    path.parent.mkdir(exist_ok=True)
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("not a picture\n")
    elif kind == "picture" and command == "video":
        make_clip(path, size=(64, 48), frames=3, audio=False)
    elif kind == "picture":
        path.write_bytes(corpus.png(corpus.chelsea()[::8, ::8]))
    return path


@CLI
@given(command_lines())
def test_the_cli_never_crashes_hangs_or_leaves_partial_files(model_env, line):
    import tempfile
    from pathlib import Path

    from segtool_process import partial_files, run_segtool

    command, name, kind, args, output = line
    with tempfile.TemporaryDirectory(prefix="segtool-cli-") as work:
        folder = Path(work)
        (folder / "file.txt").write_text("a regular file where a folder is wanted\n")
        source = _input(folder, kind, name, command)
        result = run_segtool([command, source, *args, "-o", output], model_env, cwd=folder, timeout=120,
                             stdin=subprocess.DEVNULL)
        stderr = os.fsdecode(result.stderr)
        assert "Traceback" not in stderr, stderr
        assert result.returncode in (0, 1, 2), stderr
        assert not partial_files(folder)
        if result.returncode != 0:  # one line says why, naming what is wrong
            assert stderr.strip(), "a failure with nothing on stderr"
