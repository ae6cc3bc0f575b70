"""Autoregressive rollout of a one-step operator and its error over the rollout.

A run trained on one-step pairs (``operators train --one-step S``, :mod:`pde_data.one_step`)
maps a field to the field one time step later. The MgNO reference (``navier.py``, ``test``)
scores it by feeding its prediction back ``S`` times from the first snapshot, ``w_{k+1} =
G(w_k)``, and reports the relative L2 error of the whole rollout (the ``S`` predicted snapshots
of a sample stacked into one vector, ``||W_pred - W|| / ||W||``; "test_l2_full") beside the
error of each step. :func:`rollout` is the time loop as one ``jax.lax.scan`` (jit-friendly, no
Python loop over samples or steps); :func:`rollout_errors` the errors; :func:`rollout_metrics`
both for a trained run on a trajectory dataset, batch by batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import operators.losses as L

__all__ = ["rollout", "rollout_errors", "rollout_metrics"]


def rollout(step, w_start, n_steps: int):
    """``(batch, n_steps, *spatial, c)``: ``step`` applied ``n_steps`` times from ``w_start``
    ``(batch, *spatial, c)``, each output the next input (``w_start`` itself not included)."""
    def body(w, _):
        nxt = step(w)
        return nxt, nxt

    _, traj = jax.lax.scan(body, w_start, None, length=int(n_steps))
    return jnp.moveaxis(traj, 0, 1)


def rollout_errors(pred, true, periodic: bool | None = None) -> dict:
    """Per-sample errors of a rollout ``pred`` against ``true``, both ``(batch, steps, *spatial,
    c)``: ``rel_l2`` ``(batch,)`` of the whole rollout (all steps in one norm) and
    ``rel_l2_per_step`` ``(batch, steps)``."""
    if pred.shape != true.shape:
        raise ValueError(f"rollout and trajectory shapes differ: {tuple(pred.shape)} vs {tuple(true.shape)}")
    b, s = pred.shape[:2]
    flat = lambda u: u.reshape(b * s, *u.shape[2:])
    err = L.l2_norm_sq(flat(pred - true), periodic).reshape(b, s)
    ref = L.l2_norm_sq(flat(true), periodic).reshape(b, s)
    return {"rel_l2": jnp.sqrt(err.sum(1) / ref.sum(1)), "rel_l2_per_step": jnp.sqrt(err / ref)}


def rollout_metrics(model, normalisers: dict, config: dict, traj, steps: int, first: int = 1,
                    batch_size: int = 32) -> dict:
    """The rollout of ``model`` (a run's model; inputs and outputs in physical units through
    ``normalisers``) on trajectories ``traj`` ``(n, time, *spatial)`` (time index 0 the initial
    field, :func:`pde_data.one_step.trajectories`): ``steps`` steps from snapshot ``first``,
    against snapshots ``first + 1 .. first + steps``. Sample means: ``{"rollout_rel_l2",
    "rollout_rel_l2_per_step" (list), "rollout_steps", "rollout_first"}``."""
    from operators.step import device_normalisers, forward

    traj = np.asarray(traj)
    if traj.ndim < 3:
        raise ValueError(f"trajectories must be (sample, time, *spatial), got shape {traj.shape}")
    if first + steps >= traj.shape[1]:
        raise ValueError(f"a rollout of {steps} steps from snapshot {first} needs {first + steps + 1} "
                         f"snapshots (initial field included); the trajectories have {traj.shape[1]}")
    coords, periodic = bool(config["coords"]), bool(config["periodic"])
    graphdef, _ = nnx.split(model)

    @jax.jit
    def sums(state, w_start, true, norms):
        net = nnx.merge(graphdef, state)
        pred = rollout(lambda w: forward(net, w, norms, coords, periodic), w_start, steps)
        e = rollout_errors(pred, true, periodic)
        return e["rel_l2"].sum(), e["rel_l2_per_step"].sum(0)

    norms = device_normalisers(normalisers)
    state = nnx.state(model)
    total, per_step = 0.0, np.zeros(steps)
    for lo in range(0, len(traj), int(batch_size)):
        block = traj[lo:lo + int(batch_size), first:first + steps + 1, ..., None].astype(np.float32)
        full, each = sums(state, jnp.asarray(block[:, 0]), jnp.asarray(block[:, 1:]), norms)
        total += float(full)
        per_step += np.asarray(each, dtype=np.float64)
    n = len(traj)
    return {"rollout_rel_l2": total / n, "rollout_rel_l2_per_step": (per_step / n).tolist(),
            "rollout_steps": int(steps), "rollout_first": int(first)}
