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
