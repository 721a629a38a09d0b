"""Frame sources and video writers: ffmpeg processes exchanging raw frames with us over pipes.

imageio-ffmpeg supplies the ffmpeg binary. Its ``read_frames``/``write_frames`` are not used:
they neither report ffmpeg's exit status nor let us see its errors, so a truncated input or a
failed encode would look like success. The protocol is theirs (raw frames on stdin/stdout).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import InputError, OutputError, UsageError
from .colour import SCALER_MATRIX, Colour, source_colour, stream_colour  # noqa: F401 (stream_colour: re-exported)
from .images import DEFAULT_MAX_PIXELS
from .writers import atomic_output, ensure_dir, write_error

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .mkv .webm .avi".split())
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
# Audio codecs each container takes as they are; anything else is re-encoded (None: takes all).
_AUDIO_COPY = {
    "mp4": {"aac", "mp3", "opus", "alac", "flac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
    "matroska": None,
    "avi": {"mp3", "ac3", "pcm_s16le"},
}
_AUDIO_ENCODER = {"mp4": "aac", "mov": "aac", "webm": "libopus", "avi": "libmp3lame"}
_HEADER_TIMEOUT_S = 30.0
_FFMPEG_INT_MAX = 2**31 - 1  # ffmpeg's -max_pixels is an int option
_LEVELS = ("panic", "fatal", "error", "warning", "info")
_LOG_LINE = re.compile(r"\[(%s)\] ?(.*)$" % "|".join(_LEVELS))


def ffmpeg_exe() -> str:
    """The ffmpeg binary imageio-ffmpeg ships (or the one IMAGEIO_FFMPEG_EXE names)."""
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise InputError(f"no ffmpeg binary: {exc}; reinstall imageio-ffmpeg") from exc


# ---- facts about a stream ------------------------------------------------------------------

@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg said about a source's video (and audio) stream and the frames it will send.

    ``width``/``height`` are of the decoded frames: upright (rotation metadata applied) and in
    square pixels (anamorphic video scaled to the shape it is shown at; ``sample_aspect`` is the
    source's sample aspect ratio, 1 for square pixels).
    ``fps`` is the constant rate frames arrive at; ``variable_rate`` says the source was not
    constant (judged from the banner; VideoReader.retimed knows for sure once read).
    """

    source: str
    width: int
    height: int
    fps: Fraction
    duration: Optional[float] = None
    audio_codec: Optional[str] = None
    variable_rate: bool = False
    sample_aspect: Fraction = Fraction(1)
    colour: Colour = None  # how the RGB frames relate to YUV: what outputs are encoded and tagged with

    def __post_init__(self):
        if self.colour is None:
            object.__setattr__(self, "colour", Colour.guess(self.width, self.height))

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def frame_count(self) -> Optional[int]:
        """Expected number of frames, from the container's duration (an estimate)."""
        return round(self.duration * self.fps) if self.duration else None


def parse_rate(text: str) -> Optional[Fraction]:
    """ffmpeg's printed rate ('30', '29.97', '1k') as an exact rate; NTSC rates become n*1000/1001."""
    match = re.fullmatch(r"([\d.]+)(k?)", text.strip())
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    if value <= 0:
        return None
    if abs(value - round(value)) < 1e-3:
        return Fraction(round(value))
    ntsc = Fraction(round(value * 1.001) * 1000, 1001)
    # ffmpeg prints two decimals, so 30000/1001 arrives as 29.97
    if abs(float(ntsc) - value) < 0.006:
        return ntsc
    return Fraction(value).limit_denominator(1001)


