"""bench/gpu_all.sh (issue 14, deliverable 4) runs end to end on a CPU with a tiny budget:
every shipped Bayesian model trained for 3 steps with the README's command, exported,
evaluated against the shipped one, and a verdict printed (slow: five trainings compile)."""

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, subprocess_env


@pytest.mark.slow
def test_gpu_all_runs_with_a_tiny_budget(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_all.sh"), str(out), "60", "--pfn-steps", "3",
         "--np-steps", "3", "--quick"],
        capture_output=True, text=True, env=subprocess_env(PY=sys.executable), cwd=tmp_path,
        timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    names = [m["name"] for m in summary["models"]]
    assert names == ["gp-rbf", "gp-hyper", "tabular", "anp-rbf", "mpanp-rbf"]
    for m in summary["models"]:
        assert "error" not in m, m
        assert 1 <= m["steps_done"] <= 3 and isinstance(m["beats_shipped"], bool)
        assert m["command"].startswith("python -m ")
    assert "beat" in proc.stdout
    import neural_processes
    import pfn

    assert pfn.from_pretrained(str(out / "exports" / "gp-rbf")).fit([[0.5]], [1.0]).predict(
        [[0.4]]).shape == (1,)
    assert neural_processes.from_pretrained(str(out / "exports" / "mpanp-rbf")).name == "mpanp"
