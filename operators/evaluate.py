"""Evaluation of a trained run on a stored dataset, at that dataset's own resolution.

``evaluate(run, data)`` returns the sample-mean relative L2 error (and relative H1: spectral on
periodic grids, finite differences on node grids), with the data checked against the run first
(same variables, channel counts and dimension, finite values, positive inputs where the training
inputs were positive): a mismatch is a ``DataMismatchError`` saying what differs.

``evaluate(run, data, interpolate=True)`` is the input/output interpolation baseline of Berner
et al. (2025): the model runs at its training grid only; the inputs are interpolated from the
data's grid to it and the prediction back to the data's grid, where the errors are measured as in
the normal mode. Interpolation (:func:`pde_data.coordinates.resample`): piecewise linear on node
grids (exact at nested nodes, so restriction from a finer nested grid is injection), Fourier
(trigonometric) or linear on periodic grids; ``"auto"`` picks linear / Fourier by the layout.

A run trained on one-step pairs (``one_step`` in its config) takes a trajectory dataset: it is
scored on its one-step pairs (the metrics above) and by the autoregressive rollout of as many
steps from the first stored snapshot (:func:`operators.rollout.rollout_metrics`:
``rollout_rel_l2`` over the whole rollout, ``rollout_rel_l2_per_step``); a dataset of pairs is
scored on its pairs only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.fields import DataMismatchError, data_label, data_stem, open_dataset, open_for_run
from operators.run import check_compatible, load_normalisers, open_run, restore_model
from operators.step import forward, mean_metrics, metric_values

__all__ = ["DataMismatchError", "evaluate", "interpolation_method", "make_interpolated_metric_fn",
           "one_step_data"]

INTERPOLATION = ("auto", "linear", "fourier")


def interpolation_method(interpolate, periodic: bool) -> str:
    """The interpolation of the baseline: ``"linear"`` or ``"fourier"`` (``True`` / ``"auto"``:
    linear on node grids, Fourier on periodic ones); ValueError for what the grid cannot take."""
    method = "auto" if interpolate is True else interpolate
    if method not in INTERPOLATION:
        raise ValueError(f"unknown interpolation {interpolate!r}; choose from {list(INTERPOLATION)}")
    if method == "auto":
        return "fourier" if periodic else "linear"
    if method == "fourier" and not periodic:
        raise ValueError("Fourier interpolation needs a periodic grid; the run was trained on a node grid "
                         "(both ends included): use linear interpolation")
    return method


def make_interpolated_metric_fn(model, config: dict, method: str, h1: bool = True):
    """``metrics(model, x, y, normalisers) -> ({name: batch sum}, pred)`` of the interpolation
    baseline: ``x`` resampled to the run's training grid, the model applied there, the
    prediction resampled back to the grid of ``y``; one jit per data grid."""
    import jax
    from flax import nnx

    from pde_data.coordinates import resample

    graphdef, _ = nnx.split(model)
    coords, periodic = bool(config["coords"]), bool(config["periodic"])
    train_grid = tuple(int(n) for n in config["train_resolution"])

    @jax.jit
    def sums(state, x, y, norms):
        xm = resample(x, train_grid, periodic, method, first_axis=1)
        pm = forward(nnx.merge(graphdef, state), xm, norms, coords, periodic)
        pred = resample(pm, y.shape[1:-1], periodic, method, first_axis=1)
        return {k: v.sum() for k, v in metric_values(pred, y, periodic, h1).items()}, pred

    def metrics(m, x, y, normalisers):
        return sums(nnx.state(m), x, y, {"x": normalisers["x"], "y": normalisers["y"]})

    return metrics


def one_step_data(data, config: dict):
    """``(data, trajectories)`` for a run trained on one-step pairs: a trajectory dataset becomes
    its pairs (``config["one_step"]`` per trajectory) and its trajectories ``(n, time,
    *spatial)``; a dataset that already holds the run's variables is returned as it is, with
    ``None``."""
    from pde_data.one_step import one_step_pairs, trajectories

    ds, _ = open_dataset(data)
    if all(v in ds.variables for v in config["input_vars"] + config["output_vars"]):
        return ds, None
    return one_step_pairs(ds, steps=int(config["one_step"])), trajectories(ds)


def evaluate(run, data, *, batch_size: int | None = None, which: str = "best", plot: bool = False,
             plot_samples: int = 3, plot_path=None, interpolate=False) -> dict:
    """Metrics of ``run`` (a run folder or ``pde_data.runs.Run``) on ``data`` (a dataset path or
    ``xarray.Dataset``): ``{"rel_l2", "rel_h1", "n", "resolution", "data"}``.

    ``which``: ``"best"`` (best validation epoch) or ``"latest"`` checkpoint. ``plot``: write a
    PNG of input, truth, prediction and error for ``plot_samples`` samples into the run folder
    (or ``plot_path``). ``interpolate``: the interpolation baseline (``True`` / ``"auto"``,
    ``"linear"``, ``"fourier"``; see the module doc); the result then also names the
    ``interpolate`` method and the ``model_resolution`` the model ran at.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size
                                   or batch_size < 1):
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    r = open_run(run)
    config = r.read_config()
    traj = None
    source = data
    if config.get("one_step"):
        data, traj = one_step_data(data, config)
    fields, label = open_for_run(data, config)
    check_compatible(fields, config, label)
    method = interpolation_method(interpolate, bool(config["periodic"])) if interpolate else None
    model = restore_model(r, config, which)
    norms = load_normalisers(r)
    k = min(int(plot_samples), len(fields)) if plot else 0
    metric_fn = make_interpolated_metric_fn(model, config, method) if method else None
    metrics, pred = mean_metrics(model, fields, int(batch_size or config["batch_size"]), norms,
                                 config, h1=True, take=k, metric_fn=metric_fn)
    out = {"data": data_label(source), "n": len(fields), "resolution": list(fields.spatial), **metrics}
    if traj is not None:
        from operators.rollout import rollout_metrics

        out.update(rollout_metrics(model, norms, config, traj, int(config["one_step"]),
                                   batch_size=int(batch_size or config["batch_size"])))
    if method:
        out.update(interpolate=method, model_resolution=[int(n) for n in config["train_resolution"]])
    if k > 0:
        from operators.plots import plot_predictions

        x, y = fields.take(np.arange(k))
        path = Path(plot_path) if plot_path else r.path / f"predictions_{data_stem(source)}.png"
        name = Path(str(source)).name if out["data"] != "<dataset>" else "dataset"
        plot_predictions(x, y, pred, path,
                         title=f"{config['model']} on {name} ({'x'.join(map(str, fields.spatial))}): "
                               f"rel L2 {metrics['rel_l2']:.3g}",
                         in_names=fields.x_channels, out_names=fields.y_channels)
        out["plot"] = str(path)
    if r is not run:
        r.close()
    return out
