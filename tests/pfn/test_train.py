"""Training: loss goes down, interrupted + resumed run == uninterrupted run, 4 devices == 1."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from pde_data.runs import Run
from pfn.train import load_run, train

TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 16, "n_buckets": 20,
        "border_samples": 2000, "max_context": 12, "n_targets": 4, "batch_size": 4,
        "log_every": 2, "lr": 3e-3, "warmup": 2, "quiet": True}
ROOT = Path(__file__).resolve().parents[2]


def _params(run):
    model, _, _ = load_run(run)
    return jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))


def test_interrupt_and_resume_gives_the_same_parameters(tmp_path):
    train(str(tmp_path / "full"), "gp-rbf", steps=8, checkpoint_every=3, **TINY)
    part = train(str(tmp_path / "part"), "gp-rbf", steps=8, checkpoint_every=3, stop_after=4,
                 **TINY)
    assert part["step"] == 4
    resumed = train(str(tmp_path / "part"), "gp-rbf", steps=8, checkpoint_every=3, **TINY)
    assert resumed["resumed_from"] == 4 and resumed["step"] == 8
    for a, b in zip(_params(tmp_path / "full"), _params(tmp_path / "part")):
        np.testing.assert_array_equal(a, b)
    assert Run(tmp_path / "part").read_metrics()[-1]["step"] == 8


def test_changed_config_is_refused(tmp_path):
    train(str(tmp_path / "r"), "gp-rbf", steps=2, stop_after=0, **TINY)
    with pytest.raises(ValueError, match="lr"):
        train(str(tmp_path / "r"), "gp-rbf", steps=2, **{**TINY, "lr": 1e-2})


@pytest.mark.slow
def test_classification_training_reduces_loss(tmp_path):
    cfg = {**TINY, "max_context": 30, "n_targets": 10, "batch_size": 8, "log_every": 10}
    train(str(tmp_path / "c"), "tabular", steps=60, **cfg)
    rows = Run(tmp_path / "c").read_metrics()
    assert rows[-1]["loss"] < rows[0]["loss"]


_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys, jax
    from pfn.train import train
    out = train(sys.argv[1], "gp-rbf", steps=3, checkpoint_every=3, d_model=16, n_heads=2,
                n_layers=1, d_ff=16, n_buckets=20, border_samples=2000, max_context=12,
                n_targets=4, batch_size=8, log_every=1, quiet=True)
    print(json.dumps({"devices": jax.device_count(), "loss": out["loss"]}))
""")


def _run_on(n_devices, folder):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "OPBAYES_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, str(folder)], check=False, env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_four_emulated_devices_give_the_same_loss(tmp_path):
    one = _run_on(1, tmp_path / "one")
    four = _run_on(4, tmp_path / "four")
    assert one["devices"] == 1 and four["devices"] == 4
    assert four["loss"] == pytest.approx(one["loss"], rel=1e-4)
    losses = [[r["loss"] for r in Run(tmp_path / d).read_metrics()] for d in ("one", "four")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


def test_a_non_finite_dataset_is_left_out_of_the_loss():
    """A NaN dataset (a failed float32 Cholesky of the prior) must not poison the loss: the
    loss equals the loss of the batch without it, and its gradient is finite."""
    import jax.numpy as jnp

    from pfn.train import build_config, build_model, loss_fn, prior_statistics
    from pde_data.priors.samplers import make_prior

    cfg = build_config("gp-rbf", **{k: v for k, v in TINY.items() if k != "quiet"})
    borders = jnp.asarray(prior_statistics(cfg)["borders"])
    model = build_model(cfg)
    batch = make_prior("gp-rbf")(jax.random.key(3), 4, 16, 8)
    y_bad = batch.y.at[1, 5].set(jnp.nan)
    keep = jnp.array([0, 2, 3])
    clean = loss_fn(model, batch.x[keep], batch.y[keep], 8, None, borders, "regression")
    mixed = loss_fn(model, batch.x, y_bad, 8, None, borders, "regression")
    np.testing.assert_allclose(float(mixed), float(clean), rtol=1e-5)
    g = nnx.grad(lambda m: loss_fn(m, batch.x, y_bad, 8, None, borders, "regression"))(model)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(g))


