"""The equal-CPU-budget plan of bench/nn_to_no_darcy.py (issue 13, "Results"): how many epochs
fit a budget, and where each resumed chunk of a budgeted run stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]


bench = load_bench("nn_to_no_darcy")


def test_plan_epochs_fits_the_budget():
    # 0.2 CPU s a step, 25 steps and a tenth more for validation: 5.5 s an epoch; 10 s overhead
    assert bench.plan_epochs(65.0, 0.2, 10.0) == 10
    assert bench.plan_epochs(64.9, 0.2, 10.0) == 9
    # the most epochs whose cost with the overhead stays within the budget
    epoch = 0.37 * 25 * 1.1
    for budget in (30.0, 100.0, 300.0):
        n = bench.plan_epochs(budget, 0.37, 12.0)
        assert 12.0 + n * epoch <= budget < 12.0 + (n + 1) * epoch
    # a model slower than the budget still trains one epoch
    assert bench.plan_epochs(10.0, 5.0, 30.0) == 1


@pytest.mark.parametrize("args", [(0.0, 0.1, 1.0), (10.0, 0.0, 1.0), (10.0, 0.1, -1.0)])
def test_plan_epochs_refuses_nonsense(args):
    with pytest.raises(ValueError, match="budget > 0"):
        bench.plan_epochs(*args)


def test_next_chunk_stops_at_plan_or_budget():
    # first chunk: half the plan, at least one epoch
    assert bench.next_chunk(0, 10, 0.0, 100.0, 0.0) == 5
    assert bench.next_chunk(0, 1, 0.0, 100.0, 0.0) == 1
    # later: everything that fits, capped at the plan
    assert bench.next_chunk(5, 10, 50.0, 100.0, 8.0) == 10
    assert bench.next_chunk(5, 10, 50.0, 100.0, 20.0) == 7
    # not one epoch left in the budget, or the plan done: the run is over
    assert bench.next_chunk(5, 10, 95.0, 100.0, 8.0) == 5
    assert bench.next_chunk(10, 10, 10.0, 100.0, 1.0) == 10


def test_registry_sizes_cover_the_issue_models():
    want = {"fno", "uno", "mgno", "mgno-conv", "cnn", "cnn-no", "unet", "unet-no", "vit", "vit-no",
            "attention-no"}
    assert set(bench.REGISTRY_SIZES) == want
    assert set(bench.PLAIN) <= want


@pytest.mark.slow
def test_registry_sizes_are_about_equal():
    from flax import nnx

    from operators.registry import build_model, count_params

    # Darcy with coordinate channels: 3 inputs, 1 output
    counts = {m: count_params(build_model(m, 3, 1, dim=2, rngs=nnx.Rngs(0), **h))
              for m, h in bench.REGISTRY_SIZES.items()}
    assert all(2.7e5 <= c <= 3.4e5 for c in counts.values()), counts
