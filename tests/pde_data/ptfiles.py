"""Write torch.save-style ``.pt`` archives without torch, for the reader's tests.

A tensor is ``(storage_key, storage_type, offset, size, stride)`` over the raw storages given
separately, so a test can declare any geometry (strides of 0, many tensors on one storage)."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.bool_): "BoolStorage", np.dtype(np.int64): "LongStorage"}


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def tensor_opcodes(key: str, storage_type: str, numel: int, offset: int, size, stride) -> bytes:
    """Pickle opcodes of ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
    with the storage as a persistent id ``("storage", torch.<storage_type>, key, "cpu", numel)``."""
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(("
            + _str("storage") + b"ctorch\n" + storage_type.encode() + b"\n" + _str(key)
            + _str("cpu") + _int(numel) + b"tQ" + _int(offset)
            + b"(" + b"".join(_int(s) for s in size) + b"t"
            + b"(" + b"".join(_int(s) for s in stride) + b"t"
            + b"\x89ccollections\nOrderedDict\n)RtR")


def archive(items: dict[str, bytes], storages: dict[str, bytes], name: str = "archive") -> bytes:
    """A torch.save zip of the dict ``{key: opcodes}`` and the raw ``storages``."""
    pickled = b"\x80\x02}(" + b"".join(_str(k) + v for k, v in items.items()) + b"u."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}/data.pkl", pickled)
        zf.writestr(f"{name}/byteorder", "little")
        for key, raw in storages.items():
            zf.writestr(f"{name}/data/{key}", raw)
    return buf.getvalue()


def write_arrays(path, arrays: dict[str, np.ndarray]):
    """``torch.save({name: tensor})`` of contiguous numpy arrays, one storage each."""
    items, storages = {}, {}
    for i, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a)
        key = str(i)
        strides = tuple(s // a.itemsize for s in a.strides)
        items[name] = tensor_opcodes(key, STORAGE_TYPES[a.dtype], a.size, 0, a.shape, strides)
        storages[key] = a.tobytes()
    path.write_bytes(archive(items, storages))
    return path
