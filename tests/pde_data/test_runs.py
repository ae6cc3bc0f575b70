"""Run folders: atomic config, resume checks, metrics log, orbax checkpoints of NNX state."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from pde_data.runs import Run, RunError, atomic_write_bytes


def test_ensure_config_writes_then_checks(tmp_path):
    run = Run(tmp_path / "run")
    assert run.ensure_config({"model": "fno", "modes": (12, 12)}) is False
    # Same configuration (tuple vs list is the same JSON) resumes.
    assert Run(tmp_path / "run").ensure_config({"model": "fno", "modes": [12, 12]}) is True
    with pytest.raises(RunError, match="modes"):
        Run(tmp_path / "run").ensure_config({"model": "fno", "modes": [8, 8]})


def test_corrupt_or_missing_config_is_named(tmp_path):
    with pytest.raises(RunError, match="no config.json"):
        Run(tmp_path / "empty").read_config()
    run = Run(tmp_path / "bad")
    run.config_path.write_text("{not json")
    with pytest.raises(RunError, match="corrupt"):
        run.read_config()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    atomic_write_bytes(path, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left


def test_metrics_log_survives_torn_line(tmp_path):
    run = Run(tmp_path)
    run.log(step=1, loss=np.float32(0.5))
    run.log(step=2, loss=jnp.asarray(0.25))
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # killed mid-write
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["loss"] == pytest.approx(0.25)


def test_arrays_round_trip_without_pickle(tmp_path):
    run = Run(tmp_path)
    run.save_arrays("normalizer", {"mean": np.arange(6.0).reshape(2, 3), "std": np.ones(3)})
    back = run.load_arrays("normalizer")
    np.testing.assert_array_equal(back["mean"], np.arange(6.0).reshape(2, 3))
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(RunError, match="corrupt"):
        run.load_arrays("broken")


def test_checkpoint_round_trip_of_nnx_model_and_optimizer(tmp_path):
    model = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    grads = jax.tree_util.tree_map(jnp.ones_like, nnx.state(model, nnx.Param))
    opt.update(model, grads)  # non-trivial optimiser moments
    run = Run(tmp_path, keep=2)
    for step in (1, 2, 3):
        run.save(step, {"model": nnx.state(model), "opt": nnx.state(opt)}, {"epoch": step})
    assert run.latest_step() == 3
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2, 3]  # keeps the last two

    other = nnx.Linear(3, 4, rngs=nnx.Rngs(1))
    other_opt = nnx.Optimizer(other, optax.adam(1e-2), wrt=nnx.Param)
    target = {"model": nnx.state(other), "opt": nnx.state(other_opt)}
    state, extra = Run(tmp_path).restore(target)
    nnx.update(other, state["model"])
    nnx.update(other_opt, state["opt"])
    assert extra == {"epoch": 3}
    np.testing.assert_array_equal(other.kernel[...], model.kernel[...])
    mu = jax.tree_util.tree_leaves(nnx.state(opt))
    mu_back = jax.tree_util.tree_leaves(nnx.state(other_opt))
    for a, b in zip(mu, mu_back):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_restore_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(RunError, match="no checkpoint"):
        Run(tmp_path).restore({"x": jnp.zeros(2)})


def test_config_is_plain_json(tmp_path):
    run = Run(tmp_path)
    run.write_config({"lr": np.float64(1e-3), "shape": np.array([2, 3])})
    assert json.loads(run.config_path.read_text()) == {"lr": 1e-3, "shape": [2, 3]}


def test_open_reads_an_existing_run_and_creates_nothing(tmp_path):
    """Readers (evaluate, predict, export) open a run with Run.open: a missing folder or one
    without config.json is a RunError, and no empty folder is left behind (#16)."""
    missing = tmp_path / "no_such_run"
    with pytest.raises(RunError, match="does not exist"):
        Run.open(missing)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="has no config.json"):
        Run.open(tmp_path / "empty")
    Run(tmp_path / "real").write_config({"a": 1})
    assert Run.open(tmp_path / "real").read_config() == {"a": 1}
