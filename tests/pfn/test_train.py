"""Training on the engine: the loss, resume and extension, options checked at the boundary,
--data, --init-from, 4 devices == 1."""

import json
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pde_data.priors.samplers import make_prior
from pde_data.runs import Run, RunError
from pfn.checkpoint import build_model
from pfn.train import build_config, initial_model, loss_fn, train

from .conftest import (
    ROOT,
    TINY,
    TINY_EVERY,
    TINY_STEPS,
    assert_same_params,
    run_params,
    subprocess_env,
    train_tiny,
)


@pytest.mark.slow
def test_interrupt_resume_and_extend_on_the_engine(tiny_run, tmp_path):
    """Stopped after 3 steps and rerun: the parameters of the uninterrupted shared run. Then
    the same command with a larger --steps continues the finished run."""
    part = tmp_path / "part"
    first = train_tiny(part, steps=TINY_STEPS, checkpoint_every=TINY_EVERY, stop_after=3)
    assert (first["step"], first["stopped"]) == (3, True)
    resumed = train_tiny(part, steps=TINY_STEPS, checkpoint_every=TINY_EVERY)
    assert (resumed["resumed_from"], resumed["step"], resumed["stopped"]) == (3, 4, False)
    assert_same_params(run_params(part), run_params(tiny_run))
    longer = train_tiny(part, steps=6, checkpoint_every=TINY_EVERY)
    assert (longer["resumed_from"], longer["step"]) == (4, 6)
    assert Run(part).read_config()["steps"] == 6
    assert [r["step"] for r in Run(part).read_metrics()] == [2, 4, 6]


def test_a_finished_run_is_not_trained_again_and_changed_options_are_refused(tiny_run):
    again = train_tiny(tiny_run, steps=TINY_STEPS, checkpoint_every=TINY_EVERY)
    assert (again["step"], again["resumed_from"], again["stopped"]) == (TINY_STEPS,) * 2 + (False,)
    with pytest.raises(RunError, match="lr"):
        train_tiny(tiny_run, steps=TINY_STEPS, checkpoint_every=TINY_EVERY, lr=1e-2)
    with pytest.raises(RunError, match="grow"):
        train_tiny(tiny_run, steps=2, checkpoint_every=TINY_EVERY)
    assert Run(tiny_run).read_config()["steps"] == TINY_STEPS


@pytest.mark.parametrize("option,value,match", [
    ("batch_size", 0, "--batch-size must be a positive integer"),
    ("steps", -3, "--steps must be a positive integer"),
    ("steps", 2.5, "--steps must be a positive integer"),
    ("lr", 0.0, "--lr must be a positive finite"),
    ("lr", float("nan"), "--lr must be a positive finite"),
    ("lr", float("inf"), "--lr must be a positive finite"),
    ("warmup", -1, "--warmup must be a non-negative"),
    ("log_every", 0, "--log-every must be a positive integer"),
    ("checkpoint_every", 0, "--checkpoint-every must be a positive integer"),
    ("n_heads", 3, "divisible by --n-heads 3"),
    ("min_context", 20, "--min-context <= --max-context"),
    ("loss", "l2", "unknown loss 'l2'"),
    ("prior_options", {"nope": 1}, r"no option\(s\) \['nope'\]"),
    ("n_buckets", 5000, "border samples"),
])
def test_options_are_checked_before_anything_is_written(tmp_path, option, value, match):
    with pytest.raises(ValueError, match=match):
        train_tiny(tmp_path / "r", **{option: value})
    assert not (tmp_path / "r").exists()


def test_unknown_prior_and_expected_nll_without_a_gp_prior_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        train_tiny(tmp_path / "r", prior="nope")
    with pytest.raises(ValueError, match="expected-nll.*tabular"):
        train_tiny(tmp_path / "r", prior="tabular", loss="expected-nll")
    assert not (tmp_path / "r").exists()


def _cfg():
    return build_config("gp-rbf", **TINY)


BORDERS = jnp.linspace(-3.0, 3.0, TINY["n_buckets"] + 1)  # any increasing borders will do


@pytest.mark.slow
def test_a_non_finite_dataset_is_left_out_of_the_loss():
    """A NaN dataset (a failed float32 Cholesky of the prior) must not poison the loss: the
    loss equals the loss of the batch without it, and its gradient is finite."""
    cfg = _cfg()
    borders = BORDERS
    model = build_model(cfg)
    batch = make_prior("gp-rbf")(jax.random.key(3), 4, 16, 8)
    bad = batch._replace(y=batch.y.at[1, 5, 0].set(jnp.nan))
    keep = jnp.array([0, 2, 3])
    clean = batch._replace(x=batch.x[keep], y=batch.y[keep], mask_context=batch.mask_context[keep],
                           mask_target=batch.mask_target[keep], n_features=batch.n_features[keep])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, pts: loss_fn(
        nnx.merge(graphdef, p, rest), pts, borders, "regression")))
    value, g = value_and_grad(params, bad)
    np.testing.assert_allclose(float(value), float(value_and_grad(params, clean)[0]), rtol=1e-5)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(g))


