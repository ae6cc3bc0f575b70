"""Shared helpers of the foreign-format readers: build a schema dataset from named arrays,
guess the PDE from a file name, place a time axis."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from einops import rearrange

from pde_data.coordinates import grid_axis
from pde_data.errors import DataFormatError
from pde_data.schema import ALLOWED_DIMS, SAMPLE, SPATIAL_DIMS, TIME

# PDEs whose grids are periodic (spacing 1/s, no right end) vs Dirichlet node grids.
PERIODIC_PDES = {
    "burgers": True,
    "navier_stokes": True,
    "advection": True,
    "darcy": False,
    "poisson": False,
    "helmholtz": False,
}

_NAME_PATTERNS = [
    (r"darcy|piececonst", "darcy"),
    (r"burgers", "burgers"),
    (r"navier|(^|[^a-z])ns([^a-z]|$)|nsforcing|vorticity", "navier_stokes"),
    (r"advection", "advection"),
    (r"reacdiff|diff[-_]?react|reaction", "reaction_diffusion"),
    (r"poisson", "poisson"),
    (r"helmholtz", "helmholtz"),
]


#: an HDF5 dataset may declare at most this many times the bytes it stores in the file (deflate
#: compresses at most ~1032:1), so an unwritten or forged dataset of a small file is refused
#: instead of being allocated in full
H5_EXPANSION = 1100
#: ... datasets smaller than this are read whatever they store
H5_SLACK = 1 << 20


def read_h5(dset, where: str) -> np.ndarray:
    """The values of the h5py dataset ``dset``, after checking that the file holds them: a
    dataset that declares far more bytes than it stores (no chunks written, a forged shape) is
    a :class:`DataFormatError` naming it, not a huge allocation of fill values."""
    nbytes = int(dset.size) * int(dset.dtype.itemsize)
    if nbytes > H5_SLACK:
        stored = int(dset.id.get_storage_size())
        if nbytes > H5_EXPANSION * stored:
            raise DataFormatError(
                f"{where}: dataset {dset.name!r} declares {nbytes} bytes {dset.shape} but the "
                f"file stores {stored} bytes of it (unwritten or corrupt): refusing to read it")
    return np.asarray(dset[()])


def pde_from_name(path: str | Path) -> str | None:
    """The PDE a dataset file name suggests (``ns_V1e-3_N5000_T50.mat`` -> navier_stokes)."""
    name = Path(path).name.lower()
    for pattern, pde in _NAME_PATTERNS:
        if re.search(pattern, name):
            return pde
    return None


def spatial_names(n: int, where: str) -> tuple[str, ...]:
    if not 1 <= n <= 3:
        raise DataFormatError(f"{where}: expected 1 to 3 spatial axes, got {n}")
    return SPATIAL_DIMS[:n]


def safe_name(name: str) -> str:
    """A data-variable name that does not clash with a schema dimension (``x`` -> ``x_``)."""
    return f"{name}_" if name in ALLOWED_DIMS else name


def time_last(out: np.ndarray, spatial: tuple[int, ...], where: str) -> np.ndarray:
    """``out`` of shape (N, T, *spatial) or (N, *spatial, T) as (N, *spatial, T) (a view)."""
    rest = tuple(out.shape[1:])
    if rest[1:] == spatial:
        return rearrange(out, "n t ... -> n ... t")
    if rest[:-1] == spatial:
        return out
    raise DataFormatError(
        f"{where}: shape {out.shape} does not extend the spatial shape {spatial} by a time axis"
    )


def build(
    fields: dict,
    *,
    pde: str | None,
    inputs,
    outputs,
    periodic: bool | None,
    coords: dict | None = None,
    attrs: dict | None = None,
    path=None,
):
    """An ``xarray.Dataset`` in the schema from ``fields`` = {name: (dims, array)}: spatial
    coordinates from ``coords`` or the node (``periodic`` False/None) or periodic grid,
    ``t`` from ``coords`` or the step index, attrs ``pde``, ``input_vars``, ``output_vars``,
    ``grid`` and the file's own attributes."""
    import xarray as xr

    where = str(path)
    sizes: dict[str, int] = {}
    for name, (dims, arr) in fields.items():
        if len(dims) != np.ndim(arr):
            raise DataFormatError(
                f"{where}: variable {name!r} has shape {np.shape(arr)}, expected dims {dims}"
            )
        for d, n in zip(dims, np.shape(arr)):
            if sizes.setdefault(d, n) != n:
                raise DataFormatError(
                    f"{where}: variable {name!r} has {n} points along {d!r}, others have {sizes[d]}"
                )
    coords = dict(coords or {})
    out_coords = {}
    for d, n in sizes.items():
        if d == SAMPLE:
            continue
        if d in coords and coords[d] is not None:
            c = np.asarray(coords[d], dtype=np.float64).ravel()
            if c.size != n:
                raise DataFormatError(
                    f"{where}: coordinate {d!r} has {c.size} values for {n} grid points"
                )
        elif d == TIME:
            c = np.arange(n, dtype=np.float64)
        else:
            c = grid_axis(n, bool(periodic))
        out_coords[d] = c
    all_attrs = {}
    for k, v in (attrs or {}).items():
        v = _plain_attr(v)
        if v is not None and k not in ("pde", "input_vars", "output_vars"):
            all_attrs[k] = v
    if pde in PERIODIC_PDES:  # the layout the PDE fixes (the batching pipeline reads it)
        all_attrs["periodic"] = PERIODIC_PDES[pde]
    all_attrs.update(
        pde=pde or "unknown",
        input_vars=list(inputs),
        output_vars=list(outputs),
        grid="file"
        if any(d in coords and coords[d] is not None for d in SPATIAL_DIMS if d in sizes)
        else ("periodic" if periodic else "node"),
    )
    if path is not None:
        all_attrs["source_file"] = Path(path).name
    data_vars = {name: (dims, arr) for name, (dims, arr) in fields.items()}
    return xr.Dataset(data_vars, coords=out_coords, attrs=all_attrs)


def _plain_attr(v):
    """A file attribute as a storable value (str / number / list), or None to drop it."""
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError:
            return None
    if isinstance(v, np.ndarray):
        if v.size == 1:
            return _plain_attr(v.reshape(()).item())
        if v.ndim == 1 and v.size <= 64 and (np.issubdtype(v.dtype, np.number)):
            return v.tolist()
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float)):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(i, (str, int, float)) for i in v):
        return list(v)
    return None