def parse_header(lines: Sequence[str], source: str, colour: Optional[Colour] = None) -> VideoInfo:
    """VideoInfo from ffmpeg's banner: the input section for the source, the output for the frames.

    ``colour``: what the frames were decoded with, when the caller chose it; otherwise what
    ffmpeg used by itself (the stream's tags; BT.601 when untagged).
    """
    text = "\n".join(lines)
    input_part, _, output_part = text.partition("Output #0")
    video_in = _stream_line(input_part, "Video")
    video_out = _stream_line(output_part, "Video") or video_in
    audio = _stream_line(input_part, "Audio")
    width, height = _frame_size(video_out)
    fps_in, tbr_in = _rate_field(video_in, "fps"), _rate_field(video_in, "tbr")
    fps = _rate_field(video_out, "fps") or tbr_in or fps_in or Fraction(25)
    return VideoInfo(
        source=source, width=width, height=height, fps=fps,
        duration=_duration(input_part),
        audio_codec=audio.split("Audio:", 1)[1].split()[0].strip(",") if audio else None,
        # the average rate differs from the nominal one only when frame durations vary
        variable_rate=bool(fps_in and tbr_in and abs(float(fps_in) - float(tbr_in)) > 0.02),
        sample_aspect=_sample_aspect(video_in),
        colour=colour or source_colour(video_in, *_frame_size(video_in or video_out), untagged_matrix="smpte170m"),
    )


def _stream_line(section: str, kind: str) -> str:
    for line in section.splitlines():
        if line.lstrip().startswith("Stream #") and f": {kind}:" in line:
            return line
    return ""


