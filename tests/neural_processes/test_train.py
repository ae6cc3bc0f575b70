"""Training on the engine: the loss falls on a tiny problem, a stopped run resumes exactly and a
finished one extends, old run folders get a clear error, training on a point-set file, and
trained models beat a trivial baseline."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from neural_processes.checkpoint import available, from_pretrained, load_run
from neural_processes.models import build_model
from neural_processes.train import make_config, train
from pde_data.points import PointSets
from pde_data.runs import Run, RunError

from .conftest import TINY, TINY_TRAIN, run_cli, write_point_sets


def test_loss_decreases_on_tiny_problem():
    """CNP on one fixed batch of sine tasks: 150 Adam steps cut the loss by a wide margin."""
    r = np.random.default_rng(0)
    x = r.uniform(-2, 2, (8, 20, 1)).astype(np.float32)
    y = np.sin(2 * x + r.uniform(0, 3, (8, 1, 1))).astype(np.float32)
    batch = PointSets.prefix(jnp.asarray(x), jnp.asarray(y), 10)
    model = build_model({"model": "cnp", **TINY})
    opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: m.loss(batch, jax.random.key(0))[0])(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(150)]
    assert losses[-1] < losses[0] - 0.5, (losses[0], losses[-1])


def params(model):
    return jax.tree.leaves(nnx.state(model, nnx.Param))


@pytest.mark.slow
def test_stopped_run_resumes_exactly_and_a_finished_one_extends(tiny_run_master, tmp_path,
                                                                 capsys):
    """The engine's contract, once for this package: a run stopped after its first step
    (``--time-limit 0.001``: the first step compiles for longer) and resumed by the same
    command ends with the parameters of the uninterrupted session run (bit for bit); the same
    command with a larger ``--steps`` continues it."""
    out = tmp_path / "b"
    code, stdout, _ = run_cli(capsys, "train", "--out", out, *TINY_TRAIN, "--time-limit", "0.001")
    assert code == 0 and json.loads(stdout)["stopped"] and Run(out).latest_step() == 1
    code, stdout, _ = run_cli(capsys, "train", "--out", out, *TINY_TRAIN)
    assert code == 0 and json.loads(stdout)["resumed_from"] == 1
    for u, v in zip(params(load_run(tiny_run_master)), params(load_run(out))):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert [r["step"] for r in Run(out).read_metrics()] == [3, 6]
    assert (out / "loss.png").exists()
    more = [a if a != "6" else "8" for a in TINY_TRAIN]  # --steps 8
    code, stdout, _ = run_cli(capsys, "train", "--out", out, *more)
    assert code == 0 and json.loads(stdout)["step"] == 8
    assert Run(out).read_config()["steps"] == 8 and Run(out).latest_step() == 8


def test_changed_config_and_old_layout_are_refused(tiny_run, tmp_path):
    """A changed configuration on a run folder is refused naming the key, before any step; a
    run folder of the pre-engine layout gets an error naming the layout change."""
    cfg = Run(tiny_run).read_config()
    with pytest.raises(RunError, match="lr: 0.0005 -> 0.001"):
        train(tiny_run, {**cfg, "lr": 1e-3}, progress=False)
    with pytest.raises(RunError, match="budget can grow on resume, not shrink"):
        train(tiny_run, {**cfg, "steps": 5}, progress=False)
    old = tmp_path / "old"
    run = Run(old)
    run.write_config({k: v for k, v in cfg.items() if k != "version"})
    run.save(3, {"model": {"w": np.zeros(2, np.float32)}, "opt": {"c": np.zeros(1, np.float32)}})
    run.close()
    with pytest.raises(RunError, match="older neural_processes.*'model' / 'opt'"):
        train(old, cfg, progress=False)
    with pytest.raises(RunError, match="older neural_processes"):
        load_run(old)
    # an engine-era config over a checkpoint of the old items: the engine names the layout
    Run(old).write_config(cfg)
    with pytest.raises(RunError, match="older checkpoint layout"):
        load_run(old)


def test_make_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        make_config("gpt", "rbf")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        make_config("cnp", "rbf", steps=0)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        make_config("cnp", "mnist")
    with pytest.raises(ValueError, match="apply to a point-set file"):
        make_config("cnp", "rbf", data_options={"n_points": 5})
    path = write_point_sets(tmp_path / "p.nc", n_points=12)
    with pytest.raises(ValueError, match="max_context < n_points = 12"):
        make_config("cnp", str(path), data_options={"max_context": 12})
    cfg = make_config("cnp", str(path), data_options={"n_points": 10}, **TINY)
    assert cfg["data"] == str(path.absolute())
    assert cfg["data_options"] == {"n_points": 10, "min_context": 3, "max_context": 7,
                                   "n_tasks": 6, "file_points": 12}


@pytest.mark.slow
def test_train_on_a_point_set_file(tmp_path, capsys):
    """``train --data FILE``: a model of the file's dimensions trains on its tasks; evaluate
    defaults to the file with the run's options; a changed file is noticed on resume."""
    path = write_point_sets(tmp_path / "tasks.nc", n_tasks=5, n_points=14, x_dim=2, y_3d=True)
    out = tmp_path / "run"
    argv = ["train", "--model", "cnp", "--data", path, "--out", out, "--steps", "2",
            "--batch-size", "3", "--n-points", "10", "--max-context", "6", "--no-progress",
            "--width", "8", "--enc-depth", "1", "--dec-depth", "1"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert json.loads(stdout)["step"] == 2
    config = Run(out).read_config()
    assert config["model"]["x_dim"] == 2 and config["data_options"]["n_points"] == 10
    code, stdout, err = run_cli(capsys, "evaluate", "--run", out, "--n-tasks", "7", "--json",
                                "--no-progress")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["n_tasks"] == 7 and np.isfinite(res["target_ll"])
    assert (out / "eval_tasks.json").exists() and (out / "eval_tasks.png").exists()
    write_point_sets(path, n_tasks=4, n_points=14, x_dim=2, y_3d=True)  # the file changed
    code, _, err = run_cli(capsys, *[a if a != "2" else "3" for a in argv])
    assert code == 2 and "tasks.nc has changed since the run" in err


def context_baseline_ll(batch) -> np.ndarray:
    """Trivial baseline: each task's targets ~ N(mean, std^2) of its own context values."""
    y, mc, mt = (np.asarray(a) for a in (batch.y[..., 0], batch.mask_context, batch.mask_target))
    n = mc.sum(1)
    m = (y * mc).sum(1) / n
    s = np.maximum(np.sqrt((((y - m[:, None]) ** 2) * mc).sum(1) / n), 0.1)
    lp = -0.5 * ((y - m[:, None]) / s[:, None]) ** 2 - np.log(s[:, None]) - 0.5 * np.log(2 * np.pi)
    return (lp * mt).sum(1) / mt.sum(1)


@pytest.mark.parametrize("name", ["anp-rbf", pytest.param("mpanp-rbf", marks=pytest.mark.slow)])
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


SHARDED = """
import json, logging, sys
import jax
jax.config.update("jax_log_compiles", True)
compiles = []
class Count(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if "Finished XLA compilation of jit(step)" in msg:
            compiles.append(msg)
logging.getLogger("jax").addHandler(Count())
logging.getLogger("jax").setLevel(logging.DEBUG)
from neural_processes.train import train
assert jax.device_count() == 2
last = train(sys.argv[1], json.loads(sys.argv[2]), log_every=3, progress=False)
print(json.dumps({"loss": last["loss"], "compiles": len(compiles)}))
"""


@pytest.mark.slow
def test_two_devices_match_one_and_compile_the_step_once(tmp_path):
    """The engine's step on 2 emulated devices (batch split over them, parameters replicated
    before the first step) gives the 1-device loss and is compiled once."""
    import os
    import subprocess
    import sys

    cfg = make_config("cnp", "rbf", steps=4, batch_size=8, **TINY)
    one = train(tmp_path / "one", cfg, log_every=3, progress=False)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", SHARDED, str(tmp_path / "two"), json.dumps(cfg)],
                         env=env, capture_output=True, text=True, check=True)
    two = json.loads(out.stdout.strip().splitlines()[-1])
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert two["compiles"] == 1, out.stderr[-3000:]


