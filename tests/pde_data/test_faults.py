"""The fault-injection helpers (``tests/faults.py``) themselves: the kill plan is a pure function
of its seed, and the run comparison is not vacuous (it passes for two runs that differ only in
their clocks and fails on one changed bit, one changed metrics row or one stray file). The
kill -9 tests of the commands are ``tests/*/test_faults.py`` (slow) and, for ``generate``,
``tests/pde_data/test_generate_cli.py``."""

import json

import numpy as np
import pytest

from pde_data.runs import Run
from tests.faults import assert_same_run, kill_plan


def test_kill_plan_is_reproducible_and_covers_both_kinds():
    plan = kill_plan(3, duration=20.0)
    assert plan == kill_plan(3, duration=20.0) and plan != kill_plan(4, duration=20.0)
    assert {kind for kind, _ in plan} == {"time", "checkpoint"} and len(plan) == 3
    assert all(0 < v < 20.0 for kind, v in plan if kind == "time")


def _fake_run(path, w, rows, seconds):
    run = Run(path)
    run.write_config({"lr": 0.1})
    for row in rows:
        run.log(**row, seconds=seconds, steps_per_s=1 / seconds)
    run.log(event="start", params=2)
    run.save(2, {"params": {"w": w}, "opt": {"m": np.zeros(2, np.float32)}},
             {"step": 2, "elapsed": seconds, "interval": {"sums": {}, "seconds": seconds}})
    run.close()
    return path


def test_run_comparison_ignores_clocks_and_catches_one_bit(tmp_path):
    w = np.array([1.0, 2.0], np.float32)
    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    a = _fake_run(tmp_path / "a", w, rows, seconds=1.0)
    b = _fake_run(tmp_path / "b", w, rows, seconds=7.0)
    assert assert_same_run(a, b) == 0
    # a resumed run that logged step 1 again (same values) fails: the engine drops such rows
    with open(a / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "loss": 0.5, "seconds": 3.0}) + "\n")
    with pytest.raises(AssertionError, match="1 repeated metrics rows"):
        assert_same_run(a, b)

    one_ulp = _fake_run(tmp_path / "c", np.nextafter(w, np.float32(3)), rows, seconds=1.0)
    with pytest.raises(AssertionError):
        assert_same_run(one_ulp, b)
    other_row = _fake_run(tmp_path / "d", w, [rows[0], {"step": 2, "loss": 0.26}], seconds=1.0)
    with pytest.raises(AssertionError, match="metrics rows differ"):
        assert_same_run(other_row, b)
    debris = _fake_run(tmp_path / "e", w, rows, seconds=1.0)
    (debris / ".config.json.x.tmp").write_text("{}")
    with pytest.raises(AssertionError):
        assert_same_run(debris, b)
    with open(a / "metrics.jsonl", "a") as f:  # a repeated step with another value: wrong
        f.write(json.dumps({"step": 2, "loss": 0.3}) + "\n")
    with pytest.raises(AssertionError, match="two different metrics rows of step 2"):
        assert_same_run(a, b)