def _frame_size(line: str) -> tuple[int, int]:
    # ' 320x240,' or ' 320x240 [SAR' -- not the '0x18424752)' of a codec tag
    match = re.search(r" (\d+)x(\d+)[ ,\[]", line + " ")
    if not match or not int(match.group(1)) or not int(match.group(2)):
        raise InputError(f"cannot tell the frame size from ffmpeg's description: {line.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def _sample_aspect(line: str) -> Fraction:
    # ' 320x360 [SAR 2:1 DAR 16:9]'; no SAR, or 0:1 (unknown), means square pixels
    match = re.search(r"\[SAR (\d+):(\d+) DAR", line)
    if not match or not int(match.group(1)) or not int(match.group(2)):
        return Fraction(1)
    return Fraction(int(match.group(1)), int(match.group(2)))


# A sample aspect ratio this close to 1 is square: ffmpeg's `scale=W:-2` leaves 2216:2215 behind,
# which no viewer could see (half a pixel on 1280), and scaling for it would make the size odd.
SQUARE_TOLERANCE = 0.01


def square_size(width: int, height: int, sample_aspect: Fraction) -> tuple[int, int]:
    """The size of ``width`` x ``height`` stored pixels shown as square ones: the wider side grows,
    to an even number of pixels (what 4:2:0 video needs).

    As the reader's scale filter (``_square_pixels``) computes it; growing, not shrinking, so
    that no detail is lost. Near-square pixels (SQUARE_TOLERANCE) keep the size.
    """
    if abs(sample_aspect - 1) <= SQUARE_TOLERANCE:
        return width, height
    # half away from zero, as ffmpeg's round() (Python's round() goes to even)
    if sample_aspect > 1:
        return max(2, 2 * math.floor(width * sample_aspect / 2 + Fraction(1, 2))), height
    return width, max(2, 2 * math.floor(height / sample_aspect / 2 + Fraction(1, 2)))


def pixel_problem(lines: Sequence[str], errors: Sequence[str], label: str,
                  max_pixels: Optional[int]) -> Optional[str]:
    """Why the input stream's frames are over ``max_pixels`` (stored or shown), or None.

    From the banner's input stream, or from the decoder's refusal (``-max_pixels``), which comes
    before the banner can give a size.
    """
    if not max_pixels:
        return None
    refused = next(filter(None, (re.search(r"Picture size (\d+)x(\d+) (?:exceeds|is invalid)", e)
                                 for e in errors)), None)
    line = _stream_line("\n".join(lines).partition("Output #0")[0], "Video")
    match = refused or re.search(r" (\d+)x(\d+)[ ,\[]", line + " ")
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    shown = square_size(width, height, _sample_aspect(line))
    for (w, h), how in (((width, height), ""), (shown, f" (shown at {shown[0]}x{shown[1]})")):
        if w * h > max_pixels:
            return (f"{label}: {width}x{height} frames{how} are {w * h:,} pixels, over the limit of "
                    f"{max_pixels:,} (raise it with --max-pixels)")
    return None


def _rate_field(line: str, unit: str) -> Optional[Fraction]:
    match = re.search(r"([\d.]+k?) %s\b" % unit, line)
    return parse_rate(match.group(1)) if match else None


def _duration(section: str) -> Optional[float]:
    match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", section)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# ---- an ffmpeg (or ffplay) child process ---------------------------------------------------

class _Log(threading.Thread):
    """Drains a child's stderr so it never blocks; keeps the banner and the first errors."""

    def __init__(self, stream):
        super().__init__(name="segtool-ffmpeg-log", daemon=True)
        self._stream = stream
        self.banner: list[str] = []
        self.errors: list[str] = []
        self.error_count = 0
        self.final_report = ""  # ffmpeg's closing 'frame= ... dup= drop=' line
        self.banner_done = threading.Event()
        self._in_output = False
        self.start()

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            self._take(raw.decode("utf-8", "replace").rstrip())
        self.banner_done.set()

    def _take(self, line: str) -> None:
        match = _LOG_LINE.search(line)
        level, message = (match.group(1), match.group(2)) if match else ("info", line)
        if message.startswith("frame="):
            self.final_report = message
        elif level in ("panic", "fatal", "error"):
            self.error_count += 1
            if len(self.errors) < 8:
                self.errors.append(message.strip())
        elif not self.banner_done.is_set() and len(self.banner) < 500:
            self.banner.append(message)
            # the banner ends with the stream that frames come through
            self._in_output = self._in_output or message.startswith("Output #0")
            if self._in_output and message.lstrip().startswith("Stream #"):
                self.banner_done.set()

    def telling_error(self) -> str:
        """The error line that best says what went wrong."""
        for hint in ("No such file", "matches no streams", "moov atom not found", "partial file",
                     "Permission denied", "No space left", "Invalid data found"):
            for line in self.errors:
                if hint in line:
                    return line
        return self.errors[0] if self.errors else ""


def _new_session() -> dict:
    # Ctrl-C goes to segtool only; segtool then stops or finishes its children in order.
    if sys.platform.startswith("win"):
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


class _Child:
    def __init__(self, command: list[str], *, reads: bool):
        self.command = command
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL if reads else subprocess.PIPE,
                stdout=subprocess.PIPE if reads else subprocess.DEVNULL, stderr=subprocess.PIPE,
                bufsize=0, **_new_session(),
            )
        except OSError as exc:
            raise InputError(f"cannot run {Path(command[0]).name}: {exc.strerror or exc}") from exc
        self.log = _Log(self.process.stderr)

    def finish(self) -> int:
        """Let the child end on its own (end of its input) and return its exit status."""
        if self.process.stdin:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        code = self.process.wait()
        self.log.join(timeout=2)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                with contextlib.suppress(OSError):
                    stream.close()
        self.process.wait()


# ---- reading --------------------------------------------------------------------------------

