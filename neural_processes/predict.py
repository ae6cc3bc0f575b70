"""Apply a neural process to a user's point sets: the first ``n_context`` points of each task are
its context, the model predicts a mean and a standard deviation at the rest.

The input is a point-set file (``.nc`` / ``.zarr``) or an ``xarray.Dataset`` with ``x (task,
point, feature)`` and ``y (task, point)`` or ``y (task, point, output)``, the layout of
``pde_data.points``; ``y`` is needed at the context points only (NaN elsewhere is fine: the
targets' values are not used). The result is an ``xarray.Dataset`` over the target points with
the inputs' coordinates and attributes: ``x`` (the target inputs), ``mean`` and ``std`` (the
shape of ``y``), and ``y`` where the input had finite target values.

    python -m neural_processes predict --model RUN_OR_NAME --data IN.nc --n-context K \\
        --out OUT.nc [--overwrite]

From Python: ``neural_processes.load_run(RUN).predict_dataset(ds_or_path, n_context=K)`` (or
any model from ``from_pretrained``), or :func:`predict_point_sets`.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path

import numpy as np

__all__ = ["check_output_path", "predict_point_sets", "write_prediction"]


def _integer(value, name: str, minimum: int) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _open(data):
    """``(dataset, label)`` of a path or an ``xarray.Dataset``; the caller closes a file."""
    import xarray as xr

    if isinstance(data, xr.Dataset):
        return data, "<dataset>"
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        if path.suffix.lower() == ".zarr" or path.is_dir():
            return xr.open_zarr(path), str(path)
        if path.suffix.lower() in (".nc", ".nc4", ".h5", ".hdf5"):
            return xr.open_dataset(path, engine="h5netcdf"), str(path)
    except Exception as err:
        raise ValueError(f"{path} is not a readable netCDF / zarr file: {err}") from err
    raise ValueError(f"{path}: unknown point-set file type {path.suffix!r}; use .nc or .zarr")


def predict_point_sets(model, data, n_context: int, *, num_samples: int | None = None,
                       seed: int = 0, batch_size: int = 256, attrs: dict | None = None):
    """Predictions of ``model`` at points ``n_context:`` of every task of ``data`` given its first
    ``n_context`` points, as an ``xarray.Dataset`` (module docstring). Tasks go through the model
    ``batch_size`` at a time; stochastic models mix ``num_samples`` draws (default 50) seeded by
    ``seed``."""
    import jax
    import xarray as xr

    n_context = _integer(n_context, "n_context", 1)
    batch_size = _integer(batch_size, "batch_size", 1)
    ds, label = _open(data)
    try:
        missing = [v for v in ("x", "y") if v not in ds.data_vars]
        if missing:
            raise ValueError(f"{label} has no variable(s) {missing}; a point-set file holds "
                             "x (task, point, feature) and y (task, point)")
        x, y = ds["x"], ds["y"]
        if x.ndim != 3 or y.ndim not in (2, 3) or x.dims[:2] != y.dims[:2]:
            raise ValueError(f"{label}: need x (task, point, feature) and y (task, point[, "
                             f"output]) sharing their first two dimensions, got x {x.dims} and "
                             f"y {y.dims}")
        task_dim, point_dim = x.dims[:2]
        n_points = x.sizes[point_dim]
        if not 1 <= n_context < n_points:
            raise ValueError(f"n_context must be in [1, {n_points - 1}] ({label} has {n_points} "
                             f"points per task), got {n_context}")
        for name, da in (("x", x), ("y", y)):
            if da.dtype.kind not in "fiub":
                raise ValueError(f"{label}: variable {name!r} has dtype {da.dtype}, not numbers")
        xv = np.asarray(x.values, np.float32)
        yv = np.asarray(y.values, np.float32)
        y3 = yv if yv.ndim == 3 else yv[..., None]
        if not np.isfinite(xv).all():
            raise ValueError(f"{label}: x holds NaN or inf values")
        if not np.isfinite(y3[:, :n_context]).all():
            raise ValueError(f"{label}: y holds NaN or inf values among the first {n_context} "
                             "points of a task (its context)")
        xc, yc, xt = xv[:, :n_context], y3[:, :n_context], xv[:, n_context:]
        means, stds = [], []
        base = jax.random.key(seed)
        for i, lo in enumerate(range(0, xv.shape[0], int(batch_size))):
            hi = lo + int(batch_size)
            m, s = model.predict(xc[lo:hi], yc[lo:hi], xt[lo:hi], num_samples=num_samples,
                                 key=jax.random.fold_in(base, i))
            means.append(m)
            stds.append(s)
        mean, std = np.concatenate(means), np.concatenate(stds)
        if yv.ndim == 2:
            mean, std = mean[..., 0], std[..., 0]
        tgt = {point_dim: slice(n_context, None)}
        coords = {k: c for k, c in ds.isel(tgt).coords.items()
                  if set(c.dims) <= {task_dim, point_dim, *x.dims[2:], *y.dims[2:]}}
        out = xr.Dataset(
            {"x": (x.dims, xt, dict(x.attrs)),
             "mean": (y.dims, mean, {**y.attrs, "long_name": "predictive mean"}),
             "std": (y.dims, std, {"long_name": "predictive standard deviation",
                                   **({"units": y.attrs["units"]} if "units" in y.attrs
                                      else {})})},
            coords=coords, attrs=dict(ds.attrs))
        y_t = yv[:, n_context:]
        if np.isfinite(y_t).any():
            out["y"] = (y.dims, y_t, dict(y.attrs))
        out.attrs.update({"model": getattr(model, "name", type(model).__name__),
                          "n_context": n_context, "source": label,
                          "num_samples": int(num_samples or model.default_samples),
                          **(attrs or {})})
        return out
    finally:
        if not isinstance(data, xr.Dataset):
            ds.close()


def check_output_path(out, overwrite: bool = False) -> Path:
    """``out`` as the path of a prediction: ``.nc``, not an existing file unless ``overwrite``."""
    path = Path(out)
    if path.suffix.lower() != ".nc":
        raise ValueError(f"{path}: a prediction is written as a .nc (netCDF) file, not "
                         f"{path.suffix or '(no extension)'!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; cannot write a netCDF file there")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    return path


def write_prediction(ds, out, overwrite: bool = False) -> Path:
    """Write ``ds`` to the netCDF file ``out`` atomically (temporary file + rename)."""
    import tempfile

    path = check_output_path(out, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
