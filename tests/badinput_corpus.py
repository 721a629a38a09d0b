"""Test images built in memory: good ones in awkward formats, and bad ones of every kind.

No binary fixtures: everything comes from pictures that scikit-image and matplotlib ship.
"""
from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATIONS = range(1, 9)


@lru_cache(maxsize=None)
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@lru_cache(maxsize=None)
def chelsea() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


@lru_cache(maxsize=None)
def coffee() -> np.ndarray:
    import skimage.data

    return skimage.data.coffee()


@lru_cache(maxsize=None)
def grace_hopper_jpeg() -> bytes:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as stream:
        return stream.read()


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(array: np.ndarray, **options) -> bytes:
    return encode(array, "JPEG", quality=92, **options)


def png(array: np.ndarray, **options) -> bytes:
    return encode(array, "PNG", **options)


# ---- PNGs written by hand: 16-bit, and headers that lie --------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(array: np.ndarray, *, bit_depth: int, color_type: int) -> bytes:
    """A PNG from rows of ``array`` as they are (big-endian for 16 bit); colour type 0 gray, 2 RGB, 6 RGBA."""
    height, width = array.shape[:2]
    sample = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\0" + np.ascontiguousarray(array[y], dtype=sample).tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def bomb_png(width: int, height: int) -> bytes:
    """A few hundred bytes declaring ``width`` x ``height`` gray pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * 4096)  # far too little data, which only a full decode would notice
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def sixteen_bit(array8: np.ndarray) -> np.ndarray:
    """8-bit values spread over 16 bits with a low byte that must be dropped: v * 256 + 0x5A."""
    return array8.astype(np.uint16) * 256 + 0x5A


# ---- formats a viewer shows as RGB ----------------------------------------------------------

def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    """Pillow writes CMYK JPEGs as Photoshop does: inverted, with an Adobe APP14 marker."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def palette_png_with_transparency(rgb: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A palette PNG whose index 0 is transparent, and the RGB a viewer shows over white."""
    image = Image.fromarray(rgb).quantize(colors=16)
    indices = np.asarray(image).copy()
    indices[: indices.shape[0] // 2, : indices.shape[1] // 2] = 0  # a transparent corner, at least
    image = Image.fromarray(indices, mode="P")
    image.putpalette(Image.fromarray(rgb).quantize(colors=16).getpalette())
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    shown = np.asarray(image.convert("RGB")).copy()
    shown[indices == 0] = 255
    return buffer.getvalue(), shown


def animated_gif(frames: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def flat_frames(height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Three flat colours: a GIF palette holds them exactly, so the first frame is checkable."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [np.full((height, width, 3), c, np.uint8) for c in colours]


# ---- EXIF orientation -----------------------------------------------------------------------

# What a camera stores for each orientation tag, given the upright picture: the inverse of the
# transform a viewer applies (2, 3, 4, 5, 7 are their own inverses; 6 and 8 undo each other).
_STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=-1),
}


def stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    return np.ascontiguousarray(_STORED[orientation](upright))


def oriented(upright: np.ndarray, orientation: int, fmt: str = "PNG") -> bytes:
    """``upright`` stored as a camera would with EXIF orientation ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    return encode(stored_for(upright, orientation), fmt, exif=exif.tobytes(), **options)


def half_person(height: int = 240, width: int = 320) -> np.ndarray:
    """Left half the astronaut's head and shoulders, right half flat grey: not symmetric anywhere."""
    picture = np.full((height, width, 3), 128, np.uint8)
    face = np.asarray(Image.fromarray(astronaut()[:400, 60:360]).resize((width // 2, height)))
    picture[:, : width // 2] = face
    return picture


# ---- data that ends early, or lies about its size ------------------------------------------------

EOI = b"\xff\xd9"  # JPEG's end-of-image marker: appended to a cut file, libjpeg fills the rest with grey


def cut_with_end(data: bytes, fraction: float, end: bytes = EOI) -> bytes:
    """``data`` cut to ``fraction`` of its length, with an end marker appended so it looks whole."""
    return data[: int(len(data) * fraction)] + end


def progressive_scans_only(data: bytes, scans: int) -> bytes:
    """A progressive JPEG's first ``scans`` scans and an end marker: a cut exactly between scans."""
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
    return data[: starts[scans]] + EOI


def _with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    buffer = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = buffer.find(marker)
        if at >= 0:
            buffer[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(buffer)
    raise ValueError("no frame header")


def lying_jpeg(width: int = 9000, height: int = 9000, **options) -> bytes:
    """A 64x64 JPEG (about 2 KB) whose header says ``width`` x ``height``."""
    return _with_jpeg_size(jpeg(astronaut()[:64, :64], **options), width, height)


def lying_png(width: int, height: int, color_type: int = 2) -> bytes:
    """A complete PNG whose IHDR says ``width`` x ``height`` over 4 KB of rows."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b"")


def lying_gif(width: int = 16000, height: int = 16000, *, frame_too: bool = False) -> bytes:
    """A 3-frame GIF of 16x16 pixels (a few hundred bytes) whose logical screen says ``width`` x
    ``height`` (ffmpeg decodes frames at the screen's size); ``frame_too``: the first frame's
    descriptor says so as well, over its 16x16 pixels of data."""
    buffer = bytearray(animated_gif(flat_frames(16, 16)))
    buffer[6:10] = struct.pack("<HH", width, height)
    if frame_too:
        table = 3 * 2 ** ((buffer[10] & 7) + 1) if buffer[10] & 0x80 else 0
        descriptor = buffer.index(0x2C, 13 + table)
        buffer[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(buffer)


def lying_bmp(width: int = 9000, height: int = 9000) -> bytes:
    buffer = bytearray(encode(astronaut()[:16, :16], "BMP"))
    buffer[18:26] = struct.pack("<ii", width, height)
    return bytes(buffer)


def lying_h264_video(path: Path, width: int = 16000, height: int = 12000) -> Path:
    """A 64x48 H.264 clip (5 frames, about 3 KB; container from ``path``'s suffix) whose sequence
    parameter set says ``width`` x ``height`` (multiples of 16). ffmpeg alone decodes it, concealing
    the missing macroblocks, into frames of that size: 576 MB of RGB each at 16000x12000."""
    import subprocess

    import imageio_ffmpeg

    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    stream = path.with_name(path.name + ".h264")
    subprocess.run(ffmpeg + ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5", "-t", "1", "-c:v", "libx264",
                             "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-f", "h264", str(stream)], check=True)
    stream.write_bytes(_with_h264_size(stream.read_bytes(), width, height))
    # -max_pixels: probing the stream for the copy would otherwise decode a huge frame or two
    subprocess.run(ffmpeg + ["-max_pixels", "1000", "-r", "5", "-i", str(stream), "-c", "copy", str(path)],
                   check=True)
    stream.unlink()
    return path


def _with_h264_size(data: bytes, width: int, height: int) -> bytes:
    """An Annex B baseline stream with its SPS's picture size rewritten (the fields before it kept)."""
    start = data.index(b"\x00\x00\x00\x01\x67") + 5
    end = data.index(b"\x00\x00\x00\x01", start)
    bits = _Bits(data[start:end].replace(b"\x00\x00\x03", b"\x00\x00"))
    assert bits.u(8) == 66, "baseline profile: no chroma or bit-depth fields to step over"
    bits.u(16), bits.ue(), bits.ue()  # constraint flags and level, SPS id, log2_max_frame_num - 4
    if bits.ue() == 0:  # pic_order_cnt_type 0 carries one more field (x264 never writes type 1)
        bits.ue()
    bits.ue(), bits.u(1)  # max_num_ref_frames, gaps_in_frame_num_allowed
    head = bits.text[:bits.at]
    bits.ue(), bits.ue()  # the size, in macroblocks minus one
    rest = bits.text[bits.at:].rstrip("0")[:-1]  # without the stop bit and its padding
    text = head + _ue(width // 16 - 1) + _ue(height // 16 - 1) + rest + "1"
    text += "0" * (-len(text) % 8)
    payload = bytes(int(text[i:i + 8], 2) for i in range(0, len(text), 8))
    return data[:start] + _escape_nal(payload) + data[end:]


class _Bits:
    def __init__(self, data: bytes):
        self.text, self.at = "".join(f"{byte:08b}" for byte in data), 0

    def u(self, count: int) -> int:
        self.at += count
        return int(self.text[self.at - count:self.at], 2) if count else 0

    def ue(self) -> int:
        zeros = self.text.index("1", self.at) - self.at
        self.at += zeros + 1
        return (1 << zeros) - 1 + self.u(zeros)


def _ue(value: int) -> str:
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def _escape_nal(payload: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def truncated_variants() -> dict[str, bytes]:
    """File name -> bytes: pixel data cut short or too little for the header, in every format.

    Each must be a "truncated" error, however complete the file looks (an end marker appended).
    Built once (cached): read, do not modify.
    """
    photo = astronaut()
    baseline, progressive = jpeg(photo), jpeg(photo, progressive=True)
    restarts = jpeg(photo, restart_marker_blocks=4)
    gray = jpeg(np.asarray(Image.fromarray(photo).convert("L")))
    return {
        "cut third with EOI.jpg": cut_with_end(baseline, 1 / 3),
        "cut near end with EOI.jpg": cut_with_end(baseline, 0.97),
        "cut header with EOI.jpg": baseline[:400] + EOI,
        "progressive cut with EOI.jpg": cut_with_end(progressive, 0.5),
        "progressive first scan only.jpg": progressive_scans_only(progressive, 1),
        "progressive all but one scan.jpg": progressive_scans_only(progressive, progressive.count(b"\xff\xda") - 1),
        "restart markers cut with EOI.jpg": cut_with_end(restarts, 0.4),
        "restart markers cut.jpg": restarts[: len(restarts) // 2],
        "gray cut with EOI.jpg": cut_with_end(gray, 0.5),
        "cmyk cut with EOI.jpg": cut_with_end(cmyk_jpeg(coffee()), 0.5),
        "exif rotated cut with EOI.jpg": cut_with_end(oriented(half_person(), 6, "JPEG"), 0.5),
        "lying 9000x9000.jpg": lying_jpeg(9000, 9000),
        "lying progressive 9000x9000.jpg": lying_jpeg(9000, 9000, progressive=True),
        "lying 3000x2000.jpg": lying_jpeg(3000, 2000),
        "png cut with IEND.png": cut_with_end(png(photo), 1 / 3, _chunk(b"IEND", b"")),
        "lying png.png": lying_png(5000, 5000),
        "gif cut.gif": encode(photo, "GIF")[: 150_000],
        "gif cut with trailer.gif": cut_with_end(encode(photo, "GIF"), 1 / 3, b"\x00\x3b"),
        "lying gif.gif": lying_gif(9000, 9000, frame_too=True),
        "webp cut.webp": encode(photo, "WEBP", quality=80)[:-500],
        "lossless webp cut.webp": encode(photo, "WEBP", lossless=True)[:-500],
        "tiff cut.tif": encode(photo, "TIFF")[: 400_000],
        "deflate tiff cut.tif": encode(photo, "TIFF", compression="tiff_deflate")[:-2000],
        "bmp cut.bmp": encode(photo, "BMP")[:-1000],
        "lying bmp.bmp": lying_bmp(9000, 9000),
    }


@lru_cache(maxsize=None)
def harmless_jpeg_oddities() -> dict[str, bytes]:
    """File name -> bytes: JPEGs libjpeg warns about whose pixels are all there. Each must decode."""
    photo = astronaut()
    baseline = jpeg(photo)
    jfif_3 = bytearray(baseline)
    jfif_3[jfif_3.index(b"JFIF\0") + 5] = 3  # an unknown JFIF major version
    return {
        "padding before EOI.jpg": baseline[:-2] + b"\0\0\0" + EOI,
        "garbage after EOI.jpg": baseline + b"not part of the picture" * 4,
        "jfif 3.jpg": bytes(jfif_3),
        "restart markers.jpg": jpeg(photo, restart_marker_blocks=4),
        "progressive.jpg": jpeg(photo, progressive=True),
        "optimized 444.jpg": jpeg(photo, optimize=True, subsampling=0),
        "multi-picture.jpg": multi_picture(photo, chelsea()),
    }


def multi_picture(first: np.ndarray, second: np.ndarray) -> bytes:
    """An MPO file, as cameras write for stereo or previews: two JPEGs, one after the other."""
    buffer = io.BytesIO()
    Image.fromarray(first).save(buffer, "MPO", save_all=True, append_images=[Image.fromarray(second)])
    return buffer.getvalue()


# ---- the bad ones -----------------------------------------------------------------------------

def random_bytes(size: int = 4096, seed: int = 6) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def bad_inputs() -> dict[str, bytes | None]:
    """File name -> content; None means a directory of that name. Each must fail on its own."""
    return dict(_bad_inputs())


def good_inputs() -> dict[str, bytes]:
    """File name -> content: awkward but valid images, all of which must segment."""
    return dict(_good_inputs())


@lru_cache(maxsize=None)  # built once per test process: encoding the corpus takes seconds
def _bad_inputs() -> dict[str, bytes | None]:
    photo = astronaut()
    whole_jpeg, whole_png = jpeg(photo), png(photo)
    progressive = jpeg(photo, progressive=True)
    return {
        "empty.jpg": b"",
        "truncated.jpg": whole_jpeg[: len(whole_jpeg) // 2],
        "truncated progressive.jpg": progressive[: len(progressive) * 2 // 3],
        "truncated png.png": whole_png[: len(whole_png) // 2],
        "random.png": random_bytes(),
        "notes.jpg": "This is not a picture.\nJust some text.\n".encode(),
        "folder.jpg": None,
        "bomb.png": bomb_png(100_000, 100_000),
        **truncated_variants(),
    }


@lru_cache(maxsize=None)
def _good_inputs() -> dict[str, bytes]:
    photo = astronaut()
    palette, _ = palette_png_with_transparency(chelsea())
    return {
        "cmyk.jpg": cmyk_jpeg(coffee()),
        "gray16.png": raw_png(sixteen_bit(photo[..., 1]), bit_depth=16, color_type=0),
        "rgb16.png": raw_png(sixteen_bit(photo), bit_depth=16, color_type=2),
        "gray.jpg": jpeg(np.asarray(Image.fromarray(photo).convert("L"))),
        "palette alpha.png": palette,
        "animated.gif": animated_gif(flat_frames()),
        "grace hopper.jpg": grace_hopper_jpeg(),
        "café ☕ 写真.png": png(chelsea()),
        "rotated 6.jpg": oriented(half_person(), 6, "JPEG"),
        **harmless_jpeg_oddities(),
    }


def write_tree(folder: Path, files: dict[str, bytes | None]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        path = folder / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        paths.append(path)
    return paths