@pytest.mark.slow
def test_expected_nll_is_the_average_nll_over_draws_of_the_targets():
    """The Rao-Blackwellised loss equals the Monte Carlo mean of the sampled-y loss over targets
    drawn from the exact GP predictive (targets' y never enter the network)."""
    cfg = _cfg()
    borders = BORDERS
    model = build_model(cfg)
    prior = make_prior("gp-rbf", lengthscale=0.3, noise_var=0.05)
    key = jax.random.key(5)
    batch = prior(key, 4, 16, 6)
    mean, var = prior.predictive(key, batch)
    expected = loss_fn(model, batch, borders, "regression", (mean, var))
    draws = mean + jnp.sqrt(var) * jax.random.normal(jax.random.key(6), (4000,) + mean.shape)
    is_ctx = jnp.arange(16) < 6
    sampled = jax.jit(jax.vmap(lambda yt: loss_fn(
        model, batch._replace(y=jnp.where(is_ctx, batch.y[..., 0], yt)[..., None]), borders,
        "regression")))(draws)
    se = float(jnp.std(sampled)) / np.sqrt(len(sampled))
    assert abs(float(expected) - float(jnp.mean(sampled))) < 4 * se + 1e-4
    # and it is not the loss of the one sampled y
    plain = loss_fn(model, batch, borders, "regression")
    assert abs(float(plain) - float(expected)) > 4 * se


def test_init_from_takes_the_source_weights_and_refuses_another_model(tiny_run, tmp_path):
    model, stats = initial_model(build_config("gp-rbf", init_from=str(tiny_run), **TINY))
    assert_same_params(run_params(tiny_run), [np.asarray(v) for v in jax.tree_util.tree_leaves(
        nnx.to_pure_dict(nnx.state(model, nnx.Param)))])
    np.testing.assert_array_equal(stats["borders"],
                                  Run(tiny_run).load_arrays("prior_stats")["borders"])
    with pytest.raises(ValueError, match="another model.*d_model"):
        train_tiny(tmp_path / "c", init_from=str(tiny_run), d_model=8)
    with pytest.raises(ValueError, match="'nope' is neither a model folder"):
        train_tiny(tmp_path / "c", init_from="nope")
    assert not (tmp_path / "c").exists()  # the refused sources left no run behind


@pytest.mark.slow
def test_init_from_and_expected_nll_training(tiny_run, tmp_path):
    train_tiny(tmp_path / "b", steps=2, init_from=str(tiny_run), seed=7, loss="expected-nll")
    np.testing.assert_array_equal(Run(tmp_path / "b").load_arrays("prior_stats")["borders"],
                                  Run(tiny_run).load_arrays("prior_stats")["borders"])
    rows = Run(tmp_path / "b").read_metrics()
    assert rows and all(np.isfinite(r["loss"]) for r in rows)


def test_data_options_are_checked(point_set_file, tmp_path):
    with pytest.raises(ValueError, match="20 points per task"):
        train(str(tmp_path / "r"), data=str(point_set_file), **{**TINY, "max_context": 18})
    with pytest.raises(ValueError, match="expected-nll"):
        train(str(tmp_path / "r"), data=str(point_set_file), loss="expected-nll", **TINY)
    with pytest.raises(ValueError, match="exactly one of --prior and --data"):
        train(str(tmp_path / "r"), "gp-rbf", data=str(point_set_file), **TINY)
    with pytest.raises(FileNotFoundError):
        train(str(tmp_path / "r"), data=str(tmp_path / "missing.nc"), **TINY)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_training_on_a_point_set_file(point_set_file, tmp_path):
    from pde_data.points import load_point_sets
    from pfn import from_pretrained

    out = tmp_path / "d"
    summary = train(str(out), data=str(point_set_file), steps=4, checkpoint_every=2,
                    quiet=True, **TINY)
    assert summary["step"] == 4
    cfg = Run(out).read_config()
    assert cfg["prior"] is None and cfg["num_features"] == 2 and cfg["task"] == "regression"
    assert cfg["data"] == str(point_set_file.absolute())
    data = load_point_sets(point_set_file)
    borders = Run(out).load_arrays("prior_stats")["borders"]
    assert len(borders) == TINY["n_buckets"] + 1
    assert borders[0] == pytest.approx(data.y.min()) and borders[-1] == pytest.approx(data.y.max())
    # the run predicts on a new task of the file's kind
    reg = from_pretrained(str(out)).fit(data.x[0, :10], data.y[0, :10, 0])
    assert np.all(np.isfinite(reg.predict_distribution(data.x[0, 10:]).logpdf(data.y[0, 10:, 0])))
    # a changed file is another run
    from pde_data.points import save_point_sets

    save_point_sets(data.x, data.y[..., 0] + 1.0, point_set_file, overwrite=True)
    with pytest.raises(RunError, match="data_fingerprint"):
        train(str(out), data=str(point_set_file), steps=4, checkpoint_every=2, **TINY)


@pytest.mark.slow
def test_classification_training_reduces_loss(tmp_path):
    train_tiny(tmp_path / "c", prior="tabular", steps=60,
               max_context=30, n_targets=10, batch_size=8, log_every=10)
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
    env = subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
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
    shutil.rmtree(tmp_path / "four")
