"""Shared helpers of the operators tests: tiny Darcy data, a tiny FNO and one trained run."""

from __future__ import annotations

import json
import os
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


def cli_hparams(model: str = MODEL) -> list[str]:
    """``--hparam KEY=VALUE`` arguments of :func:`small_hparams`."""
    return [f"--hparam={k}={json.dumps(v)}" for k, v in small_hparams(model).items()]


def train_small(data, out, **kw):
    """``operators.train.train`` of the tiny FNO, batch 4, no progress bar."""
    from operators.train import train

    kw.setdefault("batch_size", 4)
    return train(data, MODEL, out, hparams=small_hparams(), progress=False, **kw)


def latest_params(run) -> list[np.ndarray]:
    """The parameters of a run's latest checkpoint, as a list of numpy arrays."""
    import jax
    from flax import nnx

    from operators.run import restore_model

    model = restore_model(run, which="latest")
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))]


def assert_same_params(run_a, run_b) -> None:
    for a, b in zip(latest_params(run_a), latest_params(run_b), strict=True):
        np.testing.assert_array_equal(a, b)


def subprocess_env(**extra) -> dict:
    """Environment of a ``python -m operators`` subprocess: this checkout importable, one
    device, no progress bar."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(OPBAYES_PROGRESS="0", PYTHONPATH=path, **extra)
    return env


@pytest.fixture(scope="session")
def darcy(tmp_path_factory):
    """40 Darcy samples at 16x16 (train) and 8 at 31x31 (test at another resolution)."""
    d = tmp_path_factory.mktemp("darcy")
    pde_data.save(pde_data.darcy.generate(0, 40, 16), d / "train.nc")
    pde_data.save(pde_data.darcy.generate(1, 8, 31), d / "test31.nc")
    return d


@pytest.fixture(scope="session")
def trained(darcy, tmp_path_factory):
    """A tiny FNO trained one epoch on ``darcy/train.nc`` (4 validation samples)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train_small(darcy / "train.nc", out, epochs=1, n_val=4)
    return out


def load_bench(name: str):
    """The module of the script ``bench/<name>.py`` (bench/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
