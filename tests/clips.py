"""Synthetic test clips made with imageio-ffmpeg's ffmpeg, and facts read back from ffmpeg itself.

A clip is scikit-image's astronaut (a real person) sliding left to right over a flat background,
with a 440 Hz sine as its audio: the mask has something to find and a known way to move.
Facts are parsed from `ffmpeg -i` (ffprobe is not shipped), independently of segtool's reader.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Optional

import cv2
import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
BACKGROUND = (200, 205, 210)


def person(height: int) -> np.ndarray:
    """The astronaut's head and shoulders, ``height`` rows tall, RGB uint8."""
    from skimage import data

    crop = data.astronaut()[20:470, 110:380]
    width = round(crop.shape[1] * height / crop.shape[0])
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def subject_left(index: int, frames: int, width: int, subject_width: int) -> int:
    """Where the subject's left edge is in frame ``index``: from the left edge to the right one."""
    return round(index * (width - subject_width) / max(1, frames - 1))


def frame(index: int, frames: int, size: tuple[int, int], figure: np.ndarray) -> np.ndarray:
    width, height = size
    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = BACKGROUND
    left = subject_left(index, frames, width, figure.shape[1])
    picture[height - figure.shape[0]:, left:left + figure.shape[1]] = figure
    return picture


def make_clip(path: Path, *, size=(320, 240), frames: int = 45, fps: str = "30", audio: bool = True,
              extra: tuple = ()) -> Path:
    """Write an H.264 clip (AAC sine audio unless ``audio`` is False); ``extra`` adds output options."""
    width, height = size
    figure = person(round(height * 0.8))
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", fps, "-i", "pipe:0"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac", "-shortest"]
    chroma = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    command += ["-c:v", "libx264", "-pix_fmt", chroma, "-preset", "ultrafast", *extra, str(path)]
    raw = b"".join(frame(i, frames, size, figure).tobytes() for i in range(frames))
    subprocess.run(command, input=raw, check=True)
    return Path(path)


def ffmpeg_banner(path: Path) -> str:
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def facts(path: Path) -> dict:
    """size, fps, audio codec (or None), alpha (VP9 alpha_mode) and codec, from `ffmpeg -i`."""
    text = ffmpeg_banner(path)
    video = next(line for line in text.splitlines() if ": Video:" in line)
    audio = next((line for line in text.splitlines() if ": Audio:" in line), None)
    width, height = map(int, re.search(r" (\d+)x(\d+)[ ,\[]", video).groups())
    return {
        "size": (width, height),
        "fps": float(re.search(r"([\d.]+) fps", video).group(1)),
        "codec": video.split("Video:", 1)[1].split()[0],
        "pix_fmt": video.split("Video:", 1)[1].split(",")[1].strip(),
        "audio": audio.split("Audio:", 1)[1].split()[0].strip(",") if audio else None,
        "alpha": "alpha_mode" in text and re.search(r"alpha_mode\s*:\s*1", text) is not None,
    }


def count_frames(path: Path) -> int:
    """Frames ffmpeg decodes from the first video stream."""
    result = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                            capture_output=True, text=True)
    return int(re.findall(r"frame=\s*(\d+)", result.stderr)[-1])


def decode(path: Path, *, pix_fmt: str = "rgb24", alpha_decoder: bool = False) -> np.ndarray:
    """Every frame as an array (N, H, W, C); ``alpha_decoder`` uses libvpx, which keeps VP9 alpha."""
    width, height = facts(path)["size"]
    channels = {"rgb24": 3, "rgba": 4, "gray": 1}[pix_fmt]
    command = [FFMPEG, "-hide_banner", "-loglevel", "error"]
    command += ["-c:v", "libvpx-vp9"] if alpha_decoder else []
    command += ["-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, channels)


def centroid_x(mask: np.ndarray) -> Optional[float]:
    """Mean column of the pixels over half way (a mask in 0..1 or 0..255)."""
    threshold = 0.5 if mask.dtype.kind == "f" else 128
    columns = np.nonzero(mask > threshold)[1]
    return float(columns.mean()) if columns.size else None
