"""Training loop: run folder contents, exact resume after a crash, data parallelism, defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pde_data

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fno"
SMALL = {"fno": {"width": 8, "modes": 4, "n_layers": 2}}


def small_hparams(model: str = MODEL) -> dict:
    """The model's defaults shrunk to a few hundred parameters (keys the model knows only)."""
    import operators

    hp = operators.default_hparams(model)
    return {k: v for k, v in SMALL.get(model, {}).items() if k in hp}


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    """40 Darcy samples at 16x16 (train) and 8 at 31x31 (test at another resolution)."""
    d = tmp_path_factory.mktemp("data")
    pde_data.save(pde_data.darcy.generate(0, 40, 16), d / "train.nc")
    pde_data.save(pde_data.darcy.generate(1, 8, 31), d / "test31.nc")
    return d


def _params(run) -> list[np.ndarray]:
    import jax
    from flax import nnx

    from operators.train import restore_params
    from pde_data.runs import Run

    r = Run(run)
    _, params, _ = restore_params(r, r.read_config(), which="latest")
    r.close()
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.to_pure_dict(params))]


def _env(**extra):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(OPBAYES_PROGRESS="0", PYTHONPATH=path, **extra)
    return env


def test_train_writes_run_and_evaluates_tests(darcy, tmp_path):
    from operators.evaluate import evaluate
    from operators.train import load_run

    out = tmp_path / "run"
    res = train_small(darcy / "train.nc", out, epochs=2, tests=[darcy / "test31.nc"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == MODEL and cfg["in_channels"] == 1 and cfg["out_channels"] == 1
    assert cfg["input_positive"] == [True]  # the Darcy coefficient is 3 or 12
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_rel_l2"]) for r in epochs)
    test = res["tests"][str(darcy / "test31.nc")]
    assert test["resolution"] == [31, 31] and test["n"] == 8
    assert (out / "predictions_test31.png").stat().st_size > 10_000
    assert (out / "best" / "checkpoints").is_dir() and (out / "normalisers_y.npz").exists()

    # the metric against an independent numpy computation from load_run's model
    model, norms, config = load_run(out)
    ds = pde_data.load(darcy / "test31.nc")
    a = ds["a"].values[..., None].astype(np.float32)
    u = ds["u"].values[..., None].astype(np.float32)
    from operators.train import prepare_input

    pred = np.asarray(norms["y"].decode(model(prepare_input(a, norms["x"], config["coords"], config["periodic"]))))
    w = np.ones(31)
    w[[0, -1]] = 0.5  # trapezoid rule on the node grid
    w2 = np.outer(w, w)[None, :, :, None]
    rel = np.sqrt(((pred - u) ** 2 * w2).sum((1, 2, 3)) / (u**2 * w2).sum((1, 2, 3)))
    again = evaluate(out, darcy / "test31.nc", batch_size=3)  # uneven last batch: every sample once
    assert again["rel_l2"] == pytest.approx(rel.mean(), rel=1e-4)
    assert test["rel_l2"] == pytest.approx(rel.mean(), rel=1e-4)
    assert 0 < again["rel_h1"] and np.isfinite(again["rel_h1"])


def train_small(data, out, **kw):
    from operators.train import train

    kw.setdefault("batch_size", 4)
    return train(data, MODEL, out, hparams=small_hparams(), progress=False, **kw)


def test_stop_and_resume_gives_identical_parameters(darcy, tmp_path):
    """Stopped mid-epoch (``max_steps``) and resumed == uninterrupted, bit for bit."""
    first = train_small(darcy / "train.nc", tmp_path / "stopped", epochs=2, max_steps=5)
    assert first["step"] == 5 and not first["tests"]
    assert train_small(darcy / "train.nc", tmp_path / "stopped", epochs=2)["step"] == 18
    train_small(darcy / "train.nc", tmp_path / "whole", epochs=2)
    for a, b in zip(_params(tmp_path / "stopped"), _params(tmp_path / "whole"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_resume_after_kill_gives_identical_parameters(darcy, tmp_path):
    """A CLI run hard-killed mid-epoch (os._exit after global step 7, last checkpoint at step
    6) and resumed ends with exactly the parameters of an uninterrupted run."""
    hp = [f"--hparam={k}={json.dumps(v)}" for k, v in small_hparams().items()]
    cmd = [sys.executable, "-m", "operators", "train", "--data", str(darcy / "train.nc"), "--model", MODEL,
           "--out", str(tmp_path / "killed"), "--epochs", "2", "--batch-size", "4",
           "--checkpoint-every", "3", "--no-progress", *hp]
    proc = subprocess.run(cmd, env=_env(OPBAYES_ABORT_AFTER_STEP="7"), check=False, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 75, proc.stderr[-2000:]
    from pde_data.runs import Run

    assert Run(tmp_path / "killed").latest_step() == 6  # 9 steps per epoch: killed mid-epoch 1
    res = train_small(darcy / "train.nc", tmp_path / "killed", epochs=2, checkpoint_every=3)
    assert res["step"] == 18
    train_small(darcy / "train.nc", tmp_path / "whole", epochs=2, checkpoint_every=3)
    for a, b in zip(_params(tmp_path / "killed"), _params(tmp_path / "whole"), strict=True):
        np.testing.assert_array_equal(a, b)
    # a changed configuration on the same folder is refused, naming the key
    with pytest.raises(ValueError, match="lr"):
        train_small(darcy / "train.nc", tmp_path / "whole", epochs=2, checkpoint_every=3, lr=1e-2)


MULTI = """
import json, sys
sys.path.insert(0, {root!r})
import jax
from tests.operators.test_train import train_small
assert jax.local_device_count() == {n}, jax.local_devices()
res = train_small({data!r}, {out!r}, epochs=2, n_val=4, batch_size=8)
rows = [json.loads(l) for l in open({out!r} + "/metrics.jsonl") if '"epoch"' in l]
print(json.dumps([[r["train_loss"], r["val_rel_l2"]] for r in rows]))
"""


@pytest.mark.slow
def test_four_devices_give_the_loss_of_one(darcy, tmp_path):
    out = {}
    for n in (1, 4):
        code = MULTI.format(root=str(ROOT), n=n, data=str(darcy / "train.nc"), out=str(tmp_path / f"d{n}"))
        env = _env(XLA_FLAGS=f"--xla_force_host_platform_device_count={n}") if n > 1 else _env()
        proc = subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True,
                              timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[n] = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(out[4], out[1], rtol=2e-5)
    cfg = json.loads((tmp_path / "d4" / "config.json").read_text())
    assert cfg["batch_size"] == 8


def test_defaults_follow_the_papers():
    import optax  # noqa: F401

    from operators.train import make_schedule, train_defaults

    mg = train_defaults("mgno")
    assert (mg["lr"], mg["weight_decay"], mg["batch_size"], mg["loss"], mg["schedule"]) == (5e-4, 1e-4, 8, "h1", "onecycle")
    fno = train_defaults("fno")
    assert (fno["lr"], fno["batch_size"], fno["loss"], fno["schedule"]) == (1e-3, 20, "l2", "step")
    one = make_schedule("onecycle", 5e-4, 1000, 10, 100)
    assert float(one(0)) == pytest.approx(2.5e-4)       # start at peak / 2
    assert float(one(200)) == pytest.approx(5e-4)       # peak after 20 % warm-up
    assert float(one(1000)) == pytest.approx(2.5e-6)    # end at peak / 200
    step = make_schedule("step", 1e-3, 500 * 10, 10, 500)
    assert float(step(999)) == pytest.approx(1e-3) and float(step(1000)) == pytest.approx(5e-4)


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
    from operators.train import base_resolution_for, data_periodic, model_hparams, open_data

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
    from operators.train import loss_value

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
    from operators.train import build

    hp = {"width": 2, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "base_resolution": 16}
    cfg = {"model": "mgno-conv", "model_in_channels": 1, "out_channels": 1, "dim": 2, "seed": 0}
    old = build({**cfg, "hparams": hp})
    new = build({**cfg, "hparams": {**hp, "prolongation": "resize"}})
    assert old.mg[0].prolongation == "transpose" and old.mg[0].P0.h0 == old.mg[0].h0
    assert new.mg[0].prolongation == "resize" and new.mg[0].P0.h0 == 2 * new.mg[0].h0
    assert operators.default_hparams("mgno-conv")["prolongation"] == "resize"
    with pytest.raises(ValueError, match="prolongation"):
        operators.build_model("mgno-conv", 1, 1, prolongation="cubic", **hp)
