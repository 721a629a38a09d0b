"""scripts/gpu_pack.py: other GPU generations' kernels are zeroed, the library's layout is kept.

A small ELF64 library is built here with a .nv_fatbin section laid out as CUDA's fatbinary
containers are (the layout the real onnxruntime-gpu provider library was read with)."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_pack.py"


def _gpu_pack():
    spec = importlib.util.spec_from_file_location("gpu_pack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(kind: int, arch: int, payload: bytes) -> bytes:
    header = bytearray(64)
    struct.pack_into("<HHIQ", header, 0, kind, 0x0101, len(header), len(payload))
    struct.pack_into("<I", header, 28, arch)
    return bytes(header) + payload


def _container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def _library(fatbin: bytes) -> tuple[bytes, int]:
    """ELF64 header, the fatbin section's bytes, a name table, three section headers."""
    names = b"\0.nv_fatbin\0.shstrtab\0"
    fatbin_at = 64
    names_at = fatbin_at + len(fatbin)
    table_at = names_at + len(names)
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    struct.pack_into("<Q", header, 0x28, table_at)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    sections = [bytes(64),
                struct.pack("<IIQQQQ", 1, 1, 0, 0, fatbin_at, len(fatbin)) + bytes(24),
                struct.pack("<IIQQQQ", 12, 3, 0, 0, names_at, len(names)) + bytes(24)]
    return bytes(header) + fatbin + names + b"".join(sections), fatbin_at


def test_only_the_chosen_generations_kernels_are_kept():
    gpu_pack = _gpu_pack()
    ptx, sm80, sm90, sm120 = b"P" * 40, b"8" * 24, b"9" * 32, b"C" * 16
    fatbin = (_container(_entry(1, 90, ptx), _entry(2, 80, sm80), _entry(2, 90, sm90))
              + bytes(8)  # alignment padding between containers
              + _container(_entry(2, 120, sm120)))  # nothing for sm_90: left whole
    library, _ = _library(fatbin)
    kept, blanked = gpu_pack.keep_one_arch(library, 90)
    assert len(kept) == len(library)
    assert blanked == len(ptx) + len(sm80)
    assert sm90 in kept and sm120 in kept
    assert ptx not in kept and sm80 not in kept
    arches = [[(kind, arch) for _, _, kind, arch in entries]
              for entries in gpu_pack.containers(kept, *gpu_pack.fatbin_section(kept))]
    assert arches == [[(1, 90), (2, 80), (2, 90)], [(2, 120)]]  # every header where it was
