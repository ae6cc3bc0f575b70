"""A structural check of an HDF5 file's global heaps before the HDF5 library reads it.

The HDF5 library trusts the object sizes inside a global heap collection (``GCOL``: where
variable-length attribute values live, e.g. netCDF-4's ``DIMENSION_LIST``); in a corrupt one it
can loop forever while holding Python's GIL, so no timeout in the process can stop it. Every
collection is walked here first (HDF5 file format specification, "Global Heap"): its objects
must tile it exactly, ending with the free-space object or the collection's end. A collection
that does not is a :class:`DataFormatError` naming the file and the byte.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from pde_data.errors import DataFormatError

__all__ = ["check_global_heaps"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GCOL = b"GCOL"
MIN_COLLECTION = 4096


def _length_size(buf, path: Path) -> int:
    """Bytes of a "length" field, from the superblock (at 0, 512, 1024, ... bytes)."""
    base = 0
    while base + 16 <= len(buf) and buf[base:base + 8] != HDF5_MAGIC:
        base = 512 if base == 0 else base * 2
    if base + 16 > len(buf):
        raise DataFormatError(f"{path}: no HDF5 superblock (truncated or not an HDF5 file)")
    version = buf[base + 8]
    size = buf[base + 14] if version in (0, 1) else buf[base + 10]
    if size not in (2, 4, 8, 16):
        raise DataFormatError(f"{path}: corrupt HDF5 superblock (size of lengths {size})")
    return size


def check_global_heaps(path: str | Path) -> None:
    """:class:`DataFormatError` unless every global heap collection of the HDF5 file at
    ``path`` is consistent (its objects fit it exactly)."""
    path = Path(path)
    with open(path, "rb") as f:
        if path.stat().st_size == 0:
            raise DataFormatError(f"{path}: empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            length = _length_size(buf, path)
            fmt = {2: "<H", 4: "<I", 8: "<Q", 16: None}[length]
            head = 8 + length
            pos = buf.find(GCOL)
            while pos >= 0:
                if pos + head <= len(buf) and buf[pos + 4] == 1 and buf[pos + 5:pos + 8] == \
                        b"\0\0\0" and fmt is not None:
                    _check_collection(buf, pos, struct.unpack(fmt, buf[pos + 8:pos + head])[0],
                                      length, fmt, path)
                pos = buf.find(GCOL, pos + 4)


def _check_collection(buf, start: int, size: int, length: int, fmt: str, path: Path) -> None:
    end = start + size
    if size < MIN_COLLECTION or end > len(buf):
        raise DataFormatError(f"{path}: corrupt or truncated HDF5 global heap at byte {start} "
                              f"(size {size}, file {len(buf)} bytes)")
    head = 8 + length
    pos = start + head
    while pos + head <= end:
        index = struct.unpack("<H", buf[pos:pos + 2])[0]
        obj = struct.unpack(fmt, buf[pos + 8:pos + head])[0]
        if index == 0:  # the free space: the rest of the collection, its header included
            if pos + obj != end:
                break
            return
        pos += head + obj + (-obj) % 8
    if pos != end and not (pos < end and end - pos < head):
        raise DataFormatError(f"{path}: corrupt HDF5 global heap at byte {start}: its objects "
                              "do not fit it (refusing to let the HDF5 library read it)")
