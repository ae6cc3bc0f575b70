"""Training on the engine: run folder contents, resume, extension, data parallelism, defaults."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import pde_data
from pde_data.runs import Run, RunError
from tests.operators.conftest import (
    MODEL,
    ROOT,
    assert_same_params,
    cli_hparams,
    subprocess_env,
    train_small,
)


def _epoch_rows(run) -> list[dict]:
    return [r for r in Run(run).read_metrics() if "loss" in r]


@pytest.fixture(scope="module")
def whole(darcy, tmp_path_factory):
    """Two uninterrupted epochs (9 steps each) at a constant learning rate."""
    out = tmp_path_factory.mktemp("whole") / "run"
    train_small(darcy / "train.nc", out, epochs=2, schedule="constant", checkpoint_every=3)
    return out


def test_train_writes_run_and_evaluates_tests(darcy, tmp_path):
    from operators.evaluate import evaluate
    from operators.run import load_run
    from operators.step import forward

    out = tmp_path / "run"
    res = train_small(darcy / "train.nc", out, epochs=2, tests=[darcy / "test31.nc"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == MODEL and cfg["in_channels"] == 1 and cfg["out_channels"] == 1
    assert cfg["input_positive"] == [True]  # the Darcy coefficient is 3 or 12
    assert cfg["output_layout"]["u"]["dims"] == ["x", "y"]
    rows = _epoch_rows(out)
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [9, 18]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_rel_l2"]) for r in rows)
    assert {"grad_norm", "lr", "seconds", "steps_per_s"} <= set(rows[0])
    test = res["tests"][str(darcy / "test31.nc")]
    assert test["resolution"] == [31, 31] and test["n"] == 8
    assert res["step"] == 18 and not res["stopped"] and res["best_epoch"] in (1, 2)
    assert json.loads((out / "results.json").read_text())["tests"][str(darcy / "test31.nc")] == test
    assert (out / "predictions_test31.png").stat().st_size > 10_000
    assert (out / "best" / "checkpoints").is_dir() and (out / "normalisers_y.npz").exists()

    # the metric against an independent numpy computation from load_run's model
    loaded = load_run(out)
    ds = pde_data.load(darcy / "test31.nc")
    a = ds["a"].values[..., None].astype(np.float32)
    u = ds["u"].values[..., None].astype(np.float32)
    pred = np.asarray(forward(loaded.model, a, loaded.normalisers, loaded.config["coords"],
                              loaded.config["periodic"]))
    w = np.ones(31)
    w[[0, -1]] = 0.5  # trapezoid rule on the node grid
    w2 = np.outer(w, w)[None, :, :, None]
    rel = np.sqrt(((pred - u) ** 2 * w2).sum((1, 2, 3)) / (u**2 * w2).sum((1, 2, 3)))
    again = evaluate(out, darcy / "test31.nc", batch_size=3)  # uneven last batch: every sample once
    assert again["rel_l2"] == pytest.approx(rel.mean(), rel=1e-4)
    assert test["rel_l2"] == pytest.approx(rel.mean(), rel=1e-4)
    assert 0 < again["rel_h1"] and np.isfinite(again["rel_h1"])


def test_stop_and_resume_gives_identical_parameters(darcy, whole, tmp_path):
    """Stopped mid-epoch (``max_steps``) and resumed == uninterrupted, bit for bit (the engine
    tests exact resume in depth; this checks operators' batch stream and loss keep it)."""
    kw = {"epochs": 2, "schedule": "constant", "checkpoint_every": 3}
    first = train_small(darcy / "train.nc", tmp_path / "stopped", max_steps=5, **kw)
    assert first["step"] == 5 and first["stopped"] and not first["tests"]
    assert train_small(darcy / "train.nc", tmp_path / "stopped", max_steps=5, **kw)["step"] == 5
    assert train_small(darcy / "train.nc", tmp_path / "stopped", **kw)["step"] == 18
    assert_same_params(tmp_path / "stopped", whole)
    assert [r["step"] for r in _epoch_rows(tmp_path / "stopped")] == [9, 18]


def test_finished_run_extends_with_larger_epochs(darcy, whole, tmp_path):
    """The same command with a larger --epochs continues a finished run (here to the
    parameters of a run trained that long at once); a smaller one is refused."""
    kw = {"schedule": "constant", "checkpoint_every": 3}
    one = train_small(darcy / "train.nc", tmp_path / "ext", epochs=1, **kw)
    assert one["step"] == 9 and not one["stopped"]
    two = train_small(darcy / "train.nc", tmp_path / "ext", epochs=2, **kw)
    assert two["step"] == 18
    assert json.loads((tmp_path / "ext" / "config.json").read_text())["epochs"] == 2
    assert_same_params(tmp_path / "ext", whole)
    assert [r["epoch"] for r in _epoch_rows(tmp_path / "ext")] == [1, 2]
    with pytest.raises(RunError, match="grow"):
        train_small(darcy / "train.nc", tmp_path / "ext", epochs=1, **kw)


def test_changed_configuration_is_refused(darcy, whole):
    with pytest.raises(RunError, match="lr"):
        train_small(darcy / "train.nc", whole, epochs=2, schedule="constant", checkpoint_every=3,
                    lr=1e-2)


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_reference_recipe_trains_resumes_exactly_and_steps_lr_per_epoch(darcy, tmp_path):
    """``recipe="mgno-reference"`` (coupled-L2 Adam, one-cycle stepped once per epoch with beta1
    cycling: injected hyper-parameters in the optimiser state) is recorded in the run, logs the
    epoch's learning rate, and a run stopped mid-epoch resumes to the uninterrupted parameters."""
    from operators.config import RECIPES, onecycle

    kw = {"epochs": 2, "recipe": "mgno-reference", "loss": "l2", "checkpoint_every": 3}
    whole = train_small(darcy / "train.nc", tmp_path / "whole", **kw)
    assert whole["step"] == 18 and not whole["stopped"]
    cfg = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert cfg["recipe"] == "mgno-reference" and cfg["batch_size"] == 4  # explicit wins
    assert {k: cfg[k] for k in ("optimizer", "schedule", "schedule_every", "cycle_momentum")} == {
        k: RECIPES["mgno-reference"][k] for k in ("optimizer", "schedule", "schedule_every", "cycle_momentum")}
    lrs = [r["lr"] for r in _epoch_rows(tmp_path / "whole")]
    assert lrs == pytest.approx([float(onecycle(5e-4, 2)(e)) for e in range(2)], rel=1e-6)
    assert train_small(darcy / "train.nc", tmp_path / "part", max_steps=7, **kw)["stopped"]
    assert train_small(darcy / "train.nc", tmp_path / "part", **kw)["step"] == 18
    assert_same_params(tmp_path / "part", tmp_path / "whole")


def test_run_of_an_older_version_is_refused_with_the_reason(darcy, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"version": 1, "model": MODEL}))
    with pytest.raises(RunError, match="version 1"):
        train_small(darcy / "train.nc", old, epochs=1)


