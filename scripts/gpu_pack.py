#!/usr/bin/env python
"""onnxruntime-gpu in two pieces small enough for the device tool (64 MiB a call), for scripts/gpu_check.sh.

    python scripts/gpu_pack.py onnxruntime_gpu-*.whl OUT_DIR [--arch 90] [--pieces 2]

The wheel is 255 MB, and 218 MB of it is the CUDA provider's kernels, compiled for six GPU
generations (sm_75 ... sm_120). A GPU loads only the kernels of its own generation, so the
others' bytes are set to zeros (their headers stay, so the library's layout does not change),
and the installed tree is written as one tar.xz: 66 MB for sm_90 (the H100 and H200), cut into
OUT_DIR/ortgpu.part-aa, -ab, ... with OUT_DIR/SHA256. A container of kernels that has none for
--arch is left whole. The Python-only `transformers` and `quantization` tools are left out.

On the device: copy the first piece to a folder in one call and the second in the next, then
`scripts/gpu_check.sh FOLDER` joins, checks and unpacks them (BENCHMARKS.md, "GPU").
"""
from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import struct
import sys
import tarfile
import time
import zipfile
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
ELF_KERNELS = 2  # a fatbin entry of compiled machine code (1 is PTX)
LEFT_OUT = ("onnxruntime/transformers/", "onnxruntime/quantization/")


def fatbin_section(data: bytes) -> tuple[int, int]:
    """Offset and size of an ELF64 library's .nv_fatbin section."""
    table, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, table + i * entry_size) for i in range(count)]
    names = headers[names_index][4]
    for name, _kind, _flags, _address, offset, size in headers:
        if data[names + name:names + name + 11] == b".nv_fatbin\0":
            return offset, size
    raise SystemExit("gpu_pack: no .nv_fatbin section")


def containers(data: bytes, offset: int, size: int):
    """Each fatbin container's entries: (payload start, payload size, kind, arch)."""
    position, end = offset, offset + size
    while position < end:
        magic, _version, header_size, body_size = struct.unpack_from("<IHHQ", data, position)
        if magic != FATBIN_MAGIC:
            position += 8  # alignment padding between containers
            continue
        entries, entry, body_end = [], position + header_size, position + header_size + body_size
        while entry < body_end:
            kind, _unknown, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            arch = struct.unpack_from("<I", data, entry + 28)[0]
            entries.append((entry + entry_header, payload, kind, arch))
            entry += entry_header + payload
        yield entries
        position = body_end


def keep_one_arch(library: bytes, arch: int) -> tuple[bytes, int]:
    data = bytearray(library)
    offset, size = fatbin_section(library)
    blanked = 0
    for entries in containers(library, offset, size):
        if not any(kind == ELF_KERNELS and each == arch for _, _, kind, each in entries):
            continue
        for start, payload, kind, each in entries:
            if not (kind == ELF_KERNELS and each == arch):
                data[start:start + payload] = bytes(payload)
                blanked += payload
    return bytes(data), blanked


def pack(wheel: Path, out: Path, arch: int, pieces: int) -> list[Path]:
    archive = io.BytesIO()
    with zipfile.ZipFile(wheel) as source, lzma.open(archive, "wb", preset=9) as xz, \
            tarfile.open(fileobj=xz, mode="w") as tree:
        for info in source.infolist():
            if info.is_dir() or info.filename.startswith(LEFT_OUT):
                continue
            content = source.read(info)
            if info.filename.endswith("libonnxruntime_providers_cuda.so"):
                content, blanked = keep_one_arch(content, arch)
                print(f"gpu_pack: {info.filename}: {blanked / 1e6:.0f} MB of other GPUs' kernels set to zero",
                      file=sys.stderr)
            member = tarfile.TarInfo(info.filename)
            member.size = len(content)
            member.mtime = int(time.mktime(info.date_time + (0, 0, -1)))
            member.mode = 0o755 if info.filename.endswith(".so") or ".so." in info.filename else 0o644
            tree.addfile(member, io.BytesIO(content))
    data = archive.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    (out / "SHA256").write_text(f"{hashlib.sha256(data).hexdigest()}  ortgpu.tar.xz\n")
    step = -(-len(data) // pieces)
    written = []
    for index in range(pieces):
        piece = out / f"ortgpu.part-a{chr(ord('a') + index)}"
        piece.write_bytes(data[index * step:(index + 1) * step])
        written.append(piece)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--arch", type=int, default=90, help="the GPU's compute capability x 10 (H100/H200: 90)")
    parser.add_argument("--pieces", type=int, default=2)
    args = parser.parse_args(argv)
    for piece in pack(args.wheel, args.out, args.arch, args.pieces):
        print(f"{piece}  {piece.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
