"""Evaluation of a run: metrics at the data's resolution and clear errors on data that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

import pde_data
from operators.train import DataMismatchError
from tests.operators.test_train import train_small


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    train = pde_data.darcy.generate(0, 24, 16)
    pde_data.save(train, d / "train.nc")
    train_small(d / "train.nc", d / "run", epochs=1, n_val=4)
    return d, pde_data.darcy.generate(5, 6, 21)


def test_metrics_at_another_resolution(trained):
    from operators.evaluate import evaluate

    d, test = trained
    pde_data.save(test, d / "t21.nc")
    m = evaluate(d / "run", d / "t21.nc", plot=True, plot_samples=2)
    assert m["resolution"] == [21, 21] and m["n"] == 6
    assert 0 < m["rel_l2"] < 10 and 0 < m["rel_h1"] < 10
    assert (d / "run" / "predictions_t21.png").exists()
    # an in-memory dataset gives the same numbers as its file
    assert evaluate(d / "run", test)["rel_l2"] == pytest.approx(m["rel_l2"], rel=1e-6)


def test_other_variable_names_are_refused(trained):
    from operators.evaluate import evaluate

    d, test = trained
    renamed = test.rename({"a": "coef"}).assign_attrs(input_vars="coef")
    with pytest.raises(DataMismatchError, match=r"trained on \['a'\] -> \['u'\]"):
        evaluate(d / "run", renamed)


def test_other_channel_count_is_refused(trained):
    from operators.evaluate import evaluate

    d, test = trained
    two = test.assign(a=test["a"].expand_dims(t=[0.0, 1.0], axis=1))  # (sample, t, x, y): 2 channels
    with pytest.raises(DataMismatchError, match="2 input channel"):
        evaluate(d / "run", two)


@pytest.mark.parametrize("value, message", [(np.nan, "NaN"), (-1.0, "non-positive")])
def test_bad_input_values_are_refused(trained, value, message):
    from operators.evaluate import evaluate

    d, test = trained
    bad = test.copy(deep=True)
    bad["a"].values[2, 3, 4] = value
    with pytest.raises(ValueError, match=message):
        evaluate(d / "run", bad)


def test_not_a_run_folder(tmp_path):
    from operators.evaluate import evaluate

    with pytest.raises(FileNotFoundError, match="not a run folder"):
        evaluate(tmp_path, tmp_path / "x.nc")
