"""Encoding outputs; every file is written under a temporary name and renamed when complete."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from pathlib import Path, PurePath
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from ..errors import OutputError, OutputStorageError, first_line
from . import encoders, ledger, storage
from .images import ImageFacts


# Temporaries being written right now. The `finally` in atomic_output removes each one, but
# a second signal can land inside that `finally`; the CLI then calls remove_partial_outputs.
_PARTIAL: set[Path] = set()
# Errors that say the storage itself is unusable, not just this one file.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


@contextlib.contextmanager
def atomic_output(path: Path, *, guarded: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    An exception, Ctrl-C or SIGTERM (raised as an exception by the CLI) leaves no partial file,
    so a file at ``path`` is always complete: `--skip-existing` can trust it. An object-store
    location is uploaded whole from a local temporary instead (there is nothing to rename).

    ``guarded`` (every user-facing local output): refuse, with an OutputError, to replace anything
    at ``path`` but a file segtool wrote (see ledger.py), checked before and again at the rename,
    and record the new file in the folder's ledger. segtool's own stores (models) pass False.
    """
    if storage.is_remote(path):
        if guarded:
            _refuse_foreign(path)
        with storage.whole_upload(path) as tmp:
            yield tmp
        return
    path = Path(path)
    if guarded:
        _refuse_foreign(path)
    tmp = path.with_name(temporary_name(path.name, _name_max(path.parent)))
    _PARTIAL.add(tmp)
    try:
        yield tmp
        if guarded:
            _refuse_foreign(path)  # something may have appeared there while we wrote
            ledger.record_written(tmp, path)  # records it, then renames it into place
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc, "cannot write") from exc
    finally:
        _discard(tmp)


def _refuse_foreign(path: Path) -> None:
    problem = ledger.overwrite_problem(path)
    if problem is not None:
        raise OutputError(problem)


def _discard(tmp: Path) -> None:
    # Best effort: this runs while another error is on its way out, and must not replace it.
    with contextlib.suppress(OSError):
        tmp.unlink()
    _PARTIAL.discard(tmp)


_PART = ".part-"
_PID_DIGITS = 7  # Linux's largest pid_max, 4194304: a temporary's name never depends on the pid's length
_DEFAULT_NAME_MAX = 255  # bytes: ext4, XFS, Btrfs, APFS, NTFS (in UTF-16 units), most others


def temporary_name(name: str, name_max: int = _DEFAULT_NAME_MAX) -> str:
    """The hidden name ``name`` is written under before its rename: ``.NAME.part-PID``.

    It fits wherever ``name`` fits: when that would be longer than ``name_max`` bytes, ``NAME`` is
    cut (at a character, never inside a UTF-8 sequence) and a hash of the whole name keeps it
    unique. remove_stale_partials finds either form from the final name (temporary_stem).
    """
    return f"{temporary_stem(name, name_max)}{_PART}{os.getpid()}"


def temporary_stem(name: str, name_max: int = _DEFAULT_NAME_MAX) -> str:
    """What ``name``'s temporaries are called before ``.part-PID``."""
    room = name_max - len(_PART) - _PID_DIGITS
    plain = "." + name
    if len(os.fsencode(plain)) <= room:
        return plain
    digest = "~" + hashlib.sha1(os.fsencode(name)).hexdigest()[:16]
    budget = room - len(digest) - 1
    cut = name
    while len(os.fsencode(cut)) > budget:
        cut = cut[:-1]
    return f".{cut}{digest}"


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system under ``folder`` takes."""
    try:
        return min(os.pathconf(folder, "PC_NAME_MAX"), 4096)
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no folder yet
        return _DEFAULT_NAME_MAX


def remove_partial_outputs() -> None:
    """Delete every temporary still being written (the CLI calls this when a signal ends a run)."""
    for tmp in list(_PARTIAL):
        _discard(tmp)


def remove_stale_partials(folders: Iterable[Path]) -> None:
    """Remove the temporaries that killed processes left (``kill -9`` runs no ``finally``) beside
    outputs that are now complete: one scan of each local folder, touching only the names
    atomic_output makes, and only where the file they were for exists.

    Every engine calls it when its run is over. A temporary whose process is still running on
    this machine (another run rewriting the same outputs right now) is left alone.
    """
    for folder in folders:
        if storage.is_remote(folder):
            continue
        with contextlib.suppress(OSError):
            entries = list(os.scandir(folder))
            name_max = _name_max(folder)
            finished = {temporary_stem(e.name, name_max) for e in entries if e.is_file()}
            for entry in entries:
                stem, part, pid = entry.name.rpartition(_PART)
                if (entry.name.startswith(".") and part and pid.isdigit() and stem in finished
                        and not _running(int(pid))):
                    _discard(Path(entry.path))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this run's own leftovers: nothing of it is being written any more
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number no process can have: leave it
    return True


def write_error(path: Path, exc: Exception, what: str) -> OutputError:
    """One line naming ``path``; a full or read-only disk becomes an OutputStorageError."""
    number = getattr(exc, "errno", None) or _errno_named_in(exc)
    # strerror rather than str(exc): no "[Errno 28]" and no temporary file name in the line.
    text = os.strerror(number) if number else first_line(exc)
    if number in _STORAGE_ERRNOS:
        return OutputStorageError(f"{path}: {what} ({text}); stopping, later outputs would fail too")
    return OutputError(f"{path}: {what} ({text})")


def _errno_named_in(exc: Exception) -> Optional[int]:
    # C++ writers (OpenEXR) raise RuntimeError carrying strerror's text instead of an errno.
    return next((n for n in _STORAGE_ERRNOS if os.strerror(n) in str(exc)), None)


def ensure_dir(folder: Path) -> Path:
    """Create ``folder`` if needed; an OutputError (exit status 1) when it cannot take files."""
    if storage.is_remote(folder):
        storage.check_writable(folder)  # no folders to create, but a bucket that must take objects
        return folder
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc, "cannot create output folder") from exc
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder}: output folder is not writable")
    return Path(folder)


def category_palette() -> list[int]:
    """PASCAL VOC's colour map: index 0 black, then well-separated colours; 256 RGB triples."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [red, green, blue]
    return palette


