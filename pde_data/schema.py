"""The stored-dataset schema of docs/design.md and its validator.

One ``xarray.Dataset`` per dataset: dimensions ``sample``, spatial ``x``, ``y``, ``z`` and time
``t``; coordinates carrying the grid values (and ``sample`` = 0..n-1); attributes ``pde``,
``input_vars``, ``output_vars`` (lists of names, plus every parameter). ``validate`` raises
:class:`SchemaError` naming the first problem.

CF-style metadata (:func:`with_cf_metadata`): ``Conventions = "CF-1.8"`` on the dataset,
``long_name`` and ``units`` on the coordinates and on the generated variables. The unit domain
and the equations are non-dimensional, so ``units`` is ``"1"`` throughout.

Older files (before schema 2) stored ``input_vars`` / ``output_vars`` as one string and had no
``sample`` coordinate nor CF attributes; :func:`var_names` and ``pde_data.load`` read them the
same. netCDF readers (netCDF4-python, h5netcdf) hand a one-element list attribute back as a
plain string, so ``var_names`` is the way to read these attributes from any file.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "ALLOWED_DIMS",
    "CONVENTIONS",
    "COORDINATE_ATTRS",
    "REQUIRED_ATTRS",
    "SAMPLE",
    "SPATIAL_DIMS",
    "TIME",
    "SchemaError",
    "spatial_dims",
    "validate",
    "var_names",
    "with_cf_metadata",
]

SAMPLE = "sample"
SPATIAL_DIMS = ("x", "y", "z")
TIME = "t"
ALLOWED_DIMS = (SAMPLE, *SPATIAL_DIMS, TIME)
REQUIRED_ATTRS = ("pde", "input_vars", "output_vars")
CONVENTIONS = "CF-1.8"
#: CF ``long_name`` / ``units`` of the schema's coordinates (the domain is the unit cube and
#: time is non-dimensional, hence units "1").
COORDINATE_ATTRS = {
    SAMPLE: {"long_name": "sample index", "units": "1"},
    "x": {"long_name": "x coordinate on the unit domain", "units": "1"},
    "y": {"long_name": "y coordinate on the unit domain", "units": "1"},
    "z": {"long_name": "z coordinate on the unit domain", "units": "1"},
    TIME: {"long_name": "time", "units": "1"},
}


class SchemaError(ValueError):
    """A dataset that does not follow the stored-dataset schema of docs/design.md."""


def var_names(value) -> list[str]:
    """``input_vars`` / ``output_vars`` as a list of names: accepts a list/tuple/array of str or
    one string (netCDF returns a one-element list as a plain string; ``"a,b"`` / ``"a b"``
    are split)."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Iterable):
        out = []
        for v in value:
            if isinstance(v, bytes):
                v = v.decode()
            if not isinstance(v, str):
                raise SchemaError(f"variable names must be strings, got {v!r} in {value!r}")
            out.append(v)
        return out
    raise SchemaError(f"variable names must be a string or a list of strings, got {value!r}")


def with_cf_metadata(ds, variables: dict[str, dict] | None = None):
    """A shallow copy of ``ds`` with the schema's CF-style metadata filled in where missing:
    ``Conventions``, a ``sample`` coordinate 0..n-1, ``long_name`` / ``units`` on the
    coordinates (:data:`COORDINATE_ATTRS`) and, from ``variables`` = {name: {"long_name": ...,
    "units": ...}}, on the data variables. Attributes already set are kept."""
    ds = ds.copy(deep=False)
    if SAMPLE in ds.dims and SAMPLE not in ds.coords:
        ds = ds.assign_coords({SAMPLE: np.arange(ds.sizes[SAMPLE], dtype=np.int64)})
    for name, attrs in COORDINATE_ATTRS.items():
        if name in ds.coords:
            ds[name].attrs = {**attrs, **ds[name].attrs}
    for name, attrs in (variables or {}).items():
        if name in ds.data_vars:
            ds[name].attrs = {**attrs, **ds[name].attrs}
    ds.attrs.setdefault("Conventions", CONVENTIONS)
    return ds


def spatial_dims(ds) -> list[str]:
    """The spatial dimensions (``x``, ``y``, ``z``) present in ``ds``, in that order."""
    return [d for d in SPATIAL_DIMS if d in ds.dims]