class VideoReader:
    """The decoded frames of one source's first video stream, RGB uint8 (H, W, 3), streamed.

    ``constant_rate`` (files): ffmpeg duplicates or drops frames of a variable-rate source so
    that frames arrive at ``info.fps`` exactly and the duration is kept. Live sources pass
    frames through as captured. After iteration, ``problem`` is why decoding stopped early
    (a truncated or damaged file), or None, and ``retimed`` counts the frames ffmpeg repeated
    and dropped to keep the rate constant.
    """

    def __init__(self, source: str, *, input_args: Sequence[str] = (), constant_rate: bool = True,
                 label: Optional[str] = None, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 colour: Optional[Colour] = None):
        self.label = label or source
        self._source = source
        self._closed = False
        self._max_pixels = max_pixels
        self._colour = colour
        self.problem: Optional[str] = None
        self.retimed = (0, 0)
        # ffmpeg's decoders refuse frames over the limit themselves, so that none is ever allocated
        # (a 30 KB GIF can declare 16000x16000); the banner check below says so in one line.
        limit = ["-max_pixels", str(min(max_pixels, _FFMPEG_INT_MAX))] if max_pixels else []
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
                   *input_args, *limit, "-i", source, "-map", "0:v:0", "-an", "-sn", "-dn",
                   "-vf", _square_pixels(max_pixels, colour), "-fps_mode", "cfr" if constant_rate else "passthrough",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        self._child = _Child(command, reads=True)
        self.info = self._read_banner()

    def _read_banner(self) -> VideoInfo:
        log = self._child.log
        if not log.banner_done.wait(_HEADER_TIMEOUT_S):
            self.close()
            raise InputError(f"{self.label}: no video from ffmpeg after {_HEADER_TIMEOUT_S:.0f} s")
        too_large = pixel_problem(log.banner, log.errors, self.label, self._max_pixels)
        if too_large:
            self.close()
            raise InputError(too_large)
        if "Output #0" not in "\n".join(log.banner):
            self._child.finish()
            raise InputError(_unreadable(self.label, log.telling_error()))
        try:
            return parse_header(log.banner, self._source, self._colour)
        except InputError:
            self.close()
            raise

    def __iter__(self) -> Iterator[np.ndarray]:
        width, height = self.info.size
        stream = self._child.process.stdout
        while True:
            frame = np.empty((height, width, 3), np.uint8)
            got = _read_into(stream, memoryview(frame).cast("B"))
            if got < frame.nbytes:
                break
            yield frame
        self._conclude(partial=got > 0)

    def _conclude(self, partial: bool) -> None:
        if self._closed:  # stopped on purpose, not by the source
            return
        code = self._child.finish()
        log = self._child.log
        self.retimed = tuple(int(_field(log.final_report, name) or 0) for name in ("dup", "drop"))
        if log.error_count or code or partial:
            reason = log.telling_error() or (f"ffmpeg exited with status {code}" if code else "a partial frame")
            self.problem = f"decoding stopped early ({reason})"

    def close(self) -> None:
        """Stop decoding now (safe from another thread: it ends a blocked read)."""
        self._closed = True
        self._child.kill()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _square_pixels(max_pixels: Optional[int], colour: Optional[Colour] = None) -> str:
    """ffmpeg filters showing anamorphic frames in square pixels, sized as square_size() does,
    and converting to RGB with ``colour``'s matrix and range (None: the stream's own tags).

    Frames whose square size would pass ``max_pixels`` keep their size: the reader refuses such
    a stream from its banner, and ffmpeg must not allocate the large frame before it does.
    """
    square = f"lte(abs(sar-1),{SQUARE_TOLERANCE})"
    width = f"if({square},iw,if(gt(sar,1),2*round(iw*sar/2),iw))"
    height = f"if({square},ih,if(gt(sar,1),ih,2*round(ih/sar/2)))"
    if max_pixels:
        over = f"gt({width}*{height},{max_pixels})"
        width, height = f"if({over},iw,{width})", f"if({over},ih,{height})"
    convert = f":in_color_matrix={SCALER_MATRIX[colour.matrix]}:in_range={colour.range}" if colour else ""
    return f"scale=w='{width}':h='{height}'{convert},setsar=1"


def _field(report: str, name: str) -> Optional[str]:
    match = re.search(r"\b%s=\s*(\S+)" % name, report)
    return match.group(1) if match else None


def _read_into(stream, buffer: memoryview) -> int:
    done = 0
    while done < len(buffer):
        try:
            got = stream.readinto(buffer[done:])
        except (OSError, ValueError):  # the pipe was closed under us by close()
            return done
        if not got:
            return done
        done += got
    return done


def _write_all(stream, frame: np.ndarray) -> None:
    # an unbuffered pipe may take part of a large write when a signal arrives mid-way
    view = memoryview(frame).cast("B")
    while view:
        view = view[stream.write(view):]


