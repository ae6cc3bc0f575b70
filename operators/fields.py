"""Data against a trained run: opening a dataset with the run's variables, checking that it fits
the run, reading inputs alone, and writing a prediction back as the run's output variables.

A dataset fits a run (:func:`check_compatible`) when it has the same input / output variables,
channel counts, spatial dimension and grid layout (periodic or node), finite values, and
strictly positive inputs where the training inputs were (e.g. a Darcy coefficient); otherwise
a :class:`DataMismatchError` says what differs. Prediction needs the inputs only
(:func:`check_inputs`, :func:`input_batches`) and returns the output variables with the
dimensions, coordinates and attributes they had in the training data (the run's
``output_layout``), on the grid of the new inputs (:func:`prediction_dataset`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "DataMismatchError",
    "check_compatible",
    "check_inputs",
    "input_batches",
    "open_data",
    "open_dataset",
    "open_for_run",
    "prediction_dataset",
]


class DataMismatchError(ValueError):
    """Data that do not fit a trained run: other variables, channels, dimension or values."""


def open_data(path_or_ds, inputs=None, outputs=None, subsample: int = 1, **kw):
    """``FieldData`` of a stored dataset (a path or an ``xarray.Dataset``)."""
    from pde_data.pipeline import FieldData

    return FieldData.from_dataset(path_or_ds, inputs=inputs, outputs=outputs, subsample=subsample,
                                  **kw)


def open_dataset(data, inputs_only: bool = False):
    """``(xarray.Dataset, label)`` of a dataset path or an ``xarray.Dataset``.

    ``inputs_only``: a ``.nc`` / ``.zarr`` file that ``pde_data.load`` refuses only because its
    ``output_vars`` attribute names variables it does not hold (inputs for a prediction) is
    read with xarray as it is; the run's checks then judge its input variables."""
    import xarray as xr

    import pde_data

    if isinstance(data, xr.Dataset):
        return data, "the dataset"
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"expected a dataset path or an xarray.Dataset, got {type(data).__name__}")
    try:
        return pde_data.load(data), str(data)
    except ValueError as err:
        suffix = Path(data).suffix.lower()
        if not inputs_only or "output_vars" not in str(err) or suffix not in (".nc", ".zarr"):
            raise
    return _open_inputs_file(Path(data)), str(data)


def _open_inputs_file(path: Path):
    """A native dataset file whose outputs are absent, read as it is (lazily for zarr)."""
    import xarray as xr

    from pde_data.schema import SAMPLE

    if path.suffix.lower() == ".zarr":
        from pde_data.storage import open_zarr

        ds = open_zarr(path)  # lazily; a corrupt chunk is a DataFormatError when read
    else:
        from pde_data.formats.hdf5check import check_global_heaps

        with open(path, "rb") as fh:
            if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                check_global_heaps(path)  # HDF5 can hang on a corrupt global heap
        with xr.open_dataset(path) as f:
            ds = f.load()
    if SAMPLE in ds.dims and SAMPLE not in ds.coords:
        ds = ds.assign_coords({SAMPLE: np.arange(ds.sizes[SAMPLE], dtype=np.int64)})
    return ds


def _missing(ds, label: str, config: dict, names: list[str]) -> None:
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise DataMismatchError(
            f"{label} has variables {list(ds.data_vars)} (input_vars={ds.attrs.get('input_vars')!r}, "
            f"output_vars={ds.attrs.get('output_vars')!r}), but the run was trained on "
            f"{config['input_vars']} -> {config['output_vars']}; {missing} missing")


def open_for_run(data, config: dict):
    """``(FieldData, label)``: the dataset's fields with the run's input and output variables,
    or a :class:`DataMismatchError` naming the variables it lacks."""
    ds, label = open_dataset(data)
    _missing(ds, label, config, config["input_vars"] + config["output_vars"])
    fields = open_data(ds, config["input_vars"], config["output_vars"])
    if len(fields) == 0:
        raise DataMismatchError(f"{label} holds no samples (its 'sample' dimension is empty)")
    return fields, label


def _kind(periodic) -> str:
    return "periodic" if periodic else "node (both ends included)"