def validate(ds, check_values: bool = True) -> None:
    """Raise :class:`SchemaError` naming the problem unless ``ds`` follows the schema:
    an ``xarray.Dataset`` with data variables over the dims ``sample, x, y, z, t`` only
    (``sample`` first where present, spatial dims in x, y, z order), 1-D finite strictly
    increasing coordinates for every spatial and time dim, attrs ``pde`` (non-empty str),
    ``input_vars`` and ``output_vars`` naming data variables, and (``check_values``) only
    finite values in floating data variables."""
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    if not ds.data_vars:
        raise SchemaError("dataset has no data variables")
    for name, var in ds.data_vars.items():
        unknown = [d for d in var.dims if d not in ALLOWED_DIMS]
        if unknown:
            raise SchemaError(
                f"variable {name!r} has dimension(s) {unknown} outside the schema; "
                f"allowed: {list(ALLOWED_DIMS)}"
            )
        if SAMPLE in var.dims and var.dims[0] != SAMPLE:
            raise SchemaError(
                f"variable {name!r}: 'sample' must be the first dimension, got dims {var.dims}"
            )
        sp = [d for d in var.dims if d in SPATIAL_DIMS]
        if sp != sorted(sp, key=SPATIAL_DIMS.index):
            raise SchemaError(
                f"variable {name!r}: spatial dims must be ordered x, y, z, got {var.dims}"
            )
    for dim in ds.dims:
        if dim not in ALLOWED_DIMS:
            raise SchemaError(
                f"dimension {dim!r} is outside the schema; allowed: {list(ALLOWED_DIMS)}"
            )
        if dim == SAMPLE:
            if SAMPLE in ds.coords:
                c = ds.coords[SAMPLE]
                if c.dims != (SAMPLE,) or not np.issubdtype(c.dtype, np.integer):
                    raise SchemaError(
                        f"coordinate 'sample' must be 1-D integer sample numbers, got dims "
                        f"{c.dims} and dtype {c.dtype}"
                    )
            continue
        if dim not in ds.coords:
            raise SchemaError(
                f"dimension {dim!r} has no coordinate; coordinates must carry the grid values"
            )
        c = np.asarray(ds.coords[dim].values)
        if c.ndim != 1:
            raise SchemaError(f"coordinate {dim!r} must be 1-D, got shape {c.shape}")
        if not np.issubdtype(c.dtype, np.number):
            raise SchemaError(f"coordinate {dim!r} must be numeric, got dtype {c.dtype}")
        if not np.all(np.isfinite(c)):
            raise SchemaError(f"coordinate {dim!r} has non-finite values")
        if c.size > 1 and not np.all(np.diff(c) > 0):
            raise SchemaError(f"coordinate {dim!r} must be strictly increasing")

    for key in REQUIRED_ATTRS:
        if key not in ds.attrs:
            raise SchemaError(f"missing attribute {key!r} (required: {list(REQUIRED_ATTRS)})")
    pde = ds.attrs["pde"]
    if not isinstance(pde, str) or not pde:
        raise SchemaError(f"attribute 'pde' must be a non-empty string, got {pde!r}")
    for key in ("input_vars", "output_vars"):
        names = var_names(ds.attrs[key])
        if not names:
            raise SchemaError(f"attribute {key!r} names no variable")
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise SchemaError(
                f"attribute {key!r} names variable(s) {missing} not in the dataset "
                f"(data variables: {list(ds.data_vars)})"
            )

    if check_values:
        for name, var in ds.data_vars.items():
            if not (
                np.issubdtype(var.dtype, np.floating)
                or np.issubdtype(var.dtype, np.complexfloating)
            ):
                continue
            if not _all_finite(var):
                raise SchemaError(f"variable {name!r} has non-finite values (NaN or inf)")


def _all_finite(var, block_bytes: int = 1 << 27) -> bool:
    """Finite check read block by block along the first axis, so lazily backed (zarr)
    variables larger than memory are never loaded whole."""
    if var.ndim == 0:
        return bool(np.isfinite(var.values))
    n = var.shape[0]
    row = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64)))
    step = max(1, block_bytes // row)
    dim = var.dims[0]
    for i in range(0, n, step):
        if not np.all(np.isfinite(var.isel({dim: slice(i, i + step)}).values)):
            return False
    return True
