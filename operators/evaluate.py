"""Evaluation of a trained run on a stored dataset, at that dataset's own resolution.

``evaluate(run, data)`` returns the sample-mean relative L2 error (and relative H1: spectral on
periodic grids, finite differences on node grids), with the data checked against the run first
(same variables, channel counts and dimension, finite values, positive inputs where the training
inputs were positive): a mismatch is a ``DataMismatchError`` saying what differs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from operators.train import DataMismatchError, check_compatible, open_data

__all__ = ["DataMismatchError", "evaluate"]


def _open_for_run(data, config: dict):
    """The dataset's fields with the run's variables, or a clear error when it lacks them."""
    import xarray as xr

    import pde_data

    ds = data if isinstance(data, xr.Dataset) else pde_data.load(data)
    label = str(data) if not isinstance(data, xr.Dataset) else "the dataset"
    want = config["input_vars"] + config["output_vars"]
    missing = [v for v in want if v not in ds.data_vars]
    if missing:
        raise DataMismatchError(
            f"{label} has variables {list(ds.data_vars)} (input_vars={ds.attrs.get('input_vars')!r}, "
            f"output_vars={ds.attrs.get('output_vars')!r}), but the run was trained on "
            f"{config['input_vars']} -> {config['output_vars']}; {missing} missing")
    return open_data(ds, config["input_vars"], config["output_vars"]), label


def evaluate(run, data, *, batch_size: int | None = None, which: str = "best", plot: bool = False,
             plot_samples: int = 3, plot_path=None) -> dict:
    """Metrics of ``run`` (a run folder or ``pde_data.runs.Run``) on ``data`` (a dataset path or
    ``xarray.Dataset``): ``{"rel_l2", "rel_h1", "n", "resolution", "data"}``.

    ``which``: ``"best"`` (best validation epoch) or ``"latest"`` checkpoint. ``plot``: write a
    PNG of input, truth, prediction and error for ``plot_samples`` samples into the run folder
    (or ``plot_path``).
    """
    import jax

    from operators import train as T
    from pde_data import sharding
    from pde_data.runs import Run

    run = run if isinstance(run, Run) else Run(T._existing(run))
    config = run.read_config()
    fields, label = _open_for_run(data, config)
    check_compatible(fields, config, label)
    graphdef, params, rest = T.restore_params(run, config, which)
    norms = T._load_normalisers(run)
    mesh = sharding.data_mesh()
    n_dev = int(mesh.devices.size)
    bs = int(batch_size or config["batch_size"])
    bs = max(n_dev, bs - bs % n_dev)
    params, rest = sharding.replicate((params, rest), mesh)
    xn, yn = sharding.replicate((norms["x"], norms["y"]), mesh)
    eval_fn = T.make_eval_step(graphdef, config["coords"], config["periodic"], h1=True)
    metrics = T._mean_metrics(eval_fn, params, rest, fields, bs, xn, yn, mesh)
    name = Path(str(data)).name if isinstance(data, (str, os.PathLike)) else "dataset"
    out = {"data": str(data) if isinstance(data, (str, os.PathLike)) else "<dataset>",
           "n": len(fields), "resolution": list(fields.spatial), **metrics}
    if plot and plot_samples > 0:
        from operators.plots import plot_predictions

        k = min(plot_samples, len(fields))
        x, y = fields.take(np.arange(k))
        _, pred = eval_fn(params, rest, jax.numpy.asarray(x), jax.numpy.asarray(y), xn, yn)
        path = Path(plot_path) if plot_path else run.path / f"predictions_{Path(name).stem}.png"
        plot_predictions(x, y, np.asarray(pred), path,
                         title=f"{config['model']} on {name} ({'x'.join(map(str, fields.spatial))}): "
                               f"rel L2 {metrics['rel_l2']:.3g}",
                         in_names=fields.x_channels, out_names=fields.y_channels)
        out["plot"] = str(path)
    return out