def _check_layout(data, config: dict, label: str) -> None:
    layout = getattr(data, "periodic", None)
    if layout is not None and "periodic" in config and bool(layout) != bool(config["periodic"]):
        raise DataMismatchError(
            f"{label} is on a {_kind(layout)} grid, the run was trained on a "
            f"{_kind(config['periodic'])} grid (other boundary conditions)")
    if data.n_spatial != config["dim"]:
        raise DataMismatchError(
            f"{label} has {data.n_spatial} spatial dimension(s) {data.spatial}, the run is "
            f"{config['dim']}-D")
    if data.in_channels != config["in_channels"]:
        raise DataMismatchError(
            f"{label} has {data.in_channels} input channel(s) {data.x_channels}, the run was "
            f"trained on {config['in_channels']} ({config['input_channel_names']})")


def check_input_values(block, config: dict, label: str, names) -> None:
    """Finite values, and positive values in the channels the training inputs had positive."""
    block = np.asarray(block)
    if not np.isfinite(block).all():
        raise DataMismatchError(f"{label}: the input fields contain NaN or inf values")
    flat = block.reshape(-1, block.shape[-1])
    for c, (pos, name) in enumerate(zip(config["input_positive"], names)):
        if pos and flat.shape[0] and flat[:, c].min() <= 0:
            raise DataMismatchError(
                f"{label}: input channel {name!r} has non-positive values (min "
                f"{flat[:, c].min():.4g}); the run was trained on strictly positive {name!r} "
                "(e.g. a Darcy coefficient), so this input is outside its domain")


def _blocks(arr):
    return arr.iter_chunks() if hasattr(arr, "iter_chunks") else [np.asarray(arr)]


def check_inputs(data, config: dict, label: str = "data", values: bool = True) -> None:
    """:class:`DataMismatchError` unless the inputs of ``data`` (FieldData) fit the run: same
    input variables, spatial dimension, grid layout and channel count; with ``values``, also
    finite values and positive inputs where the training inputs were positive."""
    if list(data.input_vars) != list(config["input_vars"]):
        raise DataMismatchError(
            f"{label} has inputs {data.input_vars}, but the run was trained on "
            f"{config['input_vars']} -> {config['output_vars']}")
    _check_layout(data, config, label)
    if values:
        for block in _blocks(data.x):
            check_input_values(block, config, label, data.x_channels)


def check_compatible(data, config: dict, label: str = "data", values: bool = True) -> None:
    """:class:`DataMismatchError` unless ``data`` (FieldData) fits the run: same variables,
    channel counts, spatial dimension, grid layout and (with ``values``) finite values and
    positive inputs where the training inputs were."""
    want_in, want_out = config["input_vars"], config["output_vars"]
    if list(data.input_vars) != want_in or list(data.output_vars) != want_out:
        raise DataMismatchError(
            f"{label} maps {data.input_vars} -> {data.output_vars}, but the run was trained on "
            f"{want_in} -> {want_out}")
    _check_layout(data, config, label)
    if data.out_channels != config["out_channels"]:
        raise DataMismatchError(
            f"{label} has {data.out_channels} output channel(s) {data.y_channels}, the run was "
            f"trained on {config['out_channels']} ({config['output_channel_names']})")
    if not values:
        return
    for block in _blocks(data.x):
        check_input_values(block, config, label, data.x_channels)
    for block in _blocks(data.y):
        if not np.isfinite(np.asarray(block)).all():
            raise DataMismatchError(f"{label}: the output fields contain NaN or inf values")


# ------------------------------------------------------------------------------------------
# prediction: inputs in, output variables out
# ------------------------------------------------------------------------------------------
def open_inputs(data, config: dict):
    """``(ds, inputs, label)``: the dataset and a FieldData whose ``x`` streams the run's input
    variables (its ``y`` is a placeholder that is never read: no targets needed), with the
    structure checked against the run."""
    ds, label = open_dataset(data, inputs_only=True)
    _missing(ds, label, config, config["input_vars"])
    # the pipeline pairs inputs with outputs; name an input as the (unread) output side
    inputs = open_data(ds, config["input_vars"], config["input_vars"][:1], stream=True)
    check_inputs(inputs, config, label, values=False)
    return ds, inputs, label


