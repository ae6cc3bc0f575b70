"""Evaluation of a run: metrics at the data's resolution and clear errors on data that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

import pde_data
from operators.run import DataMismatchError


@pytest.fixture(scope="module")
def test21():
    return pde_data.darcy.generate(5, 6, 21)


def test_metrics_at_another_resolution(trained, test21, tmp_path):
    from operators.evaluate import evaluate

    pde_data.save(test21, tmp_path / "t21.nc")
    m = evaluate(trained, tmp_path / "t21.nc", plot=True, plot_samples=2)
    assert m["resolution"] == [21, 21] and m["n"] == 6
    assert 0 < m["rel_l2"] < 10 and 0 < m["rel_h1"] < 10
    assert (trained / "predictions_t21.png").exists()
    # an in-memory dataset gives the same numbers as its file
    assert evaluate(trained, test21)["rel_l2"] == pytest.approx(m["rel_l2"], rel=1e-6)


def test_other_variable_names_are_refused(trained, test21):
    from operators.evaluate import evaluate

    renamed = test21.rename({"a": "coef"}).assign_attrs(input_vars="coef")
    with pytest.raises(DataMismatchError, match=r"trained on \['a'\] -> \['u'\]"):
        evaluate(trained, renamed)


def test_other_channel_count_is_refused(trained, test21):
    from operators.evaluate import evaluate

    two = test21.assign(a=test21["a"].expand_dims(t=[0.0, 1.0], axis=1))  # (sample, t, x, y): 2 channels
    with pytest.raises(DataMismatchError, match="2 input channel"):
        evaluate(trained, two)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN"), (-1.0, "non-positive")])
def test_bad_input_values_are_refused(trained, test21, value, message):
    from operators.evaluate import evaluate

    bad = test21.copy(deep=True)
    bad["a"].values[2, 3, 4] = value
    with pytest.raises(ValueError, match=message):
        evaluate(trained, bad)


def test_not_a_run_folder(tmp_path):
    from operators.evaluate import evaluate

    with pytest.raises(FileNotFoundError, match="not a run folder"):
        evaluate(tmp_path, tmp_path / "x.nc")


def _interp_axes(a, n_out):
    """``a (k, n, n, c)`` linearly interpolated onto the ``n_out``-point node grid (np.interp per
    axis): the reference of the interpolation baseline."""
    src, dst = np.linspace(0, 1, a.shape[1]), np.linspace(0, 1, n_out)
    a = np.apply_along_axis(lambda v: np.interp(dst, src, v), 1, a)
    return np.apply_along_axis(lambda v: np.interp(dst, src, v), 2, a)


def test_interpolation_baseline_against_numpy(trained, darcy):
    """``interpolate=True`` on a node grid: the inputs interpolated (np.interp) from 31 points to
    the training grid of 16, the model applied there, the prediction interpolated back."""
    import jax.numpy as jnp

    from operators.evaluate import evaluate
    from operators.fields import open_for_run
    from operators.run import load_run
    from operators.step import metric_values, predict_batch

    m = evaluate(trained, darcy / "test31.nc", interpolate=True)
    assert m["interpolate"] == "linear" and m["model_resolution"] == [16, 16] and m["resolution"] == [31, 31]
    run = load_run(trained)
    fields, _ = open_for_run(darcy / "test31.nc", run.config)
    x, y = fields.take(np.arange(len(fields)))
    pred16 = predict_batch(run.model, run.normalisers, run.config, _interp_axes(np.asarray(x, np.float64), 16)
                           .astype(np.float32))
    pred = _interp_axes(pred16.astype(np.float64), 31)
    want = float(np.mean(np.asarray(metric_values(jnp.asarray(pred, jnp.float32), jnp.asarray(y), False)["rel_l2"])))
    assert m["rel_l2"] == pytest.approx(want, rel=1e-4)


def test_interpolation_baseline_on_the_training_grid_is_the_normal_mode(trained, darcy):
    from operators.evaluate import evaluate

    a = evaluate(trained, darcy / "train.nc", interpolate="linear")
    b = evaluate(trained, darcy / "train.nc")
    assert a["rel_l2"] == pytest.approx(b["rel_l2"], rel=1e-5)
    with pytest.raises(ValueError, match="Fourier interpolation needs a periodic grid"):
        evaluate(trained, darcy / "train.nc", interpolate="fourier")
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        evaluate(trained, darcy / "train.nc", interpolate="cubic")


def test_cli_interpolate(trained, darcy, capsys):
    from operators.__main__ import main

    assert main(["evaluate", "--run", str(trained), "--data", str(darcy / "test31.nc"), "--interpolate"]) == 0
    out = capsys.readouterr().out
    assert "resolution=31x31" in out and "model run at 16x16, linear interpolation in and out" in out
    assert main(["evaluate", "--run", str(trained), "--data", str(darcy / "test31.nc"), "--interpolate",
                 "cubic"]) == 2
