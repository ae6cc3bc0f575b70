"""``python -m neural_processes`` in process (``main([...])``): every verb once, and errors end
with exit status 2 and one line on stderr (the policy of ``pde_data.runs.cli``)."""

import json

import pytest
import xarray as xr

from neural_processes.checkpoint import available

from .conftest import run_cli, write_point_sets


def one_line_error(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and set(available()) == set(out.split()) == {"anp-rbf", "mpanp-rbf"}


def test_evaluate_export_predict(tiny_run, tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(capsys, "evaluate", "--run", tiny_run, "--n-tasks", "20",
                             "--num-samples", "2", "--json", "--no-plot", "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_tasks"] == 20 and res["step"] == 6 and res["data"] == "rbf"
    assert (tiny_run / "eval_rbf.json").exists()

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "export", tiny_run, "tiny")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "exports" / "tiny")
    # the export scores as its run did on the same seeded tasks, and writes nothing
    before = sorted(p.name for p in (tmp_path / "exports" / "tiny").iterdir())
    code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "exports" / "tiny",
                             "--n-tasks", "20", "--num-samples", "2", "--json", "--no-progress")
    assert code == 0, err
    shipped_res = json.loads(out)
    assert shipped_res["target_ll"] == pytest.approx(res["target_ll"], rel=1e-5, abs=1e-6)
    assert shipped_res["step"] == 6 and shipped_res["data"] == "rbf"
    assert sorted(p.name for p in (tmp_path / "exports" / "tiny").iterdir()) == before
    line = one_line_error(*run_cli(capsys, "export", tiny_run, "tiny")[::2])
    assert "already exists; pass --overwrite" in line
    assert run_cli(capsys, "export", tiny_run, "tiny", "--overwrite")[0] == 0

    data = write_point_sets(tmp_path / "tasks.nc", n_tasks=3, n_points=9)
    for model in (tiny_run, tmp_path / "exports" / "tiny"):
        code, out, err = run_cli(capsys, "predict", "--model", model, "--data", data,
                                 "--n-context", "4", "--out", tmp_path / "pred.nc",
                                 "--overwrite")
        assert code == 0, err
        with xr.open_dataset(tmp_path / "pred.nc") as ds:
            assert ds["mean"].shape == ds["std"].shape == (3, 5)
            assert ds.attrs["n_context"] == 4


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "gpt", "--data", "rbf", "--out", "{tmp}/r"], "invalid choice: 'gpt'"),
    (["train", "--model", "cnp", "--data", "mnist", "--out", "{tmp}/r"],
     "unknown dataset 'mnist'"),
    (["train", "--model", "cnp", "--data", "{tmp}/missing.nc", "--out", "{tmp}/r"],
     "missing.nc does not exist"),
    (["train", "--model", "cnp", "--data", "rbf", "--out", "{tmp}/r", "--steps", "0"],
     "--steps: must be >= 1"),
    (["train", "--model", "cnp", "--data", "rbf", "--out", "{tmp}/r", "--n-points", "9"],
     "apply to a point-set file"),
    (["evaluate", "--run", "{tmp}/none"], "none does not exist"),
    (["evaluate", "--model", "nope"], "nope"),
    (["evaluate", "--run", "{run}", "--model", "anp-rbf"], "not allowed with"),
    (["export", "{tmp}/none", "x"], "none does not exist"),
    (["export", "{run}", "../x"], "invalid model name '../x'"),
    (["predict", "--model", "nope", "--data", "{tmp}/t.nc", "--n-context", "3", "--out",
      "{tmp}/p.nc"], "neither a model folder"),
    (["predict", "--model", "anp-rbf", "--data", "{tmp}/t.nc", "--n-context", "9", "--out",
      "{tmp}/p.nc"], "n_context must be in [1, 8]"),
    (["predict", "--model", "anp-rbf", "--data", "{tmp}/t.nc", "--n-context", "3", "--out",
      "{tmp}/p.zarr"], "written as a .nc"),
    (["predict", "--model", "anp-rbf", "--data", "{tmp}/t.nc", "--out", "{tmp}/p.nc"],
     "--n-context"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--model", "mpanp", "--data", "rbf", "--out", "{tmp}/r", "--loss-weights", "1,1"],
     "three comma-separated numbers"),
    (["train", "--model", "mpanp", "--data", "rbf", "--out", "{tmp}/r", 
      "--loss-weights=-1,1,1"], "loss_weights"),
])
def test_errors_are_one_line_with_status_2(argv, message, tmp_path, tiny_run_master, capsys):
    write_point_sets(tmp_path / "t.nc", n_tasks=2, n_points=9)
    argv = [a.format(tmp=tmp_path, run=tiny_run_master) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert message in one_line_error(code, err)
    assert not (tmp_path / "r").exists() and not (tmp_path / "p.nc").exists()


def test_debug_shows_the_traceback(tmp_path, capsys):
    from neural_processes.__main__ import main

    with pytest.raises(Exception, match="does not exist"):
        main(["evaluate", "--run", str(tmp_path / "none"), "--debug"])
