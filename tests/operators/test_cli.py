"""``python -m operators``: verbs, train / evaluate --json / predict, one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pde_data
from operators.__main__ import main
from tests.operators.conftest import MODEL, ROOT, cli_hparams, subprocess_env


def test_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "operators", "--help"], check=False, capture_output=True, text=True,
                         env=subprocess_env(), cwd=ROOT, timeout=120)
    assert out.returncode == 0
    for verb in ("train", "evaluate", "predict", "models"):
        assert verb in out.stdout


@pytest.mark.slow  # 20+ s; the train CLI's fast coverage: test_train.py and the error tests
def test_train_then_evaluate_json(tmp_path, capsys):
    pde_data.save(pde_data.darcy.generate(0, 20, 16), tmp_path / "train.nc")
    pde_data.save(pde_data.darcy.generate(1, 4, 11), tmp_path / "test.nc")
    rc = main(["train", "--data", str(tmp_path / "train.nc"), "--model", MODEL, "--out", str(tmp_path / "run"),
               "--epochs", "1", "--batch-size", "4", "--test", str(tmp_path / "test.nc"), "--no-progress",
               *cli_hparams()])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["step"] == 4 and str(tmp_path / "test.nc") in res["tests"]
    assert (tmp_path / "run" / "predictions_test.png").exists()
    assert (tmp_path / "run" / "results.json").exists()

    assert main(["evaluate", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "test.nc"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rel_l2"] == pytest.approx(res["tests"][str(tmp_path / "test.nc")]["rel_l2"], rel=1e-6)
    assert out["resolution"] == [11, 11]


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path), "--data", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--data", str(tmp_path / "missing.nc"), "--model", MODEL, "--out",
                 str(tmp_path / "r")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch-size", "-4"), ("--lr", "nan"),
                                         ("--lr", "0"), ("--max-steps", "0"), ("--epochs", "1.5"),
                                         ("--weight-decay", "inf"), ("--pct-start", "0"),
                                         ("--final-div-factor", "-1"), ("--one-step", "0")])
def test_bad_numbers_are_refused_at_the_boundary(tmp_path, capsys, flag, value):
    rc = main(["train", "--data", str(tmp_path / "d.nc"), "--model", MODEL, "--out", str(tmp_path / "r"),
               flag, value])
    err = capsys.readouterr().err
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_one_step_on_data_without_trajectories_is_one_line(darcy, tmp_path, capsys):
    rc = main(["train", "--data", str(darcy / "train.nc"), "--model", MODEL, "--out",
               str(tmp_path / "r"), "--one-step", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "time series" in err[0]
    assert not (tmp_path / "r").exists()


def test_predict_batch_size_is_checked(tmp_path, capsys):
    rc = main(["predict", "--run", str(tmp_path), "--data", "x.nc", "--out", "y.nc", "--batch-size", "0"])
    assert rc == 2 and "--batch-size" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_subprocess(trained, darcy, tmp_path):
    out = tmp_path / "pred.nc"
    cmd = [sys.executable, "-m", "operators", "predict", "--run", str(trained), "--data",
           str(darcy / "test31.nc"), "--out", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=subprocess_env(),
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout and pde_data.load(out)["u"].shape == (8, 31, 31)
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, env=subprocess_env(),
                           cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr


def test_evaluate_never_writes_its_plot_over_a_file(trained, darcy, tmp_path, capsys):
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"precious")
    argv = ["evaluate", "--run", str(trained), "--data", str(darcy / "test31.nc")]
    for extra, words in ((["--plot", str(keep)], "exists; pass --overwrite"),
                         (["--plot", str(tmp_path / "data.nc")], "ending in .png")):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert keep.read_bytes() == b"precious"


def test_data_problems_are_one_line(trained, darcy, tmp_path, capsys):
    """A corrupt zarr chunk and a dataset without samples: exit 2 and one line naming them."""
    ds = pde_data.load(darcy / "test31.nc")
    store = pde_data.save(ds, tmp_path / "t.zarr")
    chunk = next(p for p in (store / "u").rglob("*") if p.is_file() and "zarr" not in p.name)
    chunk.write_bytes(b"\x00garbage" * 8)
    empty = pde_data.save(ds.isel(sample=slice(0, 0)), tmp_path / "empty.nc")
    for data, words in ((store, "t.zarr: variable 'u'"), (empty, "holds no samples")):
        assert main(["evaluate", "--run", str(trained), "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert main(["evaluate", "--run", str(tmp_path / "missing"), "--data", str(empty)]) == 2
    assert not (tmp_path / "missing").exists()
