"""``python -m operators``: verbs, train and evaluate --json, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pde_data
from operators.__main__ import main
from tests.operators.test_train import MODEL, ROOT, _env, small_hparams


def test_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "operators", "--help"], check=False, capture_output=True, text=True,
                         env=_env(), cwd=ROOT, timeout=120)
    assert out.returncode == 0
    for verb in ("train", "evaluate", "models"):
        assert verb in out.stdout


def test_train_then_evaluate_json(tmp_path, capsys):
    pde_data.save(pde_data.darcy.generate(0, 20, 16), tmp_path / "train.nc")
    pde_data.save(pde_data.darcy.generate(1, 4, 11), tmp_path / "test.nc")
    hp = [f"--hparam={k}={json.dumps(v)}" for k, v in small_hparams().items()]
    rc = main(["train", "--data", str(tmp_path / "train.nc"), "--model", MODEL, "--out", str(tmp_path / "run"),
               "--epochs", "1", "--batch-size", "4", "--test", str(tmp_path / "test.nc"), "--no-progress", *hp])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["step"] == 4 and str(tmp_path / "test.nc") in res["tests"]
    assert (tmp_path / "run" / "predictions_test.png").exists()

    proc = subprocess.run([sys.executable, "-m", "operators", "evaluate", "--run", str(tmp_path / "run"),
                           "--data", str(tmp_path / "test.nc"), "--json"],
                          check=False, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["rel_l2"] == res["tests"][str(tmp_path / "test.nc")]["rel_l2"]
    assert out["resolution"] == [11, 11]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path), "--data", str(tmp_path / "x.nc")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing.nc"), "--model", MODEL, "--out",
                 str(tmp_path / "r")]) == 2
    assert "error:" in capsys.readouterr().err
