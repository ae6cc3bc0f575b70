"""Look inside a dataset file and convert between formats (``python -m pde_data info/convert``).

``info(path)`` summarises any file ``load`` reads: format, dims, resolution and grid layout,
each variable's dims, dtype, min and max (read block by block, so zarr stores larger than
memory are fine), and the attributes. ``convert(src, dst)`` loads anything and saves ``.nc``
or ``.zarr``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pde_data.coordinates import infer_periodic
from pde_data.schema import TIME, spatial_dims, var_names

__all__ = ["convert", "info", "summary"]

BLOCK_BYTES = 1 << 27


def _min_max(var) -> tuple[float, float]:
    """Min and max over finite values, read in blocks along the first axis."""
    if var.size == 0:
        return float("nan"), float("nan")
    if var.ndim == 0:
        v = float(var.values)
        return v, v
    row = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64)))
    step = max(1, BLOCK_BYTES // row)
    lo, hi = np.inf, -np.inf
    dim = var.dims[0]
    for i in range(0, var.shape[0], step):
        block = np.asarray(var.isel({dim: slice(i, i + step)}).values)
        if block.dtype.kind == "b":
            block = block.astype(np.int8)
        finite = block[np.isfinite(block)] if block.dtype.kind in "fc" else block
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return lo, hi


def _grid_line(ds, dim: str) -> str:
    c = np.asarray(ds.coords[dim].values)
    layout = (
        {True: "periodic", False: "node", None: "other"}[infer_periodic(c)] if dim != TIME else None
    )
    span = f"[{c[0]:.6g}, {c[-1]:.6g}]" if c.size else "[]"
    lay = f", {layout} grid" if layout else ""
    return f"  {dim}: {c.size} points {span}{lay}"


def summary(ds, path=None) -> str:
    """The text of :func:`info` for an already loaded dataset."""
    lines = []
    if path is not None:
        lines.append(f"file: {path}")
    lines.append(f"format: {ds.attrs.get('source_format', 'unknown')}")
    lines.append(f"pde: {ds.attrs.get('pde', 'unknown')}")
    lines.append("dims: " + ", ".join(f"{d}={n}" for d, n in ds.sizes.items()))
    sp = spatial_dims(ds)
    res = " x ".join(str(ds.sizes[d]) for d in sp) or "none"
    lines.append(f"resolution: {res}")
    for d in [*sp, TIME]:
        if d in ds.coords:
            lines.append(_grid_line(ds, d))
    inputs, outputs = var_names(ds.attrs.get("input_vars")), var_names(ds.attrs.get("output_vars"))
    lines.append("variables:")
    width = max(len(n) for n in ds.data_vars)
    for name, var in ds.data_vars.items():
        role = " [input]" if name in inputs else " [output]" if name in outputs else ""
        lo, hi = _min_max(var)
        dims = ", ".join(var.dims)
        shape = "x".join(str(s) for s in var.shape)
        lines.append(
            f"  {name:<{width}}  ({dims})  {shape}  {var.dtype}  min={lo:.6g}  max={hi:.6g}{role}"
        )
    lines.append("attrs:")
    for k, v in ds.attrs.items():
        lines.append(f"  {k} = {v!r}" if not isinstance(v, str) else f"  {k} = {v}")
    return "\n".join(lines)


def info(path: str | os.PathLike) -> str:
    """A readable summary of the dataset file at ``path`` (any format ``load`` reads)."""
    from pde_data.storage import load

    return summary(load(path), path)


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Load ``src`` (any readable format) and save it to ``dst`` (``.nc`` or ``.zarr``),
    recording the origin in the attribute ``converted_from``. Returns ``dst``."""
    from pde_data.storage import load, save

    src, dst = Path(src), Path(dst)
    ds = load(src)
    ds.attrs["converted_from"] = f"{src.name} ({ds.attrs.get('source_format', 'unknown')})"
    ds.attrs.pop("source_format", None)
    return save(ds, dst)
