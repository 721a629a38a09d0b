"""Colour descriptions of video: what a stream's YUV means as RGB, and what players assume.

ffmpeg's names throughout (``-colorspace``, ``-color_primaries``, ``-color_trc``, ``-color_range``).
The reader turns YUV into RGB with a Colour and the writers turn RGB back into YUV with the same
one and tag their output with it, so that what plays equals what came in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# ffmpeg's names of the YUV matrices its scaler converts with (-colorspace -> scale's *_color_matrix)
SCALER_MATRIX = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470", "fcc": "fcc",
                 "smpte240m": "smpte240m", "bt2020nc": "bt2020"}
_RANGES = ("tv", "pc")
_RGB_FORMATS = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "pal", "gray", "ya", "mono")


@dataclass(frozen=True)
class Colour:
    """How the RGB frames relate to a YUV video, in ffmpeg's names: the matrix (``-colorspace``),
    primaries, transfer and range ('tv' limited, 'pc' full).

    The frames keep the source's primaries and transfer (nothing converts them), so an output
    tagged with this description, and encoded with this matrix and range, plays as the source.
    """

    matrix: str = "bt709"
    primaries: str = "bt709"
    transfer: str = "bt709"
    range: str = "tv"

    @staticmethod
    def guess(width: int, height: int) -> "Colour":
        """What players assume of an untagged video of this size: HD is BT.709, SD BT.601
        (625-line primaries at 576 lines, 525-line otherwise), limited range (as mpv decides)."""
        if width >= 1280 or height > 576:
            return Colour()
        return Colour("smpte170m", "bt470bg" if height == 576 else "smpte170m", "smpte170m", "tv")

    def tags(self) -> list[str]:
        return ["-colorspace", self.matrix, "-color_primaries", self.primaries,
                "-color_trc", self.transfer, "-color_range", self.range]


def source_colour(line: str, width: int, height: int, *, untagged_matrix: Optional[str] = None) -> Colour:
    """The Colour to decode a stream with and to tag outputs with, from ffmpeg's stream line.

    Tagged facts are kept; missing ones are guessed as players do (Colour.guess), except the
    matrix when ``untagged_matrix`` says what the decoder used already (ffmpeg's default, BT.601).
    RGB sources (PNG, GIF, ...) take the guess, so a player that ignores the tags still agrees.
    """
    pix_fmt, facts = stream_colour(line)
    guess = Colour.guess(width, height)
    if pix_fmt.startswith(_RGB_FORMATS):
        return guess
    matrix = facts.get("matrix")
    if matrix not in SCALER_MATRIX:  # untagged, or a matrix the scaler cannot convert with
        matrix = untagged_matrix or guess.matrix
    return Colour(
        matrix=matrix,
        primaries=facts.get("primaries") or guess.primaries,
        transfer=facts.get("transfer") or guess.transfer,
        range=facts.get("range") or ("pc" if pix_fmt.startswith("yuvj") else "tv"),
    )


def stream_colour(line: str) -> tuple[str, dict]:
    """(pixel format, {range, matrix, primaries, transfer} as tagged) from ffmpeg's stream line.

    ffmpeg writes ``yuv420p(tv, bt709, progressive)`` when the three agree and
    ``yuv420p(pc, bt470bg/bt709/smpte170m)`` (matrix/primaries/transfer) when not; 'unknown'
    (or no parenthesis at all) is untagged.
    """
    match = re.search(r"Video: .*?, ([a-z][a-z0-9_]*)(?:\(([^)]*)\))?(?:,|$)", line)
    if not match:
        return "", {}
    facts: dict = {}
    for item in (match.group(2) or "").split(","):
        item = item.strip()
        if item in _RANGES:
            facts["range"] = item
        elif item.count("/") == 2:
            facts.update(zip(("matrix", "primaries", "transfer"), item.split("/")))
        elif item in SCALER_MATRIX or item in ("bt2020c", "ycgco", "gbr", "smpte2085", "ictcp"):
            facts.update(matrix=item, primaries=item, transfer=item)
    return match.group(1), {k: v for k, v in facts.items() if v not in ("unknown", "reserved", "unspecified")}
