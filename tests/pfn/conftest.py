"""Shared helpers of the PFN tests: a tiny architecture, one tiny trained run, a point-set file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PREDICTIONS = Path(__file__).with_name("shipped_predictions.npz")

# keyword options of pfn.train.train for a model of a few thousand parameters
TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 16, "n_buckets": 20,
        "border_samples": 2000, "max_context": 12, "n_targets": 4, "batch_size": 4,
        "log_every": 2, "lr": 3e-3, "warmup": 2}
TINY_STEPS, TINY_EVERY = 4, 2  # the shared run: 4 steps, a checkpoint every 2


def cli_args(**options) -> list[str]:
    """``--flag value`` arguments of ``python -m pfn train`` for ``TINY`` updated by
    ``options``."""
    args = []
    for key, value in {**TINY, **options}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def train_tiny(out, prior: str = "gp-rbf", **options) -> dict:
    """``pfn.train.train`` of the tiny model, no progress bar."""
    from pfn.train import train

    return train(str(out), prior, quiet=True, **{**TINY, **options})


def params_of(model) -> list[np.ndarray]:
    import jax
    from flax import nnx

    return [np.asarray(v) for v in
            jax.tree_util.tree_leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))]


def run_params(run) -> list[np.ndarray]:
    """The parameters of a run folder's latest checkpoint."""
    from pfn.checkpoint import load_run

    return params_of(load_run(run)[0])


def assert_same_params(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def one_error_line(capsys) -> str:
    """The one line a failed ``python -m pfn`` command wrote to stderr."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("python -m pfn")
    return lines[0]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny gp-rbf run trained through the command line (``pfn.__main__.main``), shared:
    tests must not change it (copy it first)."""
    from pfn.__main__ import main

    out = tmp_path_factory.mktemp("pfn") / "tiny"
    code = main(["train", "--prior", "gp-rbf", "--out", str(out), "--quiet", "--steps",
                 str(TINY_STEPS), "--checkpoint-every", str(TINY_EVERY), *cli_args()])
    assert code == 0
    return out


@pytest.fixture
def point_set_file(tmp_path) -> Path:
    """A small regression point-set file: 24 tasks of 20 noisy sines in 2-D."""
    from pde_data.points import save_point_sets

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (24, 20, 2)).astype(np.float32)
    phase = rng.uniform(0, 3, (24, 1))
    y = np.sin(4 * x[..., 0] + phase) + 0.3 * x[..., 1] + 0.05 * rng.normal(size=(24, 20))
    return save_point_sets(x, y, tmp_path / "tasks.nc")


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("OPBAYES_PROGRESS", "0")


def subprocess_env(**extra) -> dict:
    """Environment of a subprocess: this checkout importable, no progress bar."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OPBAYES_PROGRESS": "0", **extra}
