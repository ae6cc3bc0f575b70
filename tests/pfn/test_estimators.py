"""User-facing estimators: shipped checkpoints load, limits give clear errors, outputs are
consistent with the predictive distribution, pandas in / numpy out, the padded size buckets
change nothing, and the context is used. (scikit-learn conformance: ``test_sklearn.py``.)"""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

import pfn
from pfn.estimators import PFNClassifier, PFNRegressor, load_model


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
    with pytest.raises(ValueError, match="infinity"):
        reg.fit(np.array([[0.1], [0.2]]), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="2D array"):
        reg.fit(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        reg.fit(np.zeros((5, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="max_classes"):
        clf.fit(np.random.default_rng(0).normal(size=(22, 3)), np.arange(22) % 11)
    with pytest.raises(ValueError, match="max_features"):
        clf.fit(np.zeros((10, 21)), np.arange(10) % 2)
    with pytest.raises(ValueError, match="max_rows"):
        clf.fit(np.zeros((201, 3)), np.arange(201) % 2)
    with pytest.raises(NotFittedError, match="not fitted"):
        PFNClassifier.from_pretrained("tabular").predict(np.zeros((2, 3)))
    clf.fit(np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="expecting 3 features"):
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


def _unpadded(loaded):
    """The network's jitted forward pass without any padding or mask (the static
    context-slice path at the exact sizes)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    graphdef, params, rest = nnx.split(loaded.network, nnx.Param, ...)
    fwd = jax.jit(lambda p, r, a, b, c: nnx.merge(graphdef, p, r).predict(a, b, c)[0])
    return lambda xc, yc, xt: np.asarray(fwd(params, rest, *(jnp.asarray(a[None])
                                                            for a in (xc, yc, xt))))


@pytest.mark.parametrize("name", ["gp-rbf", pytest.param("tabular", marks=pytest.mark.slow)])
def test_padded_buckets_give_the_unpadded_outputs(name):
    """Context padded to its bucket with masked keys, targets padded to a chunk: the outputs
    equal the unpadded forward pass to float tolerance, for sizes in several buckets. (gp-rbf's
    logits reach ~30 and move by ~1e-3 between any two XLA programs, eager against jitted
    included: the tolerance is relative to the largest logit.)"""
    loaded = load_model(name)
    unpadded = _unpadded(loaded)
    rng = np.random.default_rng(3)
    f = loaded.max_features
    for n_ctx, n_tgt in [(1, 1), (16, 17), (23, 40), (loaded.max_rows, 300)]:
        xc = rng.uniform(0, 1, (n_ctx, f)).astype(np.float32)
        yc = (rng.integers(0, 3, n_ctx).astype(np.int32) if loaded.task == "classification"
              else rng.normal(size=n_ctx).astype(np.float32))
        xt = rng.uniform(0, 1, (n_tgt, f)).astype(np.float32)
        chunks, n = loaded.outputs(xc, yc, xt)
        got = np.concatenate([np.asarray(c) for c in chunks])[:n]
        want = unpadded(xc, yc, xt)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_one_compilation_per_context_bucket():
    reg = PFNRegressor(model="gp-rbf")
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (64, 1))
    y = np.sin(6 * x[:, 0])
    reg.fit(x[:17], y[:17]).predict(x[:5])  # the 32 bucket
    forward = reg._loaded._jit
    before = forward._cache_size()
    for n, m in [(20, 3), (25, 40), (31, 300), (32, 1)]:  # same bucket, any number of targets
        reg.fit(x[:n], y[:n]).predict_distribution(x[:m]).quantile([0.1, 0.9])
    assert forward._cache_size() == before


def test_the_regressor_uses_its_context():
    """Deliverable 3 of issue 14: a model that ignored its context would predict the same for
    y and -y. gp-rbf's predictions follow the context's sign and come near its values."""
    reg = PFNRegressor(model="gp-rbf")
    x = np.linspace(0.05, 0.95, 12)[:, None]
    y = 1.5 * np.sin(5 * x[:, 0]) + 0.5
    xt = x + 0.02  # targets next to the context points
    up = reg.fit(x, y).predict(xt)
    down = reg.fit(x, -y).predict(xt)
    assert np.mean(np.abs(up - down)) > 0.5 * np.mean(np.abs(2 * y))
    assert np.corrcoef(up, y)[0, 1] > 0.9 and np.corrcoef(down, -y)[0, 1] > 0.9
    assert np.mean(np.abs(up - y)) < 0.5 * np.mean(np.abs(y))


def test_overflowing_inputs_are_a_named_error_not_nan():
    x = np.linspace(0.0, 1.0, 6)[:, None]
    reg = PFNRegressor(model="gp-rbf").fit(x * 1e30, np.sin(6 * x[:, 0]))
    with pytest.raises(FloatingPointError, match="X .*rescale X"):
        reg.predict(x * 1e30)


def test_overflowing_targets_are_blamed_on_y_not_x():
    x = np.linspace(0.0, 1.0, 6)[:, None]
    reg = PFNRegressor(model="gp-rbf").fit(x, 1e30 * np.sin(6 * x[:, 0]))
    with pytest.raises(FloatingPointError, match="y .*rescale y"):
        reg.predict(x)