def input_batches(inputs, config: dict, batch_size: int, label: str) -> Iterator[np.ndarray]:
    """The inputs ``(k, *spatial, c_in)`` of consecutive samples, ``batch_size`` at a time,
    each checked (finite; positive where the training inputs were)."""
    x = inputs.x
    for i in range(0, len(inputs), batch_size):
        block = np.asarray(x[i:i + batch_size])
        check_input_values(block, config, label, inputs.x_channels)
        yield block


_CHANNEL = re.compile(r"^(?P<var>.+?)\[(?P<idx>[^\]]*)\]$")


def _extras_from_channels(var: str, names: list[str]) -> tuple[list[str], dict[str, int]]:
    """Non-spatial dims and sizes of ``var`` from its channel names ``var[t=0,...]`` (runs
    whose config has no ``output_layout``)."""
    dims: list[str] = []
    sizes: dict[str, int] = {}
    for name in names:
        m = _CHANNEL.match(name)
        if not m:
            continue
        for part in m.group("idx").split(","):
            d, i = part.split("=")
            if d not in sizes:
                dims.append(d)
            sizes[d] = max(sizes.get(d, 0), int(i) + 1)
    return dims, sizes


def _var_channels(var: str, names: list[str]) -> list[int]:
    return [i for i, n in enumerate(names) if n == var or (n.startswith(var + "[") and n.endswith("]"))]


def prediction_dataset(ds, pred: np.ndarray, config: dict, attrs: dict | None = None):
    """An ``xarray.Dataset`` with the run's input variables of ``ds`` and its output variables
    predicted (``pred``: ``(n, *spatial, c_out)`` in physical units), on the grid of ``ds``:
    the coordinates and attributes of ``ds`` are kept, the output variables get the dimensions
    and attributes they had in the training data."""
    import xarray as xr

    from pde_data.schema import SAMPLE, SPATIAL_DIMS

    spatial = [d for d in SPATIAL_DIMS if any(d in ds[v].dims for v in config["input_vars"])]
    names = list(config["output_channel_names"])
    layout = config.get("output_layout") or {}
    out = {v: ds[v] for v in config["input_vars"]}
    keep = dict(ds.coords)
    for var in config["output_vars"]:
        chans = _var_channels(var, names)
        block = np.asarray(pred)[..., chans]
        info = layout.get(var)
        if info is not None:
            dims = list(info["dims"])
            extras = [d for d in dims if d not in SPATIAL_DIMS]
            sizes = {d: int(info["sizes"][d]) for d in extras}
            var_spatial = [d for d in dims if d in SPATIAL_DIMS]
            var_attrs = dict(info.get("attrs") or {})
            coords = info.get("coords") or {}
        else:  # a run from before the layout was stored: spatial dims first, then the rest
            extras, sizes = _extras_from_channels(var, [names[i] for i in chans])
            var_spatial, var_attrs, coords = spatial, {}, {}
            dims = [*spatial, *extras]
        n = block.shape[0]
        if not var_spatial:  # a per-sample output, broadcast over the grid in training
            block = block.mean(axis=tuple(range(1, block.ndim - 1)))
        block = block.reshape(n, *block.shape[1:-1], *[sizes[d] for d in extras])
        order = [SAMPLE, *(var_spatial if var_spatial else []), *extras]
        arr = xr.DataArray(block, dims=order, attrs=var_attrs).transpose(SAMPLE, *dims)
        for d in extras:
            if d in ds.coords and ds.sizes.get(d) == sizes[d]:
                continue
            keep.pop(d, None)  # the inputs' own coordinate of that name does not fit
            values = coords.get(d)
            if values is None or len(values) != sizes[d]:
                values = np.arange(sizes[d], dtype=np.float64)
            arr = arr.assign_coords({d: np.asarray(values)})
        out[var] = arr
    result = xr.Dataset(out, coords=keep, attrs=dict(ds.attrs))
    result.attrs.update(input_vars=list(config["input_vars"]),
                        output_vars=list(config["output_vars"]))
    if not result.attrs.get("pde"):
        result.attrs["pde"] = config.get("pde") or "unknown"
    result.attrs.update(attrs or {})
    return result


def data_label(data) -> str:
    """How a dataset argument is named in results: its path, or ``<dataset>``."""
    return str(data) if isinstance(data, (str, os.PathLike)) else "<dataset>"


def data_stem(data) -> str:
    return Path(str(data)).stem if isinstance(data, (str, os.PathLike)) else "dataset"
