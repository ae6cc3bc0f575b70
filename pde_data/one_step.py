"""One-step pairs of a trajectory dataset: ``(w(t_i), w(t_{i+1}))`` for time-stepping operators.

The MgNO reference (He, Liu, Xu 2024; ``navier.py`` / ``utilities3.getNavierDataSet3`` of
xlliu2017/MgNO) trains its Navier-Stokes model on one time step: from each trajectory
``u (s, s, T)`` of the FNO vorticity data it takes the pairs ``(u[..., i], u[..., i + 1])``,
``i = 0 .. steps - 1`` (``steps = 10``; ``u[..., 0]`` is the snapshot at t = 1, the initial
field ``a`` is not used), and tests the autoregressive rollout of ``steps`` steps from
``u[..., 0]``. :func:`trajectories` gives the trajectories ``[w0, w(t_1), w(t_2), ...]`` of a
dataset in the docs/design.md schema (Navier-Stokes ``w0`` / ``w``, Burgers ``u0`` / ``u``, FNO
``.mat`` files as ``pde_data.load`` reads them); :func:`one_step_pairs` turns them into a
dataset of pairs with the reference's choice of snapshots (``first=1``: start at the first
stored snapshot, skip the initial field).

Pairs are ordered trajectory-major: sample ``k * steps + i`` is step ``i`` of trajectory ``k``
(coordinates ``trajectory`` and ``step`` on ``sample``), so a split by trajectory takes whole
blocks of ``steps`` rows (:func:`trajectory_rows`) and no trajectory is in two splits. The
pairs are built in memory (``steps`` copies of the fields: a zarr store larger than memory is
not streamed here).
"""

from __future__ import annotations

import numpy as np

__all__ = ["INPUT_VAR", "OUTPUT_VAR", "one_step_pairs", "trajectories", "trajectory_rows"]

#: names of the input and output variables of a pairs dataset
INPUT_VAR, OUTPUT_VAR = "w", "w_next"
TIME = "t"


def _trajectory_vars(ds) -> tuple[str, str]:
    """``(initial, series)``: the dataset's input variable without a time axis and its output
    variable with one (e.g. ``w0`` / ``w``); a ``ValueError`` says what is missing."""
    inputs, outputs = list(ds.attrs.get("input_vars", [])), list(ds.attrs.get("output_vars", []))
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(outputs, str):
        outputs = [outputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"one-step pairs need a trajectory dataset with one input and one output "
                         f"variable (e.g. Navier-Stokes w0 -> w), got input_vars={inputs}, "
                         f"output_vars={outputs}")
    w0, w = inputs[0], outputs[0]
    if TIME not in ds[w].dims:
        raise ValueError(f"one-step pairs need a time series: output variable {w!r} has dims "
                         f"{tuple(ds[w].dims)}, no {TIME!r} axis (a trajectory dataset such as "
                         "`python -m pde_data generate navier_stokes`)")
    if TIME in ds[w0].dims:
        raise ValueError(f"input variable {w0!r} of a trajectory dataset is the initial field, "
                         f"without a {TIME!r} axis; got dims {tuple(ds[w0].dims)}")
    return w0, w


def trajectories(ds) -> np.ndarray:
    """The trajectories of ``ds`` as one array ``(sample, time, *spatial)``: the initial field
    (time index 0) followed by the stored snapshots of the output series."""
    w0, w = _trajectory_vars(ds)
    series = ds[w].transpose("sample", TIME, *[d for d in ds[w].dims if d not in ("sample", TIME)])
    first = ds[w0].transpose("sample", *series.dims[2:])
    return np.concatenate([np.asarray(first.values)[:, None], np.asarray(series.values)], axis=1)


def _check_window(n_times: int, steps: int | None, first: int) -> int:
    if isinstance(first, bool) or int(first) != first or first < 0:
        raise ValueError(f"first must be a non-negative integer (0: the initial field), got {first!r}")
    available = n_times - 1 - int(first)
    if steps is None:
        steps = available
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > available:
        raise ValueError(f"{steps} one-step pairs from snapshot {first} need {int(first) + steps + 1} "
                         f"snapshots (initial field included); the trajectories have {n_times}")
    return int(steps)


def one_step_pairs(ds, steps: int | None = None, first: int = 1):
    """The dataset of one-step pairs of the trajectory dataset ``ds``: input ``w`` = snapshot
    ``first + i``, output ``w_next`` = snapshot ``first + i + 1``, ``i < steps``, snapshot 0 being
    the initial field (``first=1``: the MgNO reference, which starts at the first stored
    snapshot; ``steps=None``: every pair the trajectories hold). Trajectory-major order
    (module doc); attributes of ``ds`` kept, with ``one_step_steps`` / ``one_step_first``."""
    import xarray as xr

    w0, w = _trajectory_vars(ds)
    traj = trajectories(ds)
    n, n_times = traj.shape[:2]
    steps = _check_window(n_times, steps, first)
    window = traj[:, first:first + steps + 1]
    spatial = tuple(d for d in ds[w0].dims if d != "sample")
    x = window[:, :-1].reshape(n * steps, *window.shape[2:])
    y = window[:, 1:].reshape(n * steps, *window.shape[2:])
    times = np.concatenate([[0.0], np.asarray(ds[TIME].values, dtype=np.float64)])
    t_in = np.tile(times[first:first + steps], n)
    coords = {d: ds[d] for d in spatial if d in ds.coords}
    coords.update({"sample": np.arange(n * steps),
                   "trajectory": ("sample", np.repeat(np.arange(n), steps)),
                   "step": ("sample", np.tile(np.arange(steps), n)),
                   "time": ("sample", t_in)})
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("input_vars", "output_vars")}
    attrs.update(input_vars=[INPUT_VAR], output_vars=[OUTPUT_VAR], one_step_steps=steps,
                 one_step_first=int(first), one_step_source=f"{w0} -> {w}")
    var_attrs = dict(ds[w].attrs)
    out = xr.Dataset({INPUT_VAR: (("sample", *spatial), x.astype(ds[w].dtype)),
                      OUTPUT_VAR: (("sample", *spatial), y.astype(ds[w].dtype))},
                     coords=coords, attrs=attrs)
    out[INPUT_VAR].attrs.update({**var_attrs, "long_name": f"{var_attrs.get('long_name', w)} at t"})
    out[OUTPUT_VAR].attrs.update({**var_attrs,
                                  "long_name": f"{var_attrs.get('long_name', w)} one step later"})
    return out


def trajectory_rows(trajectory_ids, steps: int) -> np.ndarray:
    """Rows of a pairs dataset of ``steps`` pairs per trajectory that belong to the
    trajectories ``trajectory_ids`` (in that order, each block of ``steps`` rows in time order)."""
    ids = np.asarray(trajectory_ids, dtype=np.int64)
    return (ids[:, None] * int(steps) + np.arange(int(steps))[None, :]).reshape(-1)