def test_bad_numbers_and_a_replaced_data_file_are_refused(tmp_path):
    """lr must be finite, the seed non-negative; a run whose point-set file was replaced by
    other data of the same shape is not resumed on it (#16)."""
    for kw, name in (({"lr": float("inf")}, "lr"), ({"lr": float("nan")}, "lr"),
                     ({"seed": -1}, "seed"), ({"steps": 2.5}, "steps")):
        with pytest.raises(ValueError, match=name):
            make_config("cnp", "rbf", **kw)
    path = write_point_sets(tmp_path / "p.nc", seed=0)
    started = make_config("cnp", str(path), **TINY)
    assert started["data_fingerprint"].startswith("sha256:")
    stopped = Run(tmp_path / "stopped")
    stopped.write_config(started)  # an attempt that stopped before any result
    Run(tmp_path / "run").write_config(started)  # a run that started on the first file ...
    Run(tmp_path / "run").log(step=1, loss=0.5)  # ... and logged a row
    write_point_sets(path, seed=1)  # same shape, other values
    # nothing came from the old file yet: the repaired (new) file starts the run
    stopped.check_data_unchanged(make_config("cnp", str(path), **TINY))
    assert stopped.read_config()["data_fingerprint"] != started["data_fingerprint"]
    with pytest.raises(RunError, match="p.nc has changed since the run"):
        train(tmp_path / "run", make_config("cnp", str(path), **TINY), progress=False)
    write_point_sets(path, seed=0)  # the same content again: the fingerprint agrees
    assert make_config("cnp", str(path), **TINY)["data_fingerprint"] == \
        started["data_fingerprint"]
