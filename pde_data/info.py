"""Look inside a dataset file and convert between formats (``python -m pde_data info/convert``).

``info(path)`` summarises any file ``load`` reads: format, dims, resolution and grid layout,
each variable's dims, dtype, min and max of its finite values and the number of NaN / inf
values when there are any (read block by block, so zarr stores larger than memory are fine),
and the attributes. ``convert(src, dst)`` loads anything and saves ``.nc`` or ``.zarr``, never
over an existing ``dst`` unless ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pde_data.coordinates import infer_periodic
from pde_data.schema import TIME, spatial_dims, var_names

__all__ = ["convert", "info", "summary"]

BLOCK_BYTES = 1 << 27


def _min_max(var) -> tuple[float, float, int, int]:
    """``(min, max, n_nan, n_inf)``: min and max over the finite values (NaN when there are
    none) and the counts of NaN and +-inf values, read in blocks along the first axis."""
    if var.size == 0:
        return float("nan"), float("nan"), 0, 0
    blocks = [np.asarray(var.values)] if var.ndim == 0 else None
    if blocks is None:
        row = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64)))
        step = max(1, BLOCK_BYTES // row)
        dim = var.dims[0]
        blocks = (np.asarray(var.isel({dim: slice(i, i + step)}).values)
                  for i in range(0, var.shape[0], step))
    lo, hi, n_nan, n_inf = np.inf, -np.inf, 0, 0
    for block in blocks:
        if block.dtype.kind == "b":
            block = block.astype(np.int8)
        if block.dtype.kind in "fc":
            nan = np.isnan(block)
            n_nan += int(nan.sum())
            n_inf += int(np.isinf(block).sum())
            finite = block[np.isfinite(block)]
        else:
            finite = block
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if lo > hi:  # no finite value at all
        lo = hi = float("nan")
    return lo, hi, n_nan, n_inf


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
        lo, hi, n_nan, n_inf = _min_max(var)
        dims = ", ".join(var.dims)
        shape = "x".join(str(s) for s in var.shape)
        bad = ""
        if n_nan or n_inf:  # min / max are then those of the finite values only: say so
            bad = f"  NaN={n_nan}  inf={n_inf} of {var.size} (min/max of the finite values)"
        lines.append(
            f"  {name:<{width}}  ({dims})  {shape}  {var.dtype}  min={lo:.6g}  max={hi:.6g}"
            f"{bad}{role}"
        )
    lines.append("attrs:")
    for k, v in ds.attrs.items():
        lines.append(f"  {k} = {v!r}" if not isinstance(v, str) else f"  {k} = {v}")
    return "\n".join(lines)


def info(path: str | os.PathLike) -> str:
    """A readable summary of the dataset file at ``path`` (any format ``load`` reads)."""
    from pde_data.storage import load

    return summary(load(path), path)


def convert(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> Path:
    """Load ``src`` (any readable format) and save it to ``dst`` (``.nc`` or ``.zarr``),
    recording the origin in the attribute ``converted_from``. Returns ``dst``. An existing
    ``dst`` is refused (``FileExistsError``) unless ``overwrite``; it is checked before ``src``
    is read."""
    from pde_data.storage import check_output, load, save

    src, dst = Path(src), Path(dst)
    check_output(dst, overwrite)
    ds = load(src)
    ds.attrs["converted_from"] = f"{src.name} ({ds.attrs.get('source_format', 'unknown')})"
    ds.attrs.pop("source_format", None)
    return save(ds, dst)
