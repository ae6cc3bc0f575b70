"""Apply a trained neural operator to new data: inputs in, the run's output variables out.

:func:`predict_dataset` needs the inputs only (no targets), checks them against the run
(variables, channels, grid layout, finite values, positive where the training inputs were) and
returns an ``xarray.Dataset`` with the input variables, the predicted output variables in
physical units (denormalised) and the coordinates and attributes of the input dataset, at the
resolution of the inputs. :func:`write_prediction` stores it through ``pde_data.save``
(atomically), refusing to replace an existing file unless asked.

    python -m operators predict --run RUN --data IN.nc --out OUT.nc [--overwrite]

From Python: ``operators.load_run(RUN).predict(ds_or_path)`` (``operators.run.LoadedRun``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from operators.fields import input_batches, open_inputs, prediction_dataset
from operators.step import make_predictor, predict_batch

__all__ = ["check_output_path", "predict_dataset", "write_prediction"]

SUFFIXES = (".nc", ".zarr")


def predict_dataset(model, normalisers: dict, config: dict, data, *, batch_size: int | None = None,
                    attrs: dict | None = None):
    """The prediction of ``model`` (with the run's ``normalisers`` and ``config``) on the inputs
    of ``data`` (a dataset path or ``xarray.Dataset``), as an ``xarray.Dataset``; ``attrs`` are
    added to its attributes. Batches of ``batch_size`` samples (default: the run's)."""
    bs = int(config["batch_size"] if batch_size is None else batch_size)
    if bs < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    ds, inputs, label = open_inputs(data, config)
    predictor = make_predictor(model, config)
    preds = [predict_batch(model, normalisers, config, x, predictor)
             for x in input_batches(inputs, config, bs, label)]
    if preds:
        pred = np.concatenate(preds)
    else:
        pred = np.zeros((0, *inputs.spatial, int(config["out_channels"])), np.float32)
    return prediction_dataset(ds, pred, config, attrs)


def check_output_path(out, overwrite: bool = False) -> Path:
    """``out`` as a path for a stored prediction: ``.nc`` or ``.zarr``, not an existing file
    unless ``overwrite`` (a ``FileExistsError`` / ``ValueError`` otherwise)."""
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path}: a prediction is written as .nc (netCDF) or .zarr, "
                         f"not {path.suffix or '(no extension)'!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    return path


def write_prediction(ds, out, overwrite: bool = False) -> Path:
    """Store the prediction ``ds`` at ``out`` through ``pde_data.save`` (atomic: an existing
    file is replaced only once the new one is complete)."""
    import pde_data

    path = check_output_path(out, overwrite)
    if path.exists() and path.is_dir() and path.suffix.lower() == ".nc":
        raise IsADirectoryError(f"{path} is a directory; cannot write a netCDF file there")
    return pde_data.save(ds, os.fspath(path))
