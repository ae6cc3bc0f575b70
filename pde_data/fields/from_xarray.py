"""From an ``xarray.Dataset`` (docs/design.md schema) to the two row sources of a
:class:`~pde_data.fields.FieldData`: variable names, the one spatial grid, time selection,
subsampling, coordinate channels, the grid layout, and streaming or loading."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pde_data.coordinates import grid_axis, infer_periodic, subsampled_size
from pde_data.fields.sources import ArraySource, XarraySource
from pde_data.schema import SAMPLE, SPATIAL_DIMS, TIME, var_names

__all__ = ["FieldSources", "layout", "open_dataset", "sources_from_dataset", "variable_names"]


@dataclass
class FieldSources:
    """What :func:`sources_from_dataset` found: the x and y sources and their metadata."""

    x: ArraySource | XarraySource
    y: ArraySource | XarraySource
    periodic: bool | None
    coord_channels: int
    input_vars: list[str]
    output_vars: list[str]
    attrs: dict


def sources_from_dataset(ds_or_path, inputs=None, outputs=None, subsample: int = 1,
                         coords: bool = False, *, time_index=None, periodic: bool | None = None,
                         stream: bool | None = None, dtype=np.float32) -> FieldSources:
    """The sources of ``FieldData.from_dataset`` (which documents the arguments)."""
    ds = open_dataset(ds_or_path)
    in_names = variable_names(inputs, ds, "input_vars", "inputs")
    out_names = variable_names(outputs, ds, "output_vars", "outputs")
    available = list(ds.data_vars)
    for n in in_names + out_names:
        if n not in ds.data_vars:
            raise ValueError(f"unknown variable {n!r}; the dataset has data variables {available}")

    def prepare(name):
        da = ds[name]
        if SAMPLE not in da.dims:
            raise ValueError(f"variable {name!r} has no 'sample' dimension (dims {da.dims})")
        if time_index is not None and TIME in da.dims:
            da = da.isel({TIME: time_index})
        return da

    in_das = [prepare(n) for n in in_names]
    out_das = [prepare(n) for n in out_names]

    # one spatial grid for every variable that has spatial dims
    ref = None
    for da in in_das + out_das:
        sp = tuple(d for d in SPATIAL_DIMS if d in da.dims)
        if not sp:
            continue
        sizes = tuple(int(da.sizes[d]) for d in sp)
        if ref is None:
            ref = (str(da.name), sp, sizes)
        elif (sp, sizes) != ref[1:]:
            raise ValueError(
                "input and output variables must share one spatial grid: "
                f"{ref[0]!r} has {dict(zip(ref[1], ref[2]))}, {da.name!r} has {dict(zip(sp, sizes))}"
            )
    if ref is None:
        raise ValueError(f"none of the variables {in_names + out_names} has a spatial dimension {SPATIAL_DIMS}")
    _, sp_dims, sizes = ref

    if periodic is None:
        periodic = layout(ds, sp_dims)
    if isinstance(subsample, bool) or int(subsample) != subsample or subsample < 1:
        raise ValueError(f"subsample must be a positive integer, got {subsample!r}")
    k = int(subsample)
    new_sizes = tuple(subsampled_size(s, k, periodic) for s in sizes)
    if k > 1:
        sl = {d: slice(None, None, k) for d in sp_dims}
        in_das = [da.isel({d: s for d, s in sl.items() if d in da.dims}) for da in in_das]
        out_das = [da.isel({d: s for d, s in sl.items() if d in da.dims}) for da in out_das]
    coord_axes = None
    if coords:
        coord_axes = []
        for d, s in zip(sp_dims, sizes):
            if d in ds.coords and ds.coords[d].ndim == 1 and ds.coords[d].size == s:
                coord_axes.append(np.asarray(ds.coords[d].values, dtype=np.float64)[::k])
            else:
                coord_axes.append(grid_axis(s, bool(periodic))[::k])

    sx = XarraySource(in_das, list(sp_dims), new_sizes, coord_axes, dtype)
    sy = XarraySource(out_das, list(sp_dims), new_sizes, None, dtype)
    do_stream = (sx.streaming or sy.streaming) if stream is None else bool(stream)
    if not do_stream:  # materialise once; NaN/inf checked here
        sx = ArraySource(sx.read(None), sx.channels)
        sy = ArraySource(sy.read(None), sy.channels)
    return FieldSources(sx, sy, periodic, len(sp_dims) if coords else 0, in_names, out_names,
                        dict(ds.attrs))


def open_dataset(ds_or_path):
    """``ds_or_path`` itself when it is an ``xarray.Dataset``, else ``pde_data.load(path)``."""
    import xarray as xr

    if isinstance(ds_or_path, xr.Dataset):
        return ds_or_path
    if isinstance(ds_or_path, (str, os.PathLike)):
        from pde_data.storage import load

        return load(ds_or_path)
    raise TypeError(f"expected an xarray.Dataset or a path, got {type(ds_or_path).__name__}")


def variable_names(arg, ds, attr: str, label: str) -> list[str]:
    """The names in ``arg`` (list or comma/space separated), else in the attribute ``attr``."""
    if arg is None:
        if attr not in ds.attrs:
            raise ValueError(f"no {label} given and the dataset has no attribute {attr!r}; "
                             f"pass {label}= (data variables: {list(ds.data_vars)})")
        arg = ds.attrs[attr]
    names = var_names(arg)
    if not names:
        raise ValueError(f"{label} names no variable (got {arg!r})")
    return names


def layout(ds, sp_dims) -> bool | None:
    """Periodic (True), node grid (False) or unknown (None), from attrs or coordinates."""
    att = ds.attrs.get("periodic")
    if att is not None:
        if isinstance(att, str):
            if att.strip().lower() in ("true", "1", "yes"):
                return True
            if att.strip().lower() in ("false", "0", "no"):
                return False
        else:
            return bool(np.asarray(att).item())
    found = set()
    for d in sp_dims:
        if d in ds.coords and ds.coords[d].ndim == 1:
            found.add(infer_periodic(np.asarray(ds.coords[d].values)))
    found.discard(None)
    return found.pop() if len(found) == 1 else None

