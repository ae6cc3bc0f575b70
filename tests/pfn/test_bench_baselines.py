"""The independent baselines of the PFN results (issue 14, "Results"): the float64 exact GP of
bench/pfn_gp_rbf_exact.py and the scikit-learn ML-II GP of bench/pfn_gp_hyper_sklearn.py."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


exact = _bench("pfn_gp_rbf_exact")
sk = _bench("pfn_gp_hyper_sklearn")


def _rbf(a, b, ls, os_):
    return os_ * np.exp(-0.5 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / ls**2)


def test_exact_gp_nll_is_the_conditional_of_the_joint_gaussian():
    # each target conditioned on the context through the Schur complement of the joint
    # covariance (an explicit inverse), scored by the Gaussian density written out
    rng = np.random.default_rng(0)
    xc, xt = rng.uniform(size=(7, 1)), rng.uniform(size=(5, 1))
    yc, yt = rng.normal(size=7), rng.normal(size=5)
    ls, os_, nv = 0.3, 1.7, 1e-2
    got = exact.exact_gp_nll(xc, yc, xt, yt, ls, os_, nv)
    for j in range(5):
        x = np.concatenate([xc, xt[j:j + 1]])
        joint = _rbf(x, x, ls, os_) + nv * np.eye(8)
        a_inv = np.linalg.inv(joint[:7, :7])
        mean = joint[7, :7] @ a_inv @ yc
        var = joint[7, 7] - joint[7, :7] @ a_inv @ joint[:7, 7]
        want = 0.5 * math.log(2 * math.pi * var) + 0.5 * (yt[j] - mean) ** 2 / var
        assert got[j] == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_sklearn_baseline_predicts_noisy_y_near_the_true_gp():
    # 60 points of a known GP with noise std 0.1: ML-II scores held-out noisy y nearly as well
    # as the true hyperparameters (0.06 nats here); a predictive std without the fitted noise
    # (the latent f's) would be 1 nat worse
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(120, 1))
    ls, os_, nv = 0.2, 1.0, 0.01
    f = np.linalg.cholesky(_rbf(x, x, ls, os_) + 1e-8 * np.eye(120)) @ rng.normal(size=120)
    y = f + math.sqrt(nv) * rng.normal(size=120)
    nll = sk.sklearn_nll(x[:60], y[:60], x[60:], y[60:], restarts=0, seed=0).mean()
    oracle = exact.exact_gp_nll(x[:60], y[:60], x[60:], y[60:], ls, os_, nv).mean()
    assert oracle - 0.1 < nll < oracle + 0.2


@pytest.mark.slow
def test_scripts_write_their_tables(tmp_path):
    rows = exact.measure("gp-rbf", [2, 5], n_datasets=4, n_targets=8, seed=0)
    assert [r["n"] for r in rows] == [2, 5]
    assert all(np.isfinite([r["gap"], r["gap_se"]]).all() for r in rows)
    out = tmp_path / "sk.json"
    import sys

    argv = sys.argv
    sys.argv = ["pfn_gp_hyper_sklearn.py", "--dims", "1,3", "--contexts", "3", "--n-datasets",
                "3", "--n-targets", "8", "--restarts", "1", "--out", str(out)]
    try:
        sk.main()
    finally:
        sys.argv = argv
    result = json.loads(out.read_text())
    assert [(r["d"], r["n"]) for r in result["rows"]] == [(1, 3), (3, 3)]
    for r in result["rows"]:
        for k in ("pfn", "pfn_estimator", "sklearn", "oracle"):
            assert np.isfinite(r[f"{k}_nll"])
