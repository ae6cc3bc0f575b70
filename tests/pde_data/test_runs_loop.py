"""The one training loop (pde_data.runs.loop): exact resume, cadence, best model, stop rules."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from pde_data.runs import Run, RunError
from pde_data.runs.loop import Loop, fit, restore_params

W_TRUE = np.array([[1.5], [-2.0], [0.5]], np.float32)


def batches(seed=0, batch=8):
    """Batches of a noisy linear map, a pure function of (seed, step)."""

    def stream(start):
        step = start
        while True:
            rng = np.random.default_rng([seed, step])
            x = rng.normal(size=(batch, 3)).astype(np.float32)
            y = x @ W_TRUE + 0.1 * rng.normal(size=(batch, 1)).astype(np.float32)
            yield x, y
            step += 1

    return stream


def loss(model, batch, key):
    x, y = batch
    # a stochastic term: the key must be the same on resume for the runs to agree
    noise = 1e-3 * jax.random.normal(key, y.shape)
    err = jnp.mean((model(x) - y - noise) ** 2)
    return err, {"mse": err}


def new_model():
    return nnx.Linear(3, 1, rngs=nnx.Rngs(0))


def params_of(model):
    return jax.tree_util.tree_leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def train(path, **loop_kw):
    kw = {"total_steps": 20, "checkpoint_every": 5, "log_every": 4, "progress": False}
    kw.update(loop_kw)
    run = Run(path)
    tx = optax.adam(optax.cosine_decay_schedule(0.3, 20))
    model, result = fit(run, new_model(), tx, loss, batches(), Loop(**kw),
                        lr=optax.cosine_decay_schedule(0.3, 20))
    run.close()
    return model, result


def test_interrupted_run_resumes_bit_exactly(tmp_path):
    whole, _r_whole = train(tmp_path / "whole")
    _part, r_part = train(tmp_path / "part", stop_at=7)  # stops between two checkpoints
    assert r_part.stopped and r_part.step == 7
    resumed, r_res = train(tmp_path / "part")
    assert r_res.resumed_from == 7 and r_res.step == 20 and not r_res.stopped
    for a, b in zip(params_of(whole), params_of(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows_whole = Run(tmp_path / "whole").read_metrics()
    rows_part = Run(tmp_path / "part").read_metrics()
    # one row per log point, and the row spanning the interruption averages all its steps
    assert [r["step"] for r in rows_part] == [r["step"] for r in rows_whole] == [4, 8, 12, 16, 20]
    for a, b in zip(rows_whole, rows_part):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["lr"] == b["lr"]
    # the steps do descend
    assert rows_whole[-1]["loss"] < 0.5 * rows_whole[0]["loss"]


def test_budget_can_grow_not_shrink(tmp_path):
    run = Run(tmp_path)
    run.ensure_config({"steps": 10, "lr": 1e-3}, extendable=("steps",))
    assert Run(tmp_path).ensure_config({"steps": 30, "lr": 1e-3}, extendable=("steps",))
    assert Run(tmp_path).read_config()["steps"] == 30
    with pytest.raises(RunError, match="grow"):
        Run(tmp_path).ensure_config({"steps": 5, "lr": 1e-3}, extendable=("steps",))
    with pytest.raises(RunError, match="lr"):
        Run(tmp_path).ensure_config({"steps": 30, "lr": 1.0}, extendable=("steps",))


def test_finished_run_extends_with_a_larger_budget(tmp_path):
    _, r1 = train(tmp_path, total_steps=10)
    _, r2 = train(tmp_path, total_steps=15)
    assert (r1.step, r2.resumed_from, r2.step) == (10, 10, 15)
    with pytest.raises(RunError, match="past"):
        train(tmp_path, total_steps=12)


def test_validation_keeps_the_best_parameters(tmp_path):
    run = Run(tmp_path)
    seen = []

    def validate(model):
        # a made-up metric with its minimum at the second validation
        value = [3.0, 1.0, 2.0, 4.0][len(seen)]
        seen.append(np.asarray(model.kernel[...]).copy())
        return {"score": value}

    loop = Loop(total_steps=8, checkpoint_every=2, log_every=100, eval_every=2,
                best_metric="val_score", progress=False)
    model, result = fit(run, new_model(), optax.sgd(0.1), loss, batches(), loop,
                        validate=validate)
    assert (result.best, result.best_step) == (1.0, 4)
    best = restore_params(run, new_model(), which="best")
    np.testing.assert_array_equal(np.asarray(best.kernel[...]), seen[1])
    latest = restore_params(run, new_model(), which="latest")
    np.testing.assert_array_equal(np.asarray(latest.kernel[...]), np.asarray(model.kernel[...]))
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 8] and rows[1]["val_score"] == 1.0


def test_non_finite_parameters_are_never_checkpointed(tmp_path):
    def bad_loss(model, batch, key):
        x, _y = batch
        return jnp.mean(model(x) * jnp.inf), {}

    run = Run(tmp_path)
    with pytest.raises(FloatingPointError, match="not finite at step 5"):
        fit(run, new_model(), optax.sgd(0.1), bad_loss, batches(),
            Loop(total_steps=10, checkpoint_every=5, progress=False))
    assert run.latest_step() is None


def test_time_limit_stops_after_a_checkpoint(tmp_path):
    run = Run(tmp_path)
    _, result = fit(run, new_model(), optax.sgd(0.1), loss, batches(),
                    Loop(total_steps=10_000, checkpoint_every=1000, time_limit=1e-9,
                         progress=False))
    assert result.stopped and result.step == 1 and run.latest_step() == 1


@pytest.mark.parametrize("name,value", [("total_steps", 0), ("log_every", -1),
                                        ("checkpoint_every", 0), ("stop_at", 1.5)])
def test_loop_rejects_bad_cadence(name, value):
    kw = {"total_steps": 10, name: value}
    with pytest.raises(ValueError, match=name.replace("_", "-")):
        Loop(**kw)


def test_metrics_rows_are_plain_json(tmp_path):
    train(tmp_path, total_steps=4)
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert {"step", "loss", "mse", "grad_norm", "lr", "seconds"} <= set(row)


def test_a_non_finite_loss_stops_the_run_even_with_finite_parameters(tmp_path):
    def nan_loss(model, batch, key):  # finite gradients (the NaN term is a constant)
        value, aux = loss(model, batch, key)
        return value + jax.lax.stop_gradient(jnp.nan), aux

    run = Run(tmp_path)
    with pytest.raises(FloatingPointError, match="training loss is nan .* no checkpoint"):
        fit(run, new_model(), optax.sgd(0.1), nan_loss, batches(),
            Loop(total_steps=10, checkpoint_every=5, log_every=2, progress=False))
    assert run.latest_step() is None


def test_rows_logged_after_the_checkpoint_are_not_repeated_on_resume(tmp_path):
    run = Run(tmp_path)
    opts = {"checkpoint_every": 4, "log_every": 2, "progress": False}
    fit(run, new_model(), optax.sgd(0.1), loss, batches(), Loop(total_steps=4, **opts))
    run.log(step=6, loss=123.0)  # a row of a run killed between step 6 and its checkpoint
    run.log(event="note", step=6)  # events are kept
    fit(run, new_model(), optax.sgd(0.1), loss, batches(), Loop(total_steps=8, **opts))
    rows = run.read_metrics()
    train = [r["step"] for r in rows if "event" not in r]
    assert train == [2, 4, 6, 8] and all(r.get("loss") != 123.0 for r in rows)
    assert any(r.get("event") == "note" for r in rows)