def test_expected_nll_is_the_average_nll_over_draws_of_the_targets():
    """The Rao-Blackwellised loss equals the Monte Carlo mean of the sampled-y loss over targets
    drawn from the exact GP predictive (targets' y never enter the network)."""
    import jax.numpy as jnp

    from pde_data.priors.samplers import make_prior
    from pfn.train import build_config, build_model, loss_fn, prior_statistics

    cfg = build_config("gp-rbf", **{k: v for k, v in TINY.items() if k != "quiet"})
    borders = jnp.asarray(prior_statistics(cfg)["borders"])
    model = build_model(cfg)
    prior = make_prior("gp-rbf", lengthscale=0.3, noise_var=0.05)
    key = jax.random.key(5)
    batch = prior(key, 4, 16, 6)
    mean, var = prior.predictive(key, batch)
    expected = loss_fn(model, batch.x, batch.y, 6, None, borders, "regression", (mean, var))
    draws = mean + jnp.sqrt(var) * jax.random.normal(jax.random.key(6), (4000,) + mean.shape)
    is_ctx = jnp.arange(16) < 6
    sampled = jax.jit(jax.vmap(lambda yt: loss_fn(
        model, batch.x, jnp.where(is_ctx, batch.y, yt), 6, None, borders, "regression")))(draws)
    se = float(jnp.std(sampled)) / np.sqrt(len(sampled))
    assert abs(float(expected) - float(jnp.mean(sampled))) < 4 * se + 1e-4
    # and it is not the loss of the one sampled y
    plain = loss_fn(model, batch.x, batch.y, 6, None, borders, "regression")
    assert abs(float(plain) - float(expected)) > 4 * se


def test_expected_nll_training_runs_and_needs_a_gp_prior(tmp_path):
    train(str(tmp_path / "e"), "gp-rbf", steps=4, loss="expected-nll", **TINY)
    rows = Run(tmp_path / "e").read_metrics()
    assert rows and all(np.isfinite(r["loss"]) for r in rows)
    with pytest.raises(ValueError, match="expected-nll.*tabular"):
        train(str(tmp_path / "t"), "tabular", steps=2, loss="expected-nll", **TINY)
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        train(str(tmp_path / "u"), "gp-rbf", steps=2, loss="l2", **TINY)


def test_init_from_starts_from_the_source_weights_and_borders(tmp_path):
    from pfn.train import build_config, initial_model

    train(str(tmp_path / "a"), "gp-rbf", steps=3, **TINY)
    opts = {k: v for k, v in TINY.items() if k != "quiet"}
    model, stats = initial_model(build_config("gp-rbf", init_from=str(tmp_path / "a"), **opts))
    for a, b in zip(_params(tmp_path / "a"), jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))):
        np.testing.assert_array_equal(a, b)
    train(str(tmp_path / "b"), "gp-rbf", steps=2, init_from=str(tmp_path / "a"), seed=7,
          loss="expected-nll", **TINY)
    np.testing.assert_array_equal(Run(tmp_path / "b").load_arrays("prior_stats")["borders"],
                                  Run(tmp_path / "a").load_arrays("prior_stats")["borders"])
    with pytest.raises(ValueError, match="another model.*d_model"):
        train(str(tmp_path / "c"), "gp-rbf", steps=2, init_from=str(tmp_path / "a"),
              **{**TINY, "d_model": 8})
    with pytest.raises(ValueError, match="unknown PFN checkpoint 'nope'"):
        train(str(tmp_path / "c"), "gp-rbf", steps=2, init_from="nope", **TINY)
    # the refused sources left no run behind: the corrected command starts cleanly
    train(str(tmp_path / "c"), "gp-rbf", steps=2, init_from=str(tmp_path / "a"), **TINY)