def write_category_png(path: Path, mask: np.ndarray) -> None:
    """An 8-bit grey PNG whose pixel values are the category indices, as every reader returns them."""
    _write_bytes(path, category_png_bytes(mask))


def category_png_bytes(mask: np.ndarray) -> bytes:
    """write_category_png's file as bytes (dataset shards hold the same PNG as the loose file)."""
    return encoders.png_bytes(np.ascontiguousarray(mask, dtype=np.uint8))


def write_category_preview(path: Path, mask: np.ndarray) -> None:
    """An RGB PNG for looking at: each category in its colour of category_palette()."""
    colours = np.asarray(category_palette(), dtype=np.uint8).reshape(256, 3)
    _write_bytes(path, encoders.png_bytes(colours[np.asarray(mask, dtype=np.uint8)]))


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as stream:
        stream.write(data)


class _WriteOnly:
    """Hides that a stream is a real file, so numpy writes it through ``write`` in chunks.

    On a real file np.save uses ndarray.tofile, which reports a full disk as an OSError with
    no errno ("N requested and M written"); ``write`` raises ENOSPC like everything else.
    """

    def __init__(self, stream):
        self.write = stream.write


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as stream:
            np.save(_WriteOnly(stream), array)


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as a .npy file in memory (np.load(io.BytesIO(data)) gives it back)."""
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=False)
    return stream.getvalue()


def write_exr(path: Path, masks: np.ndarray, labels: Sequence[str]) -> None:
    """One float32 channel per category, named by its label."""
    import OpenEXR

    channels = {label: np.ascontiguousarray(m, dtype=np.float32) for label, m in zip(labels, masks)}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_output(path) as tmp, open(tmp, "wb") as stream:
        with OpenEXR.File(header, channels) as exr:
            try:
                # a stream, not str(tmp): OpenEXR refuses a name that is not valid UTF-8
                exr.write(stream)
            except (RuntimeError, OSError) as exc:  # OpenEXR's C++ errors, a full disk among them
                raise write_error(path, exc, "cannot write") from exc


def read_exr(path: Path) -> dict[str, np.ndarray]:
    import OpenEXR

    with open(path, "rb") as stream, OpenEXR.File(stream) as exr:
        return {name: channel.pixels for name, channel in exr.channels().items()}


def write_image(path: Path, image: np.ndarray, *, quality: int = 95,
                facts: Optional[ImageFacts] = None) -> None:
    """An RGB or RGBA uint8 picture in the format its extension names.

    ``facts``: the source photo's colour profile and EXIF, embedded where the format carries them
    (JPEG, PNG, WebP, TIFF; not BMP). Without them the file is plain (as mask files are).
    """
    import imageio.v3 as iio

    suffix = PurePath(str(path)).suffix.lower()
    options = _encode_options(path, image, suffix, quality, facts)
    try:
        fast = _fast_encoding(suffix, image, options)
    except ValueError as exc:
        raise OutputError(f"{path}: cannot encode as '{suffix}' ({first_line(exc)})") from exc
    if fast is not None:
        _write_bytes(path, fast)
        return
    with atomic_output(path) as tmp:
        try:
            iio.imwrite(tmp, image, plugin="pillow", extension=suffix, **options)
        except (ValueError, KeyError) as exc:
            raise OutputError(f"{path}: cannot encode as '{suffix}' ({first_line(exc)})") from exc


def _fast_encoding(suffix: str, image: np.ndarray, options: dict) -> Optional[bytes]:
    """The bytes of encoders.py's faster paths where they apply (None: Pillow writes the file).

    JPEG: Pillow's own bytes, sooner. PNG: grey masks (the alpha mask), whose runs it packs
    smaller and 10x sooner; photos keep Pillow's filters, which suit them.
    """
    if image.dtype != np.uint8 or not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
        return None
    if suffix in (".jpg", ".jpeg"):
        if set(options) - {"quality", "icc_profile", "exif"}:
            return None  # what the fast path does not write (a print resolution): Pillow writes it
        return encoders.jpeg_bytes(image, options.get("quality", 95), icc_profile=options.get("icc_profile"),
                                   exif=options.get("exif"))
    if suffix == ".png" and image.ndim == 2 and not options:
        return encoders.png_bytes(image)
    return None


def image_bytes(image: np.ndarray, suffix: str, *, quality: int = 95, facts: Optional[ImageFacts] = None,
                name: str = "") -> bytes:
    """write_image's file as bytes, for dataset shards; ``suffix`` is ".png", ".jpg", ...;
    ``name`` (the input) is what an error line names."""
    import imageio.v3 as iio

    suffix = suffix.lower()
    options = _encode_options(name, image, suffix, quality, facts)
    try:
        fast = _fast_encoding(suffix, image, options)
        return fast if fast is not None else iio.imwrite("<bytes>", image, plugin="pillow", extension=suffix, **options)
    except (ValueError, KeyError) as exc:
        raise OutputError(f"{name}: cannot encode as '{suffix}' ({first_line(exc)})") from exc


def _encode_options(path, image: np.ndarray, suffix: str, quality: int, facts: Optional[ImageFacts]) -> dict:
    options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    if suffix in (".jpg", ".jpeg") and image.shape[-1] == 4:
        raise OutputError(f"{path}: JPEG has no alpha channel; use .png or .webp")
    options.update(_metadata_options(suffix, facts))
    if suffix in (".tif", ".tiff") and "dpi" not in options:
        options["resolution_unit"] = 1  # "no unit": Pillow's default claims 1 dot per inch
    return options


_CARRIES_METADATA = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}
_JPEG_EXIF_LIMIT = 65533 - 8  # one APP1 segment; Pillow refuses a longer EXIF block


# Formats whose Pillow writer takes ``dpi`` (JFIF density, pHYs, TIFF resolution, BMP's pixels per
# metre); WebP has no resolution field of its own: EXIF carries it there.
_CARRIES_DPI = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def _metadata_options(suffix: str, facts: Optional[ImageFacts]) -> dict:
    if facts is None:
        return {}
    options = {}
    if facts.dpi and suffix in _CARRIES_DPI:
        options["dpi"] = facts.dpi
    if suffix not in _CARRIES_METADATA:
        return options
    if facts.icc_profile:
        options["icc_profile"] = facts.icc_profile
    if facts.exif and not (suffix in (".jpg", ".jpeg") and len(facts.exif) > _JPEG_EXIF_LIMIT):
        options["exif"] = facts.exif
    elif facts.dpi and suffix == ".webp":
        options["exif"] = _resolution_exif(facts.dpi)
    return options


def _resolution_exif(dpi: tuple[float, float]) -> bytes:
    """An EXIF block holding only the print resolution (for formats that keep it nowhere else)."""
    from fractions import Fraction

    from PIL import Image

    tags = Image.Exif()
    tags[0x011A], tags[0x011B] = (Fraction(v).limit_denominator(10000) for v in dpi)
    tags[0x0128] = 2  # inches
    return tags.tobytes()


def composite_extension(source: Path, override: Optional[str] = None) -> str:
    """Composites keep the input's format unless told otherwise; odd formats fall back to PNG."""
    if override:
        return "." + override.lstrip(".").lower()
    suffix = PurePath(str(source)).suffix.lower()
    return suffix if suffix in {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"} else ".png"


def existing(paths: Iterable[Path]) -> bool:
    """Whether every one of ``paths`` is a whole output segtool wrote (what --skip-existing skips).

    The same rule for both kinds of storage: a local file is judged by its folder's ledger, an
    object by one listing of its prefix and, for objects that exist, the mark segtool uploads.
    """
    return all(storage.remote_written_by_segtool(p) if storage.is_remote(p) else ledger.written_by_segtool(p)
               for p in paths)