def _unreadable(label: str, error: str) -> str:
    if "No such file" in error:
        return f"{label}: no such file"
    if "matches no streams" in error:
        return f"{label}: has no video stream"
    if "Permission denied" in error:
        return f"{label}: permission denied"
    if "moov atom not found" in error:
        return f"{label}: not a complete video (moov atom not found: truncated, still being written, or not a video)"
    if "Unknown input format: 'webp_anim'" in error:
        return f"{label}: an animated WebP, which this ffmpeg cannot read (it needs ffmpeg 8 or newer)"
    detail = error.replace("Error opening input: ", "") or "no details"
    return f"{label}: not a video ffmpeg can read ({detail})"


def open_video(path, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> VideoReader:
    """Decode a video file; InputError (one line) when it is missing, not a video, or over ``max_pixels``.

    Animated PNG and WebP are read as videos (every frame). The stream's colour description is
    read first, so that untagged HD is decoded as BT.709, as players show it.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    source, input_args = ffmpeg_path(path), image_format(path)
    return VideoReader(source, input_args=input_args, label=str(path), max_pixels=max_pixels,
                       colour=probe_colour(source, input_args, max_pixels))


def ffmpeg_path(path) -> str:
    """A local path as ffmpeg takes it literally: ``file:`` and absolute, so that a ':' is not read
    as a protocol (``take:2.mp4``), a leading '-' not as an option."""
    return "file:" + os.path.abspath(os.fspath(path))


def image_format(path) -> list[str]:
    """ffmpeg input options that make it read every frame of an animated PNG or WebP.

    ffmpeg tells an animated PNG from a still one only when its animation chunk comes early;
    after a large colour profile or text chunk it decodes the first frame alone.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return ["-f", "apng"] if _png_is_animated(file) else []
            if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and head[20] & 0x02:
                return ["-f", "webp_anim"]
    except OSError:
        pass  # the decoder says what is wrong with it
    return []


def _png_is_animated(file) -> bool:
    file.seek(8)
    for _ in range(10_000):
        header = file.read(8)
        if len(header) < 8:
            return False
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if kind == b"acTL":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        file.seek(length + 4, os.SEEK_CUR)
    return False


def probe_colour(source: str, input_args: Sequence[str], max_pixels: Optional[int]) -> Optional[Colour]:
    """The Colour a file's frames are decoded with (``source_colour``), from ``ffmpeg -i``; None
    when ffmpeg cannot tell (the decoder then reports why, or uses the stream's own tags)."""
    limit = ["-max_pixels", str(min(max_pixels, _FFMPEG_INT_MAX))] if max_pixels else []
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", *input_args, *limit, "-i", source]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=_HEADER_TIMEOUT_S, **_new_session())
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = _stream_line(done.stderr.decode("utf-8", "replace"), "Video")
    try:
        width, height = _frame_size(line)
    except InputError:
        return None
    return source_colour(line, width, height)


# ffmpeg's capture formats, as --source FORMAT:INPUT names them
_DEVICE_FORMATS = ("v4l2", "video4linux2", "avfoundation", "dshow", "x11grab", "gdigrab", "lavfi", "kmsgrab",
                   "fbdev", "decklink", "android_camera", "vfwcap")


def live_input(source: Optional[str]) -> tuple[list[str], str]:
    """ffmpeg input arguments and target for ``--source``: a file, a device, 'FORMAT:TARGET' or a URL.

    A file that exists wins: ``in:1.mp4`` is that file even though it looks like FORMAT:INPUT
    (name it ``./lavfi:x`` or the like if it could be mistaken for a capture format). Files and
    lavfi graphs are read at their own frame rate (-re) so that they stand in for a camera;
    devices deliver in real time anyway.
    """
    if not source:
        source = _default_camera()
    if os.path.isfile(source):
        return ["-re", *image_format(source)], ffmpeg_path(source)
    prefix, _, target = source.partition(":")
    if source.startswith("/dev/video"):
        prefix, target = "v4l2", source
    if prefix in ("v4l2", "video4linux2") and not Path(target).exists():
        raise InputError(f"{target}: no such camera; name another with --source (a device, a video file, "
                         "or an ffmpeg graph such as 'lavfi:testsrc2=size=640x360:rate=30')")
    if prefix in _DEVICE_FORMATS and target:
        return (["-re"] if prefix == "lavfi" else []) + ["-f", prefix], target
    if re.match(r"[a-z][a-z0-9+.-]*://", source):  # a URL: rtsp://, http://, srt://, ...
        return ["-re"], source
    if os.path.isdir(source):
        raise InputError(f"{source}: is a directory, not a video")
    raise InputError(f"{source}: no such file or device")


def _default_camera() -> str:
    if sys.platform.startswith("linux"):
        return "v4l2:/dev/video0"
    if sys.platform == "darwin":
        return "avfoundation:0"
    raise UsageError("no default camera on this platform: name one with --source (e.g. 'dshow:video=NAME')")


def open_live(source: Optional[str], *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> VideoReader:
    """A camera (default: the first), a file or an ffmpeg lavfi graph, frames as they come."""
    input_args, target = live_input(source)
    colour = probe_colour(target, input_args, max_pixels) if target.startswith("file:") else None
    return VideoReader(target, input_args=input_args, constant_rate=False, label=source or target,
                       max_pixels=max_pixels, colour=colour)


# ---- writing --------------------------------------------------------------------------------

def is_video_path(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS or is_device(path)


def is_device(path) -> bool:
    return str(path).startswith("/dev/video")


def encoder_args(path, channels: int, width: int, height: int) -> tuple[list[str], str]:
    """(ffmpeg output arguments, muxer) for frames of ``channels`` (1 grey, 3 RGB, 4 RGBA).

    H.264 High 4:2:0 for MP4/MOV/MKV/AVI (what browsers, QuickTime and phones play), VP9 for
    WebM; alpha as VP9 yuva420p (WebM) or ProRes 4444 (MOV). Sizes must be even (even_size).
    """
    if is_device(path):
        return ["-pix_fmt", "yuv420p"], "v4l2"
    suffix = Path(path).suffix.lower()
    muxer = _MUXERS.get(suffix)
    if muxer is None:
        raise OutputError(f"{path}: unknown video format '{suffix}'; use one of {', '.join(sorted(_MUXERS))}")
    if channels == 4:
        return _alpha_encoder(path, muxer), muxer
    if muxer == "webm":
        return ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-crf", "32", "-b:v", "0",
                "-deadline", "good", "-cpu-used", "5", "-row-mt", "1"], muxer
    args = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "high", "-preset", "veryfast", "-crf", "18"]
    if muxer in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    return args, muxer


def _alpha_encoder(path, muxer: str) -> list[str]:
    if muxer == "webm":
        return ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-crf", "30", "-b:v", "0",
                "-deadline", "good", "-cpu-used", "5", "-row-mt", "1"]
    if muxer == "mov":
        return ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-vendor", "apl0"]
    raise OutputError(f"{path}: {Path(path).suffix} cannot hold an alpha channel; "
                      "use .webm (VP9) or .mov (ProRes 4444)")


