"""Autoregressive rollout of one-step operators (``operators.rollout``): the time loop, the
errors over the rollout against closed forms, and a run's rollout on trajectories."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.rollout import rollout, rollout_errors, rollout_metrics
from operators.train import identity_normaliser


class Scale(nnx.Module):
    """``G(w) = c w``: a linear one-step map whose rollout is ``c^k w``."""

    def __init__(self, c: float):
        self.c = nnx.Param(jnp.asarray(c, jnp.float32))

    def __call__(self, x):
        return self.c.value * x


def geometric_trajectories(n=5, n_times=7, s=8, ratio=0.5, seed=0):
    """``(n, time, s, s)``: w(t_i) = ratio^i w0 (time index 0 the initial field)."""
    w0 = np.random.default_rng(seed).normal(size=(n, s, s))
    return np.stack([ratio**i * w0 for i in range(n_times)], axis=1).astype(np.float32)


def test_rollout_feeds_each_prediction_back_and_errors_have_their_closed_form():
    w0 = jnp.asarray(np.random.default_rng(1).normal(size=(3, 6, 6, 1)), jnp.float32)
    steps, c = 4, 0.6
    true = np.stack([0.5**k * w0 for k in range(1, steps + 1)], 1)

    @jax.jit
    def run(w0, true):
        pred = rollout(lambda w: c * w, w0, steps)
        return pred, rollout_errors(pred, true, periodic=True)

    pred, e = run(w0, true)
    assert pred.shape == (3, steps, 6, 6, 1)
    np.testing.assert_allclose(pred, np.stack([c**k * w0 for k in range(1, steps + 1)], 1), rtol=1e-6)
    k = np.arange(1, steps + 1)
    per_step = np.abs((2 * c) ** k - 1)  # |c^k - 0.5^k| / 0.5^k
    full = np.sqrt(np.sum((c**k - 0.5**k) ** 2) / np.sum(0.25**k))
    np.testing.assert_allclose(e["rel_l2_per_step"], np.tile(per_step, (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(e["rel_l2"], np.full(3, full), rtol=1e-5)
    with pytest.raises(ValueError, match="shapes differ"):
        rollout_errors(pred, true[:, :2])


def test_rollout_of_an_exact_one_step_model_is_exact():
    traj = geometric_trajectories()
    config = {"coords": False, "periodic": True}
    norms = {"x": identity_normaliser(1), "y": identity_normaliser(1)}
    m = rollout_metrics(Scale(0.5), norms, config, traj, steps=5, first=1)
    assert m["rollout_steps"] == 5 and m["rollout_first"] == 1
    assert m["rollout_rel_l2"] < 1e-6 and max(m["rollout_rel_l2_per_step"]) < 1e-6
    wrong = rollout_metrics(Scale(0.55), norms, config, traj, steps=5, first=1, batch_size=3)
    np.testing.assert_allclose(wrong["rollout_rel_l2_per_step"], 1.1 ** np.arange(1, 6) - 1, rtol=1e-4)
    with pytest.raises(ValueError, match="needs 8 snapshots"):
        rollout_metrics(Scale(0.5), norms, config, traj, steps=6, first=1)
