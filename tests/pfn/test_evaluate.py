"""Evaluation on prior datasets: the oracle and bucket-floor columns are what they claim."""

import numpy as np

from pfn.evaluate import evaluate_regression
from pfn.train import load_run, train

TINY = {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 16, "n_buckets": 20,
        "border_samples": 2000, "max_context": 12, "n_targets": 4, "batch_size": 4,
        "quiet": True}


def test_oracle_is_the_exact_gp_and_the_floor_is_the_head_limit(tmp_path):
    train(str(tmp_path / "r"), "gp-rbf", steps=2, **TINY)
    model, cfg, stats = load_run(tmp_path / "r")
    rows = evaluate_regression(model, cfg, stats, contexts=(2, 10, 50), n_datasets=16,
                               n_targets=8, chunk=8)
    assert [r["n"] for r in rows] == [2, 10]  # 50 > max_context is skipped
    for r in rows:
        # fixed hyperparameters: the oracle GP is the exact GP baseline, computed another way
        np.testing.assert_allclose(r["oracle_nll"], r["gp_nll"], rtol=1e-3, atol=1e-3)
        # 20 coarse buckets: bucketising the exact predictive costs nats
        assert r["floor_nll"] > r["oracle_nll"] + 0.05
        assert np.isfinite(r["pfn_nll"])
