"""Evaluation on prior datasets: the oracle and bucket-floor columns are what they claim."""

import numpy as np
import pytest

from pfn.checkpoint import load_run
from pfn.evaluate import evaluate_regression


@pytest.mark.slow
def test_oracle_is_the_exact_gp_and_the_floor_is_the_head_limit(tiny_run):
    model, cfg, stats = load_run(tiny_run)
    rows = evaluate_regression(model, cfg, stats, contexts=(2, 50), n_datasets=16,
                               n_targets=8, chunk=16)
    assert [r["n"] for r in rows] == [2]  # 50 > max_context is skipped
    for r in rows:
        # fixed hyperparameters: the oracle GP is the exact GP baseline, computed another way
        np.testing.assert_allclose(r["oracle_nll"], r["gp_nll"], rtol=1e-3, atol=1e-3)
        # 20 coarse buckets: bucketising the exact predictive costs nats
        assert r["floor_nll"] > r["oracle_nll"] + 0.05
        assert np.isfinite(r["pfn_nll"])
