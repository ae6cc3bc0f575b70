"""Training: the loss falls on a tiny problem, runs resume exactly, export / from_pretrained
round-trip, the command line, and trained models beat a trivial baseline."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from neural_processes.batch import NPBatch
from neural_processes.models import build_model
from neural_processes.pretrained import available, from_pretrained, load_model, save_model
from neural_processes.train import make_config, train

TINY = {"width": 16, "enc_depth": 2, "dec_depth": 2, "heads": 2}


def test_loss_decreases_on_tiny_problem():
    """CNP on one fixed batch of sine tasks: 150 Adam steps cut the loss by a wide margin."""
    r = np.random.default_rng(0)
    x = r.uniform(-2, 2, (8, 20, 1)).astype(np.float32)
    y = np.sin(2 * x + r.uniform(0, 3, (8, 1, 1))).astype(np.float32)
    mc = np.zeros((8, 20), np.float32)
    mc[:, :10] = 1
    batch = NPBatch(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mc), jnp.asarray(1 - mc))
    model = build_model({"model": "cnp", **TINY})
    opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: m.loss(batch, jax.random.key(0))[0])(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(150)]
    assert losses[-1] < losses[0] - 0.5, (losses[0], losses[-1])


def test_resume_is_exact(tmp_path):
    """A run stopped after its first step and resumed ends with the same weights as an
    uninterrupted run (tasks come from fold_in(seed, step))."""
    cfg = make_config("cnp", "rbf", steps=6, batch_size=4, **TINY)
    train(tmp_path / "a", cfg, log_every=3, ckpt_every=3, progress=False)
    last = train(tmp_path / "b", cfg, log_every=3, ckpt_every=3, time_limit=0.0, progress=False)
    from pde_data.runs import Run

    assert Run(tmp_path / "b").latest_step() == 1
    train(tmp_path / "b", cfg, log_every=3, ckpt_every=3, progress=False)
    from neural_processes.train import load_run_model

    ma, _ = load_run_model(tmp_path / "a")
    mb, _ = load_run_model(tmp_path / "b")
    fa = jax.tree.leaves(nnx.state(ma, nnx.Param))
    fb = jax.tree.leaves(nnx.state(mb, nnx.Param))
    for u, v in zip(fa, fb):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    assert (tmp_path / "a" / "loss.png").exists()
    # a changed configuration on the same folder is refused, naming the key
    with pytest.raises(ValueError, match="steps"):
        train(tmp_path / "a", {**cfg, "steps": 7}, progress=False)
    del last


def test_export_round_trip_and_errors(tmp_path):
    model = build_model({"model": "mpanp", **TINY}, seed=3)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    a = model.predict(x, np.sin(x), x + 0.1, num_samples=3)
    b = again.predict(x, np.sin(x), x + 0.1, num_samples=3)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a neural_processes checkpoint"):
        load_model(tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; available:"):
        from_pretrained("nope")


def test_cli_errors_and_list(capsys):
    from neural_processes.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "--model", "gpt", "--data", "rbf", "--out", "x"])
    assert main(["list"]) == 0
    assert set(available()) <= set(capsys.readouterr().out.split())


def context_baseline_ll(batch) -> np.ndarray:
    """Trivial baseline: each task's targets ~ N(mean, std^2) of its own context values."""
    y, mc, mt = (np.asarray(a) for a in (batch.y[..., 0], batch.mask_context, batch.mask_target))
    n = mc.sum(1)
    m = (y * mc).sum(1) / n
    s = np.maximum(np.sqrt((((y - m[:, None]) ** 2) * mc).sum(1) / n), 0.1)
    lp = -0.5 * ((y - m[:, None]) / s[:, None]) ** 2 - np.log(s[:, None]) - 0.5 * np.log(2 * np.pi)
    return (lp * mt).sum(1) / mt.sum(1)


@pytest.mark.skipif("anp-rbf" not in available(), reason="no shipped anp-rbf checkpoint")
@pytest.mark.parametrize("name", ["anp-rbf", "mpanp-rbf"])
def test_shipped_models_beat_trivial_baseline(name):
    if name not in available():
        pytest.skip(f"{name} not shipped")
    from neural_processes.data import get_source
    from neural_processes.evaluate import evaluate_model

    model = from_pretrained(name)
    res = evaluate_model(model, "rbf", n_tasks=200, num_samples=10, progress=False)
    base = np.concatenate([context_baseline_ll(b) for b in get_source("rbf").test_batches(200)])
    assert res["target_ll"] > base.mean() + 0.1, (res["target_ll"], base.mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnp", "anp"])
def test_brief_training_beats_trivial_baseline(tmp_path, name):
    from neural_processes.data import get_source
    from neural_processes.evaluate import evaluate_run

    cfg = make_config(name, "rbf", steps=400, batch_size=16, lr=1e-3, width=32, enc_depth=3,
                      dec_depth=2, heads=4)
    train(tmp_path / "r", cfg, progress=False)
    res = evaluate_run(tmp_path / "r", n_tasks=300, num_samples=10, plot=False, progress=False)
    base = np.concatenate([context_baseline_ll(b) for b in get_source("rbf").test_batches(300)])
    assert res["target_ll"] > base.mean(), (res["target_ll"], base.mean())
    assert json.loads((tmp_path / "r" / "eval_rbf.json").read_text())["n_tasks"] == 300


@pytest.mark.slow
def test_sharded_step_matches_one_device(tmp_path):
    """The training step on 4 emulated devices (batch split over them) gives the 1-device loss."""
    import os
    import subprocess
    import sys

    cfg = make_config("cnp", "rbf", steps=3, batch_size=8, **TINY)
    one = train(tmp_path / "one", cfg, log_every=3, progress=False)
    code = ("import json, sys; from neural_processes.train import train; import jax; "
            "assert jax.device_count() == 4; "
            "print(json.dumps(train(sys.argv[1], json.loads(sys.argv[2]), log_every=3, "
            "progress=False)))")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "four"), json.dumps(cfg)],
                         env=env, capture_output=True, text=True, check=True)
    four = json.loads(out.stdout.strip().splitlines()[-1])
    assert four["loss"] == pytest.approx(one["loss"], rel=1e-4)