def audio_args(muxer: str, codec: Optional[str]) -> list[str]:
    """Map the second input's first audio stream: copied where the container takes it."""
    if not codec or muxer == "v4l2":
        return []
    takes = _AUDIO_COPY.get(muxer)
    how = "copy" if takes is None or codec in takes else _AUDIO_ENCODER[muxer]
    return ["-map", "1:a:0", "-c:a", how]


# grey goes in as limited-range 4:2:0 made here (grey_to_yuv420): exact, where ffmpeg's own
# conversion goes through the BT.709 matrix for HD and comes out one or two levels darker
_PIXEL_FORMATS = {1: "yuv420p", 3: "rgb24", 4: "rgba"}
_GREY_TO_LIMITED = np.round(16 + np.arange(256) * 219 / 255).astype(np.uint8)


def grey_to_yuv420(grey: np.ndarray) -> list[np.ndarray]:
    """A grey frame (even size) as the planes of limited-range YUV 4:2:0: luma, neutral chroma."""
    chroma = np.full(grey.size // 2, 128, np.uint8)
    return [_GREY_TO_LIMITED[grey], chroma]


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size a video of ``width`` x ``height`` frames is encoded at: 4:2:0 chroma (all that
    browsers and QuickTime play) needs even sizes, so an odd width or height loses its last
    column or row. Every video of a run is cut alike, so that they stay aligned."""
    return max(2, width - width % 2), max(2, height - height % 2)


def _to_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` cut to ``size`` (even_size); a 1-pixel side is repeated instead, there is nothing to cut."""
    width, height = size
    frame = frame[:height, :width]
    short = (height - frame.shape[0], width - frame.shape[1])
    if any(short):
        frame = np.pad(frame, ((0, short[0]), (0, short[1])) + ((0, 0),) * (frame.ndim - 2), mode="edge")
    return frame


def _colour_args(colour: Colour, muxer: str, channels: int) -> tuple[list[str], list[str], list[str]]:
    """(input tags, conversion filter, output tags): the frames' primaries and transfer are the
    source's; RGB becomes YUV with its matrix and range, and the output says so.

    A grey mask video and ProRes are limited range whatever the source (readers that ignore
    the tags then still read them right; ProRes has no full range); a v4l2 device takes no tags.
    """
    if channels == 1 or muxer == "mov" and channels == 4:
        colour = dataclasses.replace(colour, range="tv")
    if channels == 1:  # already YUV (grey_to_yuv420): said so, nothing to convert
        return colour.tags(), [], colour.tags() if muxer != "v4l2" else []
    convert = ["-vf", f"scale=out_color_matrix={SCALER_MATRIX[colour.matrix]}:out_range={colour.range}"]
    if muxer == "v4l2":
        return [], ["-vf", f"scale=out_color_matrix={SCALER_MATRIX[colour.matrix]}:out_range=tv"], []
    return ["-color_primaries", colour.primaries, "-color_trc", colour.transfer], convert, colour.tags()


class VideoWriter:
    """Frames into a video file, written under a temporary name and renamed when complete.

    Use as a context manager: leaving it normally finishes the file (and renames it); leaving
    it by an exception (Ctrl-C, SIGTERM included) stops ffmpeg and leaves no file. A
    v4l2loopback device (/dev/videoN) is written directly. ``audio_from`` muxes the audio of
    that VideoInfo's source. ``realtime`` stamps frames with their arrival time and fills gaps
    by repeating frames: for live sources whose frames come unevenly or are dropped.
    ``colour``: the source's (VideoInfo.colour), which the video is encoded with and tagged as,
    so that it plays as the source does (default: what players assume of this size). Frames
    are ``width`` x ``height``; the video is ``encoded_size`` (even_size).
    """

    def __init__(self, path, *, width: int, height: int, fps: Fraction, channels: int = 3,
                 audio_from: Optional[VideoInfo] = None, realtime: bool = False,
                 colour: Optional[Colour] = None):
        self.path = Path(path) if not is_device(path) else path
        self.size = (width, height)
        self.encoded_size = even_size(width, height)
        self.channels = channels
        self.frames_written = 0
        self._fps = Fraction(fps)
        self._codec_args, self._muxer = encoder_args(path, channels, *self.encoded_size)
        self._colour = colour or Colour.guess(width, height)
        self._audio = audio_from if audio_from and audio_from.audio_codec else None
        self._realtime = realtime
        self._stack = contextlib.ExitStack()
        self._child: Optional[_Child] = None

    def _command(self, target: str) -> list[str]:
        width, height = self.encoded_size
        rate = f"{self._fps.numerator}/{self._fps.denominator}"
        clock = ["-use_wallclock_as_timestamps", "1"] if self._realtime else ["-r", rate]
        tag_input, convert, tag_output = _colour_args(self._colour, self._muxer, self.channels)
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error", "-y",
                   "-f", "rawvideo", "-pix_fmt", _PIXEL_FORMATS[self.channels], "-s", f"{width}x{height}",
                   *tag_input, *clock, "-i", "pipe:0"]
        if self._audio:
            command += ["-i", self._audio.source]
        command += ["-map", "0:v:0", *convert, *self._codec_args, *tag_output,
                    *audio_args(self._muxer, getattr(self._audio, "audio_codec", None))]
        if self._realtime:
            command += ["-fps_mode", "cfr", "-r", rate]
        return command + ["-f", self._muxer, target]

    def __enter__(self) -> "VideoWriter":
        if is_device(self.path) and not os.path.exists(self.path):
            raise OutputError(f"{self.path}: no such device; create a virtual camera with v4l2loopback "
                              f"(sudo modprobe v4l2loopback video_nr={str(self.path)[len('/dev/video'):] or 10})")
        try:
            target = self.path
            if not is_device(self.path):
                ensure_dir(self.path.parent)
                target = self._stack.enter_context(atomic_output(self.path))
            self._child = _Child(self._command(str(target) if is_device(target) else ffmpeg_path(target)),
                                 reads=False)
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        expected = (self.size[1], self.size[0]) + ((self.channels,) if self.channels > 1 else ())
        frame = frame[:, :, 0] if frame.ndim == 3 and self.channels == 1 else frame
        if frame.shape != expected or frame.dtype != np.uint8:
            raise OutputError(f"{self.path}: frame {frame.shape} {frame.dtype} does not fit a {expected} uint8 video")
        if self.encoded_size != self.size:
            frame = _to_size(frame, self.encoded_size)
        try:
            for part in grey_to_yuv420(frame) if self.channels == 1 else [frame]:
                _write_all(self._child.process.stdin, np.ascontiguousarray(part))
        except OSError as exc:
            self._child.finish()
            raise _encode_error(self.path, self._child.log.telling_error() or str(exc), "cannot encode") from exc
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._finish()
            self._stack.__exit__(None, None, None)
        else:
            self._child.kill()
            self._stack.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        code = self._child.finish()
        if code or not self.frames_written:
            error = self._child.log.telling_error() or f"ffmpeg exited with status {code}"
            problem = (_encode_error(self.path, error, "cannot encode") if self.frames_written
                       else OutputError(f"{self.path}: no frames to write"))
            self._stack.__exit__(OutputError, problem, None)  # removes the temporary file
            raise problem


