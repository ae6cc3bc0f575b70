"""Test-time ensembles over the prior's symmetries (pfn.ensemble) and the estimators' uniform
input scaling: members drawn as documented, and an ensemble equal to the average of members
computed by hand (the user transforming the data, fitting the plain estimator, transforming
back)."""

from __future__ import annotations

import numpy as np
import pytest

from pfn.ensemble import Symmetries, draw_members, symmetries
from pfn.estimators import uniform_support

GP = Symmetries(permute_features=True, reflect=True, centre=0.5)


def test_uniform_support_is_unbiased_and_safe():
    # n = 2: the two points at 1/3 and 2/3 of the estimated domain, not at its ends
    shift, scale = uniform_support(np.array([[1.0], [4.0]]))
    np.testing.assert_allclose((np.array([1.0, 4.0]) - shift) / scale, [1 / 3, 2 / 3])
    # unbiased ends of U[2, 5] from 3 draws (Monte Carlo over 40,000 datasets)
    x = np.random.default_rng(0).uniform(2.0, 5.0, (40_000, 3))
    ends = np.array([(s[0], s[0] + c[0]) for s, c in map(uniform_support, x[..., None])])
    np.testing.assert_allclose(ends.mean(0), [2.0, 5.0], atol=0.02)
    # a constant column and a single row are centred at 1/2 with scale 1
    shift, scale = uniform_support(np.array([[3.0, 1.0], [3.0, 2.0]]))
    assert shift[0] == 2.5 and scale[0] == 1.0
    shift, scale = uniform_support(np.array([[7.0]]))
    assert (7.0 - shift[0]) / scale[0] == 0.5


def test_members_identity_first_distinct_and_seeded():
    rng = lambda: np.random.default_rng(3)
    one = draw_members(1, 4, 3, GP, rng())
    np.testing.assert_array_equal(one.feature_perm, [np.arange(4)])
    assert not one.flip.any()
    # 1-D data has two views (x and 1 - x): k = 4 gives both, once each
    m = draw_members(4, 1, 0, GP, rng())
    assert m.flip[:, 0].tolist() == [False, True]
    # d = 2: 2! x 2^2 = 8 views, all different for k = 8, the identity first
    m = draw_members(8, 2, 0, GP, rng())
    views = {(tuple(p), tuple(f)) for p, f in zip(m.feature_perm, m.flip)}
    assert len(views) == 8 and m.feature_perm[0].tolist() == [0, 1] and not m.flip[0].any()
    again = draw_members(8, 2, 0, GP, rng())
    np.testing.assert_array_equal(m.feature_perm, again.feature_perm)
    # many views: random ones, each a permutation
    tab = draw_members(6, 9, 4, symmetries({"prior": "tabular", "task": "classification"}), rng())
    for p, c in zip(tab.feature_perm, tab.class_perm):
        assert sorted(p) == list(range(9)) and sorted(c) == list(range(4))


def test_members_refused_without_a_symmetry():
    with pytest.raises(ValueError, match="n_estimators"):
        draw_members(0, 2, 0, GP, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no"):  # a model trained on a data file
        draw_members(4, 3, 0, symmetries({"prior": None, "task": "regression"}),
                     np.random.default_rng(0))
    assert symmetries({"prior": "bnn", "task": "regression"}) == Symmetries(permute_features=True)


def test_transform_x_views():
    m = draw_members(3, 2, 0, GP, np.random.default_rng(1))
    Z = np.array([[0.1, 0.2], [0.3, 0.6]])
    views = m.transform_x(Z)
    for i in range(3):
        expect = Z[:, m.feature_perm[i]]
        expect = np.where(m.flip[i], 1.0 - expect, expect)
        np.testing.assert_allclose(views[i], expect)


def _by_hand(m, i, X):
    """Member i's view of raw X as a user would make it: permuted columns, flipped ones negated
    (both x_transforms, standardise and the uniform support, map -x to the reflection)."""
    Xi = X[:, m.feature_perm[i]]
    return np.where(m.flip[i], -Xi, Xi)


@pytest.mark.slow
def test_classifier_ensemble_is_the_mean_of_members_by_hand():
    from sklearn.datasets import load_wine

    from pfn.estimators import PFNClassifier

    X, y = load_wine(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    Xtr, ytr, Xte = X[idx[:40]], y[idx[:40]], X[idx[40:70]]
    plain = lambda: PFNClassifier(n_estimators=1, temperature=1.0)
    ens = PFNClassifier(n_estimators=3, random_state=5, temperature=1.0).fit(Xtr, ytr)
    m = ens._members
    members = []
    for i in range(3):
        names = m.class_perm[i][np.searchsorted(ens.classes_, ytr)]
        p = plain().fit(_by_hand(m, i, Xtr), names).predict_proba(_by_hand(m, i, Xte))
        members.append(p[:, m.class_perm[i]])
    proba = ens.predict_proba(Xte)
    np.testing.assert_allclose(proba, np.mean(members, axis=0), atol=2e-5)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    again = PFNClassifier(n_estimators=3, random_state=5, temperature=1.0).fit(Xtr, ytr).predict_proba(Xte)
    np.testing.assert_array_equal(proba, again)


@pytest.mark.slow
def test_regressor_ensemble_is_the_mixture_of_members_by_hand():
    from pfn.estimators import PFNRegressor

    rng = np.random.default_rng(1)
    X = rng.uniform(-2.0, 3.0, (12, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    Xt, yt = rng.uniform(-2.0, 3.0, (9, 2)), rng.normal(size=9)
    ens = PFNRegressor(model="gp-hyper", n_estimators=4, random_state=2).fit(X, y)
    m = ens._members
    logpdfs = [PFNRegressor(model="gp-hyper", n_estimators=1).fit(_by_hand(m, i, X), y)
               .predict_distribution(_by_hand(m, i, Xt)).logpdf(yt) for i in range(4)]
    mixture = np.log(np.mean(np.exp(logpdfs), axis=0))
    np.testing.assert_allclose(ens.predict_distribution(Xt).logpdf(yt), mixture, atol=1e-4)
