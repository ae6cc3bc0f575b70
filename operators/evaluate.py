"""Evaluation of a trained run on a stored dataset, at that dataset's own resolution.

``evaluate(run, data)`` returns the sample-mean relative L2 error (and relative H1: spectral on
periodic grids, finite differences on node grids), with the data checked against the run first
(same variables, channel counts and dimension, finite values, positive inputs where the training
inputs were positive): a mismatch is a ``DataMismatchError`` saying what differs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.fields import DataMismatchError, data_label, data_stem, open_for_run
from operators.run import check_compatible, load_normalisers, open_run, restore_model
from operators.step import mean_metrics

__all__ = ["DataMismatchError", "evaluate"]


def evaluate(run, data, *, batch_size: int | None = None, which: str = "best", plot: bool = False,
             plot_samples: int = 3, plot_path=None) -> dict:
    """Metrics of ``run`` (a run folder or ``pde_data.runs.Run``) on ``data`` (a dataset path or
    ``xarray.Dataset``): ``{"rel_l2", "rel_h1", "n", "resolution", "data"}``.

    ``which``: ``"best"`` (best validation epoch) or ``"latest"`` checkpoint. ``plot``: write a
    PNG of input, truth, prediction and error for ``plot_samples`` samples into the run folder
    (or ``plot_path``).
    """
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size
                                   or batch_size < 1):
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    r = open_run(run)
    config = r.read_config()
    fields, label = open_for_run(data, config)
    check_compatible(fields, config, label)
    model = restore_model(r, config, which)
    norms = load_normalisers(r)
    k = min(int(plot_samples), len(fields)) if plot else 0
    metrics, pred = mean_metrics(model, fields, int(batch_size or config["batch_size"]), norms,
                                 config, h1=True, take=k)
    out = {"data": data_label(data), "n": len(fields), "resolution": list(fields.spatial), **metrics}
    if k > 0:
        from operators.plots import plot_predictions

        x, y = fields.take(np.arange(k))
        path = Path(plot_path) if plot_path else r.path / f"predictions_{data_stem(data)}.png"
        name = Path(str(data)).name if out["data"] != "<dataset>" else "dataset"
        plot_predictions(x, y, pred, path,
                         title=f"{config['model']} on {name} ({'x'.join(map(str, fields.spatial))}): "
                               f"rel L2 {metrics['rel_l2']:.3g}",
                         in_names=fields.x_channels, out_names=fields.y_channels)
        out["plot"] = str(path)
    if r is not run:
        r.close()
    return out
