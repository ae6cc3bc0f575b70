"""``python -m pfn``: train, export and evaluate in-process; every bad input is exit 2 and one
line on stderr, never a traceback."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from pde_data.runs import Run
from pfn.__main__ import main

from .conftest import ROOT, TINY_STEPS, cli_args, one_error_line, subprocess_env


def test_train_writes_a_run_and_prints_its_summary(tiny_run, capsys):
    rows = Run(tiny_run).read_metrics()
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["loss"]) and "lr" in r and "grad_norm" in r for r in rows)
    # the same command again: the run is finished, nothing to do
    code = main(["train", "--prior", "gp-rbf", "--out", str(tiny_run), "--quiet", "--steps",
                 str(TINY_STEPS), "--checkpoint-every", "2", *cli_args()])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == TINY_STEPS and summary["resumed_from"] == TINY_STEPS


@pytest.mark.slow
def test_export_then_evaluate(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(tiny_run), "tiny"]) == 0
    folder = tmp_path / "exports" / "tiny"
    assert capsys.readouterr().out.strip().endswith(str(folder))
    meta = json.loads((folder / "config.json").read_text())
    assert (meta["format"], meta["format_version"], meta["package"]) == ("opbayes-model", 2, "pfn")
    assert main(["evaluate", "--model", str(folder), "--contexts", "2,50", "--n-datasets", "4",
                 "--n-targets", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["n"] for r in report["rows"]] == [2]  # 50 > max_context is skipped
    assert np.isfinite(report["rows"][0]["pfn_nll"])


@pytest.mark.parametrize("argv,match", [
    (["train", "--prior", "nope"], "unknown prior 'nope'"),
    (["train", "--prior", "gp-rbf", "--batch-size", "0"], "--batch-size must be a positive"),
    (["train", "--prior", "gp-rbf", "--d-model", "16", "--n-heads", "3"],
     "--d-model 16 must be divisible by --n-heads 3"),
    (["train", "--prior", "gp-rbf", "--lr", "nan"], "--lr must be a positive finite"),
    (["train", "--prior", "gp-rbf", "--prior-option", "nope=1"], r"no option\(s\) \['nope'\]"),
    (["train", "--prior", "gp-rbf", "--prior-option", "lengthscale"], "KEY=JSON"),
    (["train", "--prior", "gp-rbf", "--prior-option", "kernel=rbf"], "not a JSON value"),
    (["train", "--prior", "gp-rbf", "--steps", "ten"], "invalid int value"),
    (["train"], "one of the arguments --prior --data is required"),
    (["train", "--prior", "gp-rbf", "--data", "x.nc"], "not allowed with argument"),
    (["train", "--data", "missing.nc"], "missing.nc does not exist"),
    (["train", "--prior", "gp-rbf", "--init-from", "nope"], "'nope' is neither a model folder"),
    ([], "required: {train,evaluate,export}"),
])
def test_bad_train_input_is_one_line(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[:1] == ["train"]:  # tiny, one step: a case that wrongly passes ends soon
        argv = ["train", "--out", str(tmp_path / "r"), "--quiet", "--steps", "1", *cli_args(),
                *argv[1:]]
    assert main(argv) == 2
    assert re.search(match, one_error_line(capsys))
    assert not (tmp_path / "r").exists()


def test_changed_arguments_on_an_existing_run_are_one_line(tiny_run, capsys):
    argv = ["train", "--prior", "gp-rbf", "--out", str(tiny_run), "--quiet", "--steps",
            str(TINY_STEPS), "--checkpoint-every", "2", *cli_args(lr=0.01)]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "another configuration" in line and "lr: 0.003 -> 0.01" in line


@pytest.mark.parametrize("verb", ["export", "evaluate"])
def test_a_missing_run_is_one_line_and_creates_nothing(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = str(tmp_path / "no-run")
    argv = ["export", missing, "m"] if verb == "export" else ["evaluate", "--model", missing]
    assert main(argv) == 2
    assert "no-run" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_evaluate_input_is_one_line(tiny_run, capsys):
    for argv, match in [(["--contexts", "2,x"], "--contexts takes comma-separated positive"),
                        (["--contexts", "500"], "exceeds the model's max_context 12"),
                        (["--n-datasets", "0"], "--n-datasets must be a positive")]:
        assert main(["evaluate", "--model", str(tiny_run), *argv]) == 2
        assert match in one_error_line(capsys)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="unknown prior"):
        main(["train", "--prior", "nope", "--out", str(tmp_path / "r"), "--debug"])


@pytest.mark.slow
def test_python_dash_m_pfn_as_a_subprocess(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pfn", "train", "--prior", "gp-rbf", "--out",
                          str(tmp_path / "r"), "--batch-size", "0"], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == ("python -m pfn: error: --batch-size must be a positive "
                                  "integer, got 0")