@pytest.mark.slow
def test_resume_after_kill_gives_identical_parameters(darcy, tmp_path):
    """A CLI run killed from outside (SIGKILL once its first checkpoint is written) and re-run
    with the same command ends with exactly the parameters of an uninterrupted run."""
    args = ["--data", str(darcy / "train.nc"), "--model", MODEL, "--epochs", "12", "--batch-size",
            "4", "--checkpoint-every", "3", "--schedule", "constant", "--no-progress", *cli_hparams()]
    cmd = [sys.executable, "-m", "operators", "train", *args]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=subprocess_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (killed / "checkpoints" / "3").is_dir():
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        proc.kill()  # SIGKILL: no cleanup, no final checkpoint
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    step = Run(killed).latest_step()
    assert step is not None and step < 108
    for out in (killed, tmp_path / "whole"):
        done = subprocess.run([*cmd, "--out", str(out)], env=subprocess_env(), cwd=ROOT,
                              check=False, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 108
    assert_same_params(killed, tmp_path / "whole")


MULTI = """
import json, sys
sys.path.insert(0, {root!r})
import jax
from tests.operators.conftest import train_small
assert jax.local_device_count() == {n}, jax.local_devices()
res = train_small({data!r}, {out!r}, epochs=2, n_val=4, batch_size=8)
rows = [json.loads(l) for l in open({out!r} + "/metrics.jsonl") if '"loss"' in l]
print(json.dumps([[r["loss"], r["val_rel_l2"]] for r in rows]))
"""


@pytest.mark.slow
def test_four_devices_give_the_loss_of_one(darcy, tmp_path):
    out = {}
    for n in (1, 4):
        code = MULTI.format(root=str(ROOT), n=n, data=str(darcy / "train.nc"), out=str(tmp_path / f"d{n}"))
        env = subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={n}") if n > 1 else subprocess_env()
        proc = subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True,
                              timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[n] = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(out[4], out[1], rtol=2e-5)
    cfg = json.loads((tmp_path / "d4" / "config.json").read_text())
    assert cfg["batch_size"] == 8


def test_defaults_follow_the_papers():
    from operators.config import learning_rate, make_schedule, train_defaults

    mg = train_defaults("mgno")
    assert (mg["lr"], mg["weight_decay"], mg["batch_size"], mg["loss"], mg["schedule"]) == (5e-4, 1e-4, 8, "h1", "onecycle")
    fno = train_defaults("fno")
    assert (fno["lr"], fno["batch_size"], fno["loss"], fno["schedule"]) == (1e-3, 20, "l2", "step")
    one = make_schedule("onecycle", 5e-4, 1000)
    assert float(one(0)) == pytest.approx(2.5e-4)       # start at peak / 2
    assert float(one(199)) == pytest.approx(5e-4)       # peak after 20 % warm-up
    assert float(one(999)) == pytest.approx(2.5e-6)     # end at peak / 200
    step = make_schedule("step", 1e-3, 500 * 10)
    assert float(step(999)) == pytest.approx(1e-3) and float(step(1000)) == pytest.approx(5e-4)
    cfg = {"schedule": "step", "lr": 1e-3, "epochs": 500, "steps_per_epoch": 10}
    assert learning_rate(cfg, 1000) == pytest.approx(5e-4)


def test_bad_arguments_are_named(darcy, tmp_path):
    from operators.train import train

    with pytest.raises(ValueError, match="unknown model"):
        train(darcy / "train.nc", "no-such-model", tmp_path / "r1", epochs=1)
    with pytest.raises(ValueError, match="unknown loss"):
        train_small(darcy / "train.nc", tmp_path / "r2", epochs=1, loss="l3")
    with pytest.raises(ValueError, match="hyper-parameter"):
        train(darcy / "train.nc", MODEL, tmp_path / "r3", hparams={"not_a_knob": 3}, epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        train_small(darcy / "train.nc", tmp_path / "r4", epochs=1, batch_size=100)
    for kw, name in (({"epochs": 0}, "epochs"), ({"lr": float("nan")}, "lr"),
                     ({"batch_size": -2}, "batch_size"), ({"max_steps": 0}, "max_steps"),
                     ({"lr": float("inf")}, "lr"), ({"epochs": 1.5}, "epochs")):
        with pytest.raises(ValueError, match=name):
            train_small(darcy / "train.nc", tmp_path / "r5", **{"epochs": 1, **kw})
    assert not (tmp_path / "r5").exists()  # refused before anything is written


def _periodic_dataset(n=6, s=32):
    """A dataset on a periodic grid (attribute ``periodic``), PDE unknown to the registry."""
    import xarray as xr

    rng = np.random.default_rng(0)
    x = np.arange(s) / s
    a = rng.normal(size=(n, s, s)).astype(np.float32)
    return xr.Dataset({"a": (("sample", "x", "y"), a), "u": (("sample", "x", "y"), 2 * a)},
                      coords={"x": x, "y": x}, attrs={"pde": "toy", "periodic": 1,
                                                      "input_vars": "a", "output_vars": "u"})


def test_hparams_follow_the_training_grid(darcy):
    """Padding from the data's periodicity; ``grid_size`` (mgno) and ``base_resolution``
    (mgno-conv) from the training grid unless given."""
    from operators.config import base_resolution_for, data_periodic, model_hparams
    from operators.fields import open_data

    node = open_data(darcy / "train.nc")  # 16 x 16 node grid (15 cells)
    assert data_periodic(node) is False
    hp = model_hparams("mgno", node, {})
    assert hp["grid_size"] == 16 and hp["padding"] == "zeros"
    assert model_hparams("mgno", node, {"grid_size": 211})["grid_size"] == 211
    hp = model_hparams("mgno-conv", node, {"smoothing": [[1, 0], [2, 0]]})
    assert hp["base_resolution"] == 16  # 15 cells -> nearest multiple of 2
    assert model_hparams("mgno-conv", node, {"base_resolution": 32})["base_resolution"] == 32
    assert "grid_size" not in model_hparams("fno", node, {})

    per = open_data(_periodic_dataset())
    assert data_periodic(per) is True
    assert model_hparams("mgno", per, {})["padding"] == "wrap"
    assert model_hparams("fno", per, {})["padding"] == "wrap"
    assert model_hparams("mgno-conv", per, {})["base_resolution"] == 32  # 32 cells, 5 levels
    assert base_resolution_for([421, 421], False, 5) == 416  # 420 cells -> multiple of 16
    assert base_resolution_for([64, 64], False, 5) == 64     # 63 cells
    assert base_resolution_for([8, 8], True, 5) == 16        # at least 2^(levels-1)


def test_h1_loss_follows_the_periodicity():
    """Node grids: finite-difference H1 (the FFT would see the jump between the ends); periodic
    grids: the reference spectral HsLoss."""
    from operators import losses
    from operators.step import loss_value

    x = np.linspace(0, 1, 33)
    X, Y = np.meshgrid(x, x, indexing="ij")
    true = (X * Y + np.sin(np.pi * X))[None, ..., None].astype(np.float32)
    pred = true + 0.01 * np.cos(3 * X)[None, ..., None].astype(np.float32)
    fd = float(loss_value("h1", pred, true, False))
    spec = float(loss_value("h1", pred, true, True))
    assert spec == pytest.approx(float(losses.mgno_rel_h1(pred, true)), rel=1e-6)
    # independent: trapezoid quadrature, np.gradient (second order, one-sided at the ends)
    w = np.full(33, 1 / 32)
    w[[0, -1]] /= 2
    w2 = np.outer(w, w)

    def norm(u):
        gx, gy = np.gradient(u, x, x, edge_order=2)
        return np.sum(w2 * (u**2 + (gx**2 + gy**2) / (2 * np.pi) ** 2))
    want = np.sqrt(norm((pred - true)[0, ..., 0].astype(np.float64)) / norm(true[0, ..., 0].astype(np.float64)))
    assert fd == pytest.approx(want, rel=1e-3)
    assert abs(fd - spec) > 0.1 * fd  # the spectral loss is wrong on this non-periodic field


@pytest.mark.slow
def test_mgno_conv_run_stores_grid_and_periodicity(darcy, tmp_path):
    """A run of mgno-conv keeps base_resolution, the periodicity and the H1 loss kind in its
    config, and evaluate rebuilds the same model from it."""
    from operators.evaluate import evaluate
    from operators.train import train

    hp = {"width": 4, "n_layers": 1, "smoothing": [[1, 0], [2, 0]]}
    out = tmp_path / "conv"
    train(darcy / "train.nc", "mgno-conv", out, hparams=hp, epochs=1, batch_size=8, max_steps=2,
          progress=False)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hparams"]["base_resolution"] == 16 and cfg["hparams"]["padding"] == "zeros"
    assert cfg["periodic"] is False and cfg["h1_loss"] == "fd"
    m = evaluate(out, darcy / "test31.nc", which="latest")
    assert m["resolution"] == [31, 31] and np.isfinite(m["rel_l2"]) and np.isfinite(m["rel_h1"])


def test_mgno_conv_runs_from_before_the_prolongation_option_keep_their_operator():
    """A stored mgno-conv config without ``prolongation`` (trained with the transposed
    convolution into the input grid) rebuilds that operator, not today's default."""
    import operators
    from operators.run import model_from_config

    hp = {"width": 2, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "base_resolution": 16}
    cfg = {"model": "mgno-conv", "model_in_channels": 1, "out_channels": 1, "dim": 2, "seed": 0}
    old = model_from_config({**cfg, "hparams": hp})
    new = model_from_config({**cfg, "hparams": {**hp, "prolongation": "resize"}})
    assert old.mg[0].prolongation == "transpose" and old.mg[0].P0.h0 == old.mg[0].h0
    assert new.mg[0].prolongation == "resize" and new.mg[0].P0.h0 == 2 * new.mg[0].h0
    assert operators.default_hparams("mgno-conv")["prolongation"] == "resize"
    with pytest.raises(ValueError, match="prolongation"):
        operators.build_model("mgno-conv", 1, 1, prolongation="cubic", **hp)


# ----------------------------------------------------------- bad input and faults (#16)


def test_small_train_split_input_normaliser_falls_back_and_says_so(darcy, tmp_path, capsys):
    """The FNO's pointwise input normaliser on 4 training samples: points where the coefficient
    never changed are scaled by the channel's std, not by a floored 1e-6 (which gave validation
    relative L2 in the hundreds); the run records the choice in its metrics log."""
    res = train_small(darcy / "train.nc", tmp_path / "run", epochs=2, n_train=4, n_val=4)
    rows = [r for r in Run(tmp_path / "run").read_metrics() if r.get("event") == "normalisers"]
    assert len(rows) == 1
    x, y = rows[0]["x"], rows[0]["y"]
    assert x["kind"] == "pointwise" and x["small_std"] == "fallback" and x["n_fallback"] > 0
    assert y["small_std"] == "floor" and y["n_floored"] > 0  # the zero boundary of u
    assert "channel's std" in capsys.readouterr().err
    assert res["best_val"] < 2.0
    std = np.load(tmp_path / "run" / "normalisers_x.npz")["std"][..., 0]
    assert std.min() > 0.1


def test_resume_after_the_data_file_was_replaced_is_refused(darcy, tmp_path):
    import shutil

    data = tmp_path / "train.nc"
    shutil.copy(darcy / "train.nc", data)
    kw = {"epochs": 2, "max_steps": 2}
    train_small(data, tmp_path / "run", **kw)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_fingerprint"] == pde_data.storage.fingerprint(data)
    pde_data.save(pde_data.darcy.generate(9, 40, 16), data, )
    with pytest.raises(RunError, match="has changed since the run"):
        train_small(data, tmp_path / "run", **kw)
    shutil.copy(darcy / "train.nc", data)  # the original content back: resumes
    assert train_small(data, tmp_path / "run", epochs=2, max_steps=3)["step"] == 3


def test_nothing_is_written_before_the_model_and_test_files_are_accepted(darcy, tmp_path):
    """A bad hyper-parameter value or --test file is refused before the run folder exists, so
    the corrected command is not refused as 'another configuration' of a half-made run."""
    from operators.train import train

    for bad in ({"width": -1}, {"width": float("nan")}, {"width": "x"}, {"modes": 0}):
        with pytest.raises(ValueError, match="width|modes"):
            train(darcy / "train.nc", MODEL, tmp_path / "r", hparams=bad, epochs=1,
                  progress=False)
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        train_small(darcy / "train.nc", tmp_path / "r", epochs=1, tests=[tmp_path / "nope.nc"])
    burgers = pde_data.save(pde_data.burgers.generate(0, 2, 16, times=[0.5]), tmp_path / "b.nc")
    with pytest.raises(ValueError, match="b.nc"):
        train_small(darcy / "train.nc", tmp_path / "r", epochs=1, tests=[burgers])
    assert not (tmp_path / "r").exists()


def test_a_boolean_coefficient_trains_as_a_0_1_field(darcy, tmp_path):
    """neuraloperator's Darcy .pt sets store the coefficient as booleans (#16)."""
    from tests.pde_data.ptfiles import write_arrays

    ds = pde_data.load(darcy / "train.nc").isel(sample=slice(0, 12))
    path = write_arrays(tmp_path / "darcy_train_16.pt",
                        {"x": ds["a"].values > 5, "y": ds["u"].values})
    res = train_small(path, tmp_path / "run", epochs=1, n_val=4)
    assert res["step"] == 2 and np.isfinite(res["best_val"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["input_positive"] == [False]


# ------------------------------------------------------------------------------------------
# the reference's normalisers and one-step training (issue 17)
# ------------------------------------------------------------------------------------------
def test_normalisers_per_side_and_none_is_the_identity(darcy):
    from operators.fields import open_data
    from operators.train import fit_normalisers

    data = open_data(darcy / "train.nc").subset(np.arange(8))
    x, y = data.take(np.arange(8))
    xn, yn = fit_normalisers(data, {"normaliser": "none", "output_normaliser": "unit"})
    np.testing.assert_array_equal(np.asarray(xn.encode(x)), x)       # the raw input
    unit = data.fit_normalizers("unit")[1]
    np.testing.assert_allclose(yn.mean, unit.mean)
    np.testing.assert_allclose(yn.std, unit.std)
    assert np.ndim(yn.mean) == 1                                      # one Gaussian per channel
    xp, yp = fit_normalisers(data, {"normaliser": "pointwise"})      # the output follows the input
    assert xp.kind == yp.kind == "pointwise" and np.shape(yp.mean) == y.shape[1:]


def geometric_trajectories_dataset(n=8, n_times=5, s=8):
    """Periodic 'Navier-Stokes' trajectories w(t_i) = 0.9^i w0, so a one-step model can be exact."""
    import xarray as xr

    w0 = np.random.default_rng(0).normal(size=(n, s, s)).astype(np.float32)
    w = np.stack([0.9**i * w0 for i in range(1, n_times + 1)], axis=-1)
    x = np.arange(s) / s
    return xr.Dataset({"w0": (("sample", "x", "y"), w0), "w": (("sample", "x", "y", "t"), w)},
                      coords={"x": x, "y": x, "t": np.arange(1.0, n_times + 1)},
                      attrs={"pde": "navier_stokes", "periodic": 1, "input_vars": ["w0"],
                             "output_vars": ["w"]})


def test_one_step_split_keeps_each_trajectory_in_one_split():
    from operators.fields import open_data
    from operators.train import _split
    from pde_data.one_step import one_step_pairs

    pairs = one_step_pairs(geometric_trajectories_dataset(), steps=3)
    train, val = _split(open_data(pairs), 5, 2, seed=3, group=3)
    assert (len(train), len(val)) == (15, 6)
    traj = pairs["trajectory"].values
    train_ids = traj[train._idx]
    val_ids = traj[val._idx]
    assert not set(train_ids) & set(val_ids)
    assert all(np.sum(train_ids == k) == 3 for k in set(train_ids))
    with pytest.raises(ValueError, match="trajectories exceed"):
        _split(open_data(pairs), 7, 2, seed=0, group=3)


@pytest.mark.slow
def test_one_step_run_trains_on_pairs_and_scores_the_rollout(tmp_path, capsys):
    """``--one-step`` on a trajectory file: the run holds pairs (n_train counts trajectories),
    the reference recipe's values land in the config, --test and evaluate report the rollout."""
    from operators.__main__ import main

    pde_data.save(geometric_trajectories_dataset(), tmp_path / "traj.nc")
    pde_data.save(geometric_trajectories_dataset(n=3), tmp_path / "test.nc")
    args = ["train", "--data", str(tmp_path / "traj.nc"), "--model", "mgno-ns", "--out",
            str(tmp_path / "run"), "--recipe", "mgno-reference", "--one-step", "3", "--epochs", "2",
            "--batch-size", "3", "--n-val", "2", "--hparam", "width=4", "--hparam", "n_layers=1",
            "--test", str(tmp_path / "test.nc"), "--plot-samples", "0", "--no-progress"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    test = res["tests"][str(tmp_path / "test.nc")]
    assert test["n"] == 9 and test["rollout_steps"] == 3 and len(test["rollout_rel_l2_per_step"]) == 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["one_step"], config["n_train"], config["n_val"], config["steps_per_epoch"]) == (3, 6, 2, 6)
    assert (config["pct_start"], config["final_div_factor"], config["normaliser"]) == (0.1, 50.0, "none")
    assert config["input_vars"] == ["w"] and config["output_vars"] == ["w_next"]
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "test.nc")]) == 0
    assert "rollout_rel_l2=" in capsys.readouterr().out
    assert main(args) == 0  # the same command resumes the finished run
