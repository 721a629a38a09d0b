"""A bounded, seeded fuzz run of the decode path: mutated PNG/JPEG/GIF bytes.

Every case must end in an upright RGB uint8 array or an InputError: never another exception,
never a hang. A watchdog ends the whole run with a traceback if one case hangs.
"""
from __future__ import annotations

import faulthandler
import time

import numpy as np
import pytest

import badinput_corpus as corpus
from segtool.errors import InputError
from segtool.io import read_image

CASES_PER_SEED = 120
MAX_SECONDS_PER_CASE = 5.0
MAX_PIXELS = 4_000_000  # mutated headers may claim anything; keep the decodes that pass small


def seeds() -> dict[str, bytes]:
    small = corpus.astronaut()[::4, ::4]
    return {
        "png": corpus.png(small),
        "jpeg": corpus.jpeg(small),
        "progressive.jpeg": corpus.jpeg(small, progressive=True),
        "rgb16.png": corpus.raw_png(corpus.sixteen_bit(small), bit_depth=16, color_type=2),
        "exif6.jpeg": corpus.oriented(small, 6, "JPEG"),
        "gif": corpus.animated_gif(corpus.flat_frames(16, 16)),
        "restarts.jpeg": corpus.jpeg(small, restart_marker_blocks=2),
        "cmyk.jpeg": corpus.cmyk_jpeg(small),
        "webp": corpus.encode(small, "WEBP", quality=80),
        "tiff": corpus.encode(small, "TIFF", compression="tiff_deflate"),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three of: flip bits, overwrite a run, cut short, splice in a copy, drop a run."""
    buffer = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(0, 5)
        at = int(rng.integers(0, max(1, len(buffer))))
        if kind == 0:
            for i in rng.integers(0, len(buffer), size=rng.integers(1, 16)):
                buffer[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            run = rng.integers(0, 256, size=rng.integers(1, 64), dtype=np.uint8).tobytes()
            buffer[at:at + len(run)] = run
        elif kind == 2:
            del buffer[max(1, at):]
        elif kind == 3:
            start = int(rng.integers(0, len(buffer)))
            buffer[at:at] = buffer[start:start + int(rng.integers(1, 512))]
        else:
            del buffer[at:at + int(rng.integers(1, 256))]
    return bytes(buffer)


@pytest.fixture
def watchdog():
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.parametrize("name", list(seeds()))
def test_mutated_files_decode_or_fail_cleanly(tmp_path, watchdog, name):
    rng = np.random.default_rng(sum(name.encode()))
    original = seeds()[name]
    outcomes = {"decoded": 0, "refused": 0}
    for case in range(CASES_PER_SEED):
        path = tmp_path / f"case{case}.{name.rsplit('.', 1)[-1]}"
        path.write_bytes(mutate(original, rng))
        started = time.perf_counter()
        try:
            image = read_image(path, max_pixels=MAX_PIXELS)
        except InputError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            outcomes["decoded"] += 1
        assert time.perf_counter() - started < MAX_SECONDS_PER_CASE, f"case {case} of {name} was slow"
    assert outcomes["refused"] > 0  # the mutations do reach the error paths
