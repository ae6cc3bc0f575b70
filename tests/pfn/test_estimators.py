"""User-facing estimators: shipped checkpoints load, limits give clear errors, outputs are
consistent with the predictive distribution, pandas in / numpy out."""

import numpy as np
import pandas as pd
import pytest

import pfn
from pfn.estimators import PFNClassifier, PFNRegressor


@pytest.fixture(scope="module")
def reg():
    return PFNRegressor.from_pretrained("gp-rbf")


@pytest.fixture(scope="module")
def clf():
    return PFNClassifier.from_pretrained("tabular")


def test_available_and_unknown_name_lists_them():
    assert {"gp-rbf", "gp-hyper", "tabular"} <= set(pfn.available())
    with pytest.raises(ValueError, match="gp-rbf"):
        PFNRegressor.from_pretrained("gp-nope")
    with pytest.raises(ValueError, match="classification"):
        PFNRegressor.from_pretrained("tabular")
    assert isinstance(pfn.from_pretrained("tabular"), PFNClassifier)


def test_regressor_distribution_is_consistent_and_beats_the_prior(reg):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (30, 1))
    f = lambda t: np.sin(6 * t[:, 0])
    reg.fit(pd.DataFrame(x), pd.Series(f(x)))
    xt = np.linspace(0.05, 0.95, 40)[:, None]
    dist = reg.predict_distribution(xt)
    assert isinstance(dist.mean, np.ndarray) and dist.mean.shape == (40,)
    np.testing.assert_allclose(reg.predict(xt), dist.mean)
    q = dist.quantile([0.1, 0.5, 0.9])
    assert q.shape == (40, 3) and np.all(np.diff(q, axis=1) > 0)
    np.testing.assert_allclose(dist.cdf(q[:, 1]), 0.5, atol=1e-4)
    assert np.all(dist.std > 0)
    # the posterior predictive must beat the prior N(0, 1 + 1e-4) on data from a smooth function
    prior_nll = 0.5 * np.log(2 * np.pi) + 0.5 * f(xt) ** 2
    assert np.mean(-dist.logpdf(f(xt))) < np.mean(prior_nll) - 0.3
    assert np.sqrt(np.mean((dist.mean - f(xt)) ** 2)) < 0.5


def test_regressor_target_normalisation_is_affine(reg):
    hyper = PFNRegressor.from_pretrained("gp-hyper")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (15, 2))
    y = np.cos(3 * x.sum(1))
    xt = rng.uniform(0, 1, (5, 2))
    d1 = hyper.fit(x, y).predict_distribution(xt)
    d2 = hyper.fit(x * 10 + 3, 100 * y - 7).predict_distribution(xt * 10 + 3)
    np.testing.assert_allclose(d2.mean, 100 * d1.mean - 7, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(d2.std, 100 * d1.std, rtol=1e-4)
    np.testing.assert_allclose(d2.logpdf(100 * y[:5] - 7), d1.logpdf(y[:5]) - np.log(100),
                               atol=1e-4)


def test_limits_are_checked_not_truncated(reg, clf):
    with pytest.raises(ValueError, match="max_rows"):
        reg.fit(np.zeros((101, 1)), np.zeros(101))
    with pytest.raises(ValueError, match="max_features"):
        reg.fit(np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        reg.fit(np.array([[0.1], [np.nan]]), np.zeros(2))
    with pytest.raises(ValueError, match="infinite"):
        reg.fit(np.array([[0.1], [0.2]]), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="2-D"):
        reg.fit(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="rows"):
        reg.fit(np.zeros((5, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="max_classes"):
        clf.fit(np.random.default_rng(0).normal(size=(22, 3)), np.arange(22) % 11)
    with pytest.raises(ValueError, match="max_features"):
        clf.fit(np.zeros((10, 21)), np.arange(10) % 2)
    with pytest.raises(ValueError, match="max_rows"):
        clf.fit(np.zeros((201, 3)), np.arange(201) % 2)
    with pytest.raises(RuntimeError, match="not fitted"):
        PFNClassifier.from_pretrained("tabular").predict(np.zeros((2, 3)))
    clf.fit(np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="fitted with 3"):
        clf.predict(np.zeros((2, 4)))


def test_classifier_labels_probabilities_and_separable_data(clf):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 4))
    labels = np.array(["low", "mid", "high"])
    y = labels[np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.6, 0.6])]
    clf.fit(X[:80], y[:80])
    proba = clf.predict_proba(X[80:])
    assert proba.shape == (40, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    pred = clf.predict(X[80:])
    assert set(pred) <= set(labels)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(1)])
    assert np.mean(pred == y[80:]) > 0.5  # chance is about 1/3
