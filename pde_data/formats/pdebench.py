"""PDEBench one-array HDF5 files (Takamoto et al. 2022): ``tensor`` (N, T, X[, Y[, Z]]) with
``x-coordinate`` (``y-``, ``z-``) and ``t-coordinate``; Darcy files add ``nu`` (the coefficient)
with ``tensor`` (N, 1, X, Y). The PDE parameter is a root attribute.

Time series become ``u`` (sample, x[, y], t) with the initial state ``u0`` as the input;
Darcy becomes ``a`` (= ``nu``) -> ``u``. The file's coordinates are kept as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from einops import rearrange

from pde_data.errors import DataFormatError
from pde_data.formats._build import PERIODIC_PDES, build, pde_from_name, read_h5, spatial_names
from pde_data.formats.hdf5check import check_global_heaps
from pde_data.schema import SAMPLE, SPATIAL_DIMS, TIME

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _error(path, msg):
    return DataFormatError(f"{path}: {msg}")


def read(path):
    import h5py

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head != HDF5_MAGIC:
        raise _error(path, f"not an HDF5 file (no HDF5 signature; got {head!r})")
    check_global_heaps(path)  # the HDF5 library can hang on a corrupt global heap
    with h5py.File(path, "r") as f:
        if "tensor" not in f:
            if any(k.isdigit() for k in f):
                raise _error(
                    path,
                    "PDEBench per-sample layout (groups '0000', '0001', ...) is not supported; "
                    "only one-array files with a 'tensor' dataset",
                )
            raise _error(path, f"missing variable 'tensor' (datasets: {sorted(f.keys())})")
        where = str(path)
        tensor = read_h5(f["tensor"], where)
        coords = {}
        for d in (*SPATIAL_DIMS, TIME):
            key = f"{d}-coordinate"
            coords[d] = read_h5(f[key], where).ravel() if key in f else None
        nu = read_h5(f["nu"], where) if "nu" in f else None
        attrs = {k: v for k, v in f.attrs.items()}
    ds = from_arrays(tensor, coords, nu, attrs, path)
    ds.attrs["source_format"] = "pdebench-h5"
    return ds


def from_arrays(tensor: np.ndarray, coords: dict, nu: np.ndarray | None, attrs: dict, path: Path):
    """Map PDEBench arrays to a schema dataset."""
    if tensor.ndim < 3:
        raise _error(path, f"'tensor' has shape {tensor.shape}; expected (N, T, X[, Y[, Z]])")
    spatial = tuple(tensor.shape[2:])
    sp_dims = spatial_names(len(spatial), str(path))
    sp_coords = {d: coords.get(d) for d in sp_dims}
    for d, c in sp_coords.items():  # an absent or mismatched coordinate falls back to the grid
        if c is not None and c.size != spatial[sp_dims.index(d)]:
            raise _error(
                path,
                f"'{d}-coordinate' has {c.size} values, 'tensor' has "
                f"{spatial[sp_dims.index(d)]} points along {d}",
            )
    pde = pde_from_name(path)
    if nu is not None:  # Darcy: coefficient nu (N, X, Y), solution tensor (N, 1, X, Y)
        if tensor.shape[1] != 1 or nu.shape != (tensor.shape[0], *spatial):
            raise _error(
                path,
                f"Darcy 'nu' {nu.shape} and 'tensor' {tensor.shape} do not match "
                "(N, X, Y) / (N, 1, X, Y)",
            )
        dims = (SAMPLE, *sp_dims)
        return build(
            {"a": (dims, nu), "u": (dims, tensor[:, 0])},
            pde="darcy",
            inputs=["a"],
            outputs=["u"],
            periodic=False,
            coords=sp_coords,
            attrs=attrs,
            path=path,
        )
    t = coords.get(TIME)
    n_t = tensor.shape[1]
    if t is not None:
        if t.size == n_t + 1:  # 1-D PDEBench files store one more time than snapshots
            t = t[:n_t]
        if t.size != n_t or np.any(np.diff(t) <= 0):
            t = None
    u = rearrange(tensor, "n t ... -> n ... t")  # (N, *spatial, T), a view
    return build(
        {"u0": ((SAMPLE, *sp_dims), tensor[:, 0]), "u": ((SAMPLE, *sp_dims, TIME), u)},
        pde=pde,
        inputs=["u0"],
        outputs=["u"],
        periodic=PERIODIC_PDES.get(pde),
        coords={**sp_coords, TIME: t},
        attrs=attrs,
        path=path,
    )
