"""Applying a trained run to new inputs: ``load_run(...).predict`` and ``python -m operators predict``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import operators
import pde_data
from operators.__main__ import main
from operators.run import DataMismatchError


@pytest.fixture(scope="module")
def test31(darcy):
    ds = pde_data.load(darcy / "test31.nc")
    return ds.assign_attrs(note="kept")


def test_prediction_equals_evaluates_and_keeps_coordinates(trained, test31):
    from operators import losses
    from operators.evaluate import evaluate
    from operators.fields import open_data
    from operators.step import mean_metrics

    run = operators.load_run(trained)
    out = run.predict(test31, batch_size=3)
    # the prediction evaluate makes (full batches of 3 and the short last one)
    fields = open_data(test31)
    metrics, pred = mean_metrics(run.model, fields, 3, run.normalisers, run.config, take=8)
    np.testing.assert_allclose(out["u"].values, pred[..., 0], rtol=1e-5, atol=1e-6)
    rel = losses.rel_l2_per_sample(out["u"].values[..., None], test31["u"].values[..., None], False)
    assert float(np.mean(rel)) == pytest.approx(evaluate(trained, test31)["rel_l2"], rel=1e-5)
    assert float(np.mean(rel)) == pytest.approx(metrics["rel_l2"], rel=1e-5)
    # the input's grid, sample numbers, inputs and attributes are kept
    assert out["u"].dims == test31["u"].dims and out["u"].shape == (8, 31, 31)
    for c in ("x", "y", "sample"):
        np.testing.assert_array_equal(out[c].values, test31[c].values)
    np.testing.assert_array_equal(out["a"].values, test31["a"].values)
    assert out.attrs["note"] == "kept" and out.attrs["pde"] == test31.attrs["pde"]
    assert "best checkpoint" in out.attrs["predicted_by"]
    assert not np.allclose(out["u"].values, test31["u"].values)  # a prediction, not the truth


def test_inputs_alone_suffice(trained, test31, darcy):
    run = operators.load_run(trained)
    full = run.predict(test31)
    alone = run.predict(test31.drop_vars("u"))
    np.testing.assert_array_equal(alone["u"].values, full["u"].values)
    assert list(alone.data_vars) == ["a", "u"]
    from_file = run.predict(darcy / "test31.nc")
    np.testing.assert_array_equal(from_file["u"].values, full["u"].values)
    latest = operators.load_run(trained, which="latest")
    assert latest.checkpoint == "latest" and latest.predict(test31)["u"].shape == (8, 31, 31)
    with pytest.raises(ValueError, match="checkpoint"):
        operators.load_run(trained, which="first")


def test_inputs_that_do_not_fit_are_refused(trained, test31):
    run = operators.load_run(trained)
    with pytest.raises(DataMismatchError, match="missing"):
        run.predict(test31.rename({"a": "coef"}))
    bad = test31.copy(deep=True)
    bad["a"].values[5, 3, 4] = -1.0
    with pytest.raises(DataMismatchError, match="non-positive"):
        run.predict(bad)
    bad["a"].values[5, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run.predict(bad)
    one_d = xr.Dataset({"a": (("sample", "x"), np.ones((2, 9), np.float32))},
                       coords={"x": np.linspace(0, 1, 9)},
                       attrs={"pde": "darcy", "input_vars": ["a"], "output_vars": ["a"]})
    with pytest.raises(DataMismatchError, match="spatial dimension"):
        run.predict(one_d)


def test_cli_predict_writes_and_refuses_to_overwrite(trained, test31, tmp_path, capsys):
    data = tmp_path / "inputs.nc"  # inputs only; its output_vars name the absent "u"
    inputs = test31.drop_vars("u")
    inputs.attrs = {**inputs.attrs, "input_vars": "a", "output_vars": "u"}
    inputs.to_netcdf(data, engine="h5netcdf")
    out = tmp_path / "pred.nc"
    args = ["predict", "--run", str(trained), "--data", str(data), "--out", str(out)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    written = pde_data.load(out)
    expected = operators.load_run(trained).predict(test31)
    np.testing.assert_allclose(written["u"].values, expected["u"].values, rtol=1e-6)
    np.testing.assert_array_equal(written["x"].values, test31["x"].values)
    assert pde_data.schema.var_names(written.attrs["output_vars"]) == ["u"]
    before = out.stat().st_mtime_ns
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.stat().st_mtime_ns == before
    assert main([*args, "--overwrite", "--checkpoint", "latest", "--batch-size", "5"]) == 0
    assert main(["predict", "--run", str(trained), "--data", str(data), "--out", str(tmp_path / "p.txt")]) == 2
    assert ".nc" in capsys.readouterr().err


def _trajectories(n=5, s=12, nt=3):
    """Inputs ``u0(sample, x)`` and outputs ``u(sample, t, x)`` with a time coordinate."""
    rng = np.random.default_rng(1)
    x = np.arange(s) / s
    u0 = rng.normal(size=(n, s)).astype(np.float32)
    u = np.stack([u0 * (k + 1) for k in range(nt)], axis=1)
    return xr.Dataset({"u0": (("sample", "x"), u0),
                       "u": (("sample", "t", "x"), u, {"units": "1", "long_name": "velocity"})},
                      coords={"x": x, "t": [0.25, 0.5, 1.0]},
                      attrs={"pde": "burgers", "input_vars": ["u0"], "output_vars": ["u"]})


def test_outputs_get_back_their_dimensions_and_coordinates():
    """The channels of a trajectory output (t as channels) go back to ``u(sample, t, x)`` with
    its times, also when the inputs carry no time coordinate; runs without a stored layout
    get ``u(sample, x, t)``."""
    from operators.config import run_config, training_options
    from operators.fields import open_data, prediction_dataset

    ds = _trajectories()
    fields = open_data(ds)
    config = run_config("fno", fields, ds, "<mem>", {}, training_options("fno"))
    y = np.asarray(fields.y)  # (n, x, t)
    for inputs in (ds.drop_vars("u"), ds.drop_vars(["u", "t"])):
        out = prediction_dataset(inputs, y, config)
        assert out["u"].dims == ("sample", "t", "x") and out["u"].attrs["long_name"] == "velocity"
        np.testing.assert_array_equal(out["u"].values, ds["u"].values)
        np.testing.assert_array_equal(out["t"].values, ds["t"].values)
        pde_data.schema.validate(out)
    old = {k: v for k, v in config.items() if k != "output_layout"}
    out = prediction_dataset(ds.drop_vars(["u", "t"]), y, old)
    assert out["u"].dims == ("sample", "x", "t")
    np.testing.assert_array_equal(out["u"].transpose("sample", "t", "x").values, ds["u"].values)
