"""FNO-style MATLAB ``.mat`` datasets (Li et al. 2021): v5 through ``scipy.io.loadmat``, v7.3
(HDF5 with MATLAB's reversed axis order) through ``h5py``.

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
from pde_data.formats._build import PERIODIC_PDES, build, pde_from_name, safe_name, spatial_names
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


def _read_v5(path: Path) -> dict[str, np.ndarray]:
    import scipy.io

    raw = scipy.io.loadmat(path)
    out = {}
    for k, v in raw.items():
        if k.startswith("__") or not isinstance(v, np.ndarray):
            continue
        if v.dtype.kind in "biuf":
            out[k] = v
    return out


def _read_v73(path: Path) -> dict[str, np.ndarray]:
    import h5py

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
            out[k] = np.asarray(obj[()]).T
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
