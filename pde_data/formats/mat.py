"""FNO-style MATLAB ``.mat`` datasets (Li et al. 2021): v5 parsed here with numpy (every element
checked against the bytes the file holds, so a corrupt file is a ``DataFormatError``, never a
crash or a runaway allocation), v7.3 (HDF5 with MATLAB's reversed axis order) through ``h5py``.

Recognised layouts, mapped to the schema's names: Darcy ``coeff``/``sol`` (N, s, s) ->
``a``/``u`` on the node grid; Burgers ``a``/``u`` (N, s) -> ``u0``/``u`` (periodic); Navier-Stokes
``a`` (N, s, s), ``u`` (N, s, s, T), ``t`` -> ``w0``/``w`` (periodic). Anything else keeps the
file's names.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from pde_data.errors import DataFormatError
from pde_data.formats._build import (
    PERIODIC_PDES,
    build,
    pde_from_name,
    read_h5,
    safe_name,
    spatial_names,
)
from pde_data.schema import SAMPLE, TIME

HEADER = 128
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NUMERIC_CLASSES = {
    b"double",
    b"single",
    b"int8",
    b"int16",
    b"int32",
    b"int64",
    b"uint8",
    b"uint16",
    b"uint32",
    b"uint64",
    b"logical",
}
INPUT_NAMES = ("coeff", "a", "x", "input", "u0", "w0", "f", "k")
OUTPUT_NAMES = ("sol", "u", "y", "output", "w")


def _error(path, msg):
    return DataFormatError(f"{path}: {msg}")


def mat_version(path: Path) -> str:
    """``"v5"`` or ``"v7.3"`` from the 128-byte MAT-file header; raises on anything else."""
    with open(path, "rb") as f:
        head = f.read(HEADER)
        f.seek(512)
        h5 = f.read(8)
    if len(head) < HEADER:
        raise _error(
            path, f"truncated or not a MAT-file ({len(head)} bytes, the header alone is {HEADER})"
        )
    endian = head[126:128]
    if endian not in (b"IM", b"MI") or not head.startswith(b"MATLAB"):
        raise _error(
            path,
            "not a MATLAB v5/v7.3 MAT-file (no 'MATLAB ... MAT-file' header; "
            "v4 files are not supported)",
        )
    (version,) = struct.unpack("<H" if endian == b"IM" else ">H", head[124:126])
    if version == 0x0200:
        if h5 != HDF5_MAGIC:
            raise _error(
                path, "MAT v7.3 header but no HDF5 data at offset 512 (truncated or corrupt)"
            )
        return "v7.3"
    if version == 0x0100:
        return "v5"
    raise _error(path, f"unknown MAT-file version 0x{version:04x}")


def read(path) -> xarray.Dataset:  # noqa: F821
    path = Path(path)
    version = mat_version(path)
    arrays = _read_v5(path) if version == "v5" else _read_v73(path)
    ds = from_arrays(arrays, path)
    ds.attrs["source_format"] = f"mat-{version}"
    return ds


# MAT v5 data types (element tags) and array classes (MathWorks, "MAT-File Format", 2020)
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8",
              13: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_NUMERIC = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
               14: "i8", 15: "u8"}
_MX_LOGICAL, _MX_COMPLEX = 0x200, 0x800
#: a compressed variable may inflate to at most this many times its compressed size (deflate
#: reaches ~1032:1), plus _V5_SLACK bytes
_V5_EXPANSION, _V5_SLACK = 1100, 1 << 20


def _read_v5(path: Path) -> dict[str, np.ndarray]:
    """The real numeric (and logical) arrays of a MAT v5 file, by name, parsed here with numpy:
    every element is checked against the bytes the file holds before anything is allocated
    (scipy's reader trusts the file and crashes the process on some corrupt ones)."""
    data = path.read_bytes()
    order = "<" if data[126:128] == b"IM" else ">"
    out: dict[str, np.ndarray] = {}
    pos = HEADER
    while pos < len(data):
        mtype, body, pos = _v5_element(data, pos, order, path, padded=False)
        if mtype == _MI_COMPRESSED:
            body = _inflate(body, path)
            mtype, body, _ = _v5_element(body, 0, order, path, padded=False)
        if mtype != _MI_MATRIX:
            continue  # other top-level elements carry no variable
        name, arr = _v5_matrix(body, order, path)
        if arr is not None and name:
            out[name] = arr
    return out


def _v5_element(buf: bytes, pos: int, order: str, path, padded: bool = True):
    """``(type, body, next position)`` of the data element at ``pos`` (its 8-byte tag, or a
    small element packed into the tag), checked to lie inside ``buf``."""
    if pos + 8 > len(buf):
        raise _error(path, f"truncated MAT-file: an element tag at byte {pos} is cut off")
    word, nbytes = struct.unpack(order + "II", buf[pos:pos + 8])
    if word >> 16:  # small data element: type and size in the first 4 bytes, data in the next
        mtype, nbytes = word & 0xFFFF, word >> 16
        if nbytes > 4:
            raise _error(path, f"corrupt MAT-file: a small element at byte {pos} holds "
                               f"{nbytes} > 4 bytes")
        return mtype, buf[pos + 4:pos + 4 + nbytes], pos + 8
    end = pos + 8 + nbytes
    if end > len(buf):
        raise _error(path, f"truncated or corrupt MAT-file: an element at byte {pos} declares "
                           f"{nbytes} bytes, {len(buf) - pos - 8} remain")
    return word, buf[pos + 8:end], (end + (-nbytes) % 8) if padded else end


def _inflate(body: bytes, path) -> bytes:
    import zlib

    limit = _V5_EXPANSION * len(body) + _V5_SLACK
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(body, limit)
    except zlib.error as e:
        raise _error(path, f"corrupt compressed variable in the MAT-file: {e}") from None
    if inflater.unconsumed_tail:
        raise _error(path, f"a compressed variable of {len(body)} bytes inflates beyond {limit} "
                           "bytes (corrupt, or not a MAT-file made by MATLAB / scipy)")
    return raw


def _v5_matrix(body: bytes, order: str, path) -> tuple[str, np.ndarray | None]:
    """``(name, array)`` of one miMATRIX element; ``array`` None for non-numeric classes
    (cell, struct, char, sparse, ...), which are skipped, and for complex arrays."""
    parts = []
    pos = 0
    while pos < len(body) and len(parts) < 5:
        mtype, sub, pos = _v5_element(body, pos, order, path)
        parts.append((mtype, sub))
    if len(parts) < 3 or parts[0][0] != 6 or len(parts[0][1]) != 8 or parts[1][0] != 5 \
            or len(parts[1][1]) % 4 or parts[2][0] not in (1, 2):
        raise _error(path, "corrupt MAT-file: a variable without array flags, dimensions and name")
    flags = struct.unpack(order + "I", parts[0][1][:4])[0]
    cls = flags & 0xFF
    dims = np.frombuffer(parts[1][1], dtype=order + "i4").astype(np.int64)
    try:
        name = parts[2][1].decode("ascii")
    except UnicodeDecodeError:
        raise _error(path, "corrupt MAT-file: a variable name that is not ASCII") from None
    if dims.size < 2 or np.any(dims < 0):
        raise _error(path, f"corrupt MAT-file: variable {name!r} has dimensions {dims.tolist()}")
    if cls not in _MX_NUMERIC or flags & _MX_COMPLEX:
        return name, None
    if len(parts) < 4 or parts[3][0] not in _MI_DTYPES:
        raise _error(path, f"corrupt MAT-file: variable {name!r} has no numeric data element")
    stored = np.dtype(order + _MI_DTYPES[parts[3][0]])
    raw = parts[3][1]
    count = int(np.prod(dims))
    if len(raw) != count * stored.itemsize:
        raise _error(path, f"corrupt MAT-file: variable {name!r} of dimensions {dims.tolist()} "
                           f"holds {len(raw)} bytes of {stored}, expected {count * stored.itemsize}")
    arr = np.frombuffer(raw, dtype=stored).reshape(tuple(dims), order="F")
    target = np.bool_ if flags & _MX_LOGICAL else np.dtype(_MX_NUMERIC[cls])
    return name, np.array(arr, dtype=np.dtype(target).newbyteorder("="), order="C")


def _read_v73(path: Path) -> dict[str, np.ndarray]:
    import h5py

    from pde_data.formats.hdf5check import check_global_heaps

    check_global_heaps(path)  # the HDF5 library can hang on a corrupt global heap
    out = {}
    with h5py.File(path, "r") as f:
        for k, obj in f.items():
            if not isinstance(obj, h5py.Dataset) or k.startswith("#"):
                continue
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.encode() if isinstance(cls, str) else bytes(cls)
            if cls not in NUMERIC_CLASSES or obj.attrs.get("MATLAB_empty", 0):
                continue
            # MATLAB stores column-major: the HDF5 shape is the MATLAB shape reversed.
            out[k] = read_h5(obj, str(path)).T
    return out


def _viscosity_from_name(path: Path) -> float | None:
    m = re.search(r"(?:^|_)v(\d+(?:\.\d+)?e-?\d+)", path.name, flags=re.IGNORECASE)
    return float(m.group(1)) if m else None


def from_arrays(arrays: dict[str, np.ndarray], path: Path):
    """Map the numeric arrays of an FNO ``.mat`` file to a schema dataset."""
    low = {k.lower(): k for k in arrays}

    def get(n):
        return arrays[low[n]] if n in low else None

    scalars = {k: v.reshape(()).item() for k, v in arrays.items() if v.size == 1}
    attrs = dict(scalars)
    used = {"coeff", "sol", "a", "u", "t", "visc"}
    skipped = [k for k, v in arrays.items() if v.size > 1 and k.lower() not in used]
    if skipped:  # e.g. Kcoeff, Kcoeff_x of the FNO Darcy files: recorded, not loaded
        attrs["skipped_vars"] = skipped
    coeff, sol, a, u = get("coeff"), get("sol"), get("a"), get("u")

    if coeff is not None or sol is not None:  # Darcy (FNO piececonst / lognorm files)
        if coeff is None or sol is None:
            missing = "sol" if sol is None else "coeff"
            raise _error(
                path, f"FNO Darcy file without variable {missing!r} (has {sorted(arrays)})"
            )
        if coeff.shape != sol.shape or coeff.ndim not in (2, 3, 4):
            raise _error(
                path,
                f"Darcy 'coeff' {coeff.shape} and 'sol' {sol.shape} must share one "
                "(N, *spatial) shape",
            )
        dims = (SAMPLE, *spatial_names(coeff.ndim - 1, str(path)))
        return build(
            {"a": (dims, coeff), "u": (dims, sol)},
            pde="darcy",
            inputs=["a"],
            outputs=["u"],
            periodic=False,
            attrs=attrs,
            path=path,
        )

    if a is not None and u is not None:
        if a.ndim == 2 and u.shape == a.shape:  # Burgers (N, s)
            nu = _viscosity_from_name(path)
            if nu is not None and "visc" not in low:
                attrs["nu"] = nu
            if "visc" in low:
                attrs["nu"] = attrs.pop(low["visc"])
            dims = (SAMPLE, "x")
            return build(
                {"u0": (dims, a), "u": (dims, u)},
                pde="burgers",
                inputs=["u0"],
                outputs=["u"],
                periodic=True,
                attrs=attrs,
                path=path,
            )
        if a.ndim == 3 and u.ndim == 4 and u.shape[:3] == a.shape:  # Navier-Stokes (N, s, s, T)
            t = get("t")
            t = (
                None
                if t is None or t.size != u.shape[-1] or np.any(np.diff(t.ravel()) <= 0)
                else t.ravel()
            )
            attrs.pop(low.get("t"), None)
            nu = _viscosity_from_name(path)
            if nu is not None:
                attrs["nu"] = nu
            sp = (SAMPLE, "x", "y")
            return build(
                {"w0": (sp, a), "w": ((*sp, TIME), u)},
                pde="navier_stokes",
                inputs=["w0"],
                outputs=["w"],
                periodic=True,
                coords={TIME: t},
                attrs=attrs,
                path=path,
            )
    return _generic(arrays, path, attrs)


def _generic(arrays: dict[str, np.ndarray], path: Path, attrs: dict):
    """Unrecognised layout: keep every (N, *spatial[, T]) array under the file's name; the
    first input-like name is the input, the other fields the outputs."""
    fields = {k: v for k, v in arrays.items() if v.ndim >= 2 and v.size > 1}
    if not fields:
        raise _error(
            path,
            f"no field arrays (N, *spatial) in the file (variables: {sorted(arrays) or 'none'})",
        )
    n = {v.shape[0] for v in fields.values()}
    if len(n) != 1:
        raise _error(
            path,
            f"field arrays disagree on the number of samples: "
            f"{ {k: v.shape for k, v in fields.items()} }",
        )
    ref = min(fields.values(), key=np.ndim)
    sp_dims = spatial_names(ref.ndim - 1, str(path))
    data, skipped = {}, [k for k, v in arrays.items() if v.size > 1 and k not in fields]
    for k, v in fields.items():
        if v.shape[1:] == ref.shape[1:]:
            data[safe_name(k)] = ((SAMPLE, *sp_dims), v)
        elif v.ndim == ref.ndim + 1 and v.shape[1:-1] == ref.shape[1:]:
            data[safe_name(k)] = ((SAMPLE, *sp_dims, TIME), v)
        else:
            skipped.append(k)
    attrs.pop("skipped_vars", None)
    if skipped:
        attrs["skipped_vars"] = skipped
    names = list(data)
    if len(names) < 2:
        raise _error(
            path,
            f"found only the field {names} ; expected an input and an output (e.g. coeff/sol, a/u)",
        )
    inputs = [n for n in names if n.lower() in INPUT_NAMES][:1] or names[:1]
    outputs = [n for n in names if n not in inputs]
    pde = pde_from_name(path)
    return build(
        data,
        pde=pde,
        inputs=inputs,
        outputs=outputs,
        periodic=PERIODIC_PDES.get(pde),
        attrs={k: v for k, v in attrs.items() if k not in arrays or np.size(arrays[k]) == 1},
        path=path,
    )