def _encode_error(path, ffmpeg_error: str, what: str) -> OutputError:
    # a full disk says so in ffmpeg's text only; write_error makes it stop a batch like any other
    return write_error(path, RuntimeError(ffmpeg_error), what)


class PreviewWindow:
    """A window showing frames, through ffplay (OpenCV's headless build has no windows).

    ``write`` returns False once the user has closed the window.
    """

    def __init__(self, *, width: int, height: int, fps: Fraction, title: str = "segtool"):
        player = preview_player()
        command = [player, "-hide_banner", "-loglevel", "error", "-window_title", title,
                   "-f", "rawvideo", "-pixel_format", "rgb24", "-video_size", f"{width}x{height}",
                   "-framerate", str(float(fps)), "-fflags", "nobuffer", "-i", "pipe:0"]
        self._child = _Child(command, reads=False)

    def write(self, frame: np.ndarray) -> bool:
        try:
            _write_all(self._child.process.stdin, np.ascontiguousarray(frame[:, :, :3]))
            return True
        except OSError:
            return False

    def __enter__(self) -> "PreviewWindow":
        return self

    def __exit__(self, *exc_info) -> None:
        self._child.kill()


def preview_player() -> str:
    """ffplay's path, or a UsageError saying why a preview cannot be shown here."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("no display for a preview window (DISPLAY is not set); "
                         "write to a file or a v4l2loopback device with --output")
    player = shutil.which("ffplay")
    if not player:
        raise UsageError("a preview window needs ffplay on PATH (it comes with ffmpeg; imageio-ffmpeg does "
                         "not ship it); or write to a file or a v4l2loopback device with --output")
    return player
