"""The classifier's softmax temperature (pfn.calibration): the posterior concentrates on the
temperature that generated the labels, folds are stratified, and the estimator applies the
temperatures it reports and lowers the held-out NLL on a real table."""

from __future__ import annotations

import numpy as np
import pytest

from pfn.calibration import (
    GRID,
    held_out_nll,
    mixture_proba,
    stratified_folds,
    temperature_posterior,
    tempered_proba,
)


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def test_tempered_proba_keeps_the_ranking_and_averages_members():
    z = np.random.default_rng(0).normal(size=(3, 5, 4))
    np.testing.assert_allclose(tempered_proba(z, 1.0), _softmax(z).mean(0))
    sharp, flat = tempered_proba(z[:1], 0.3), tempered_proba(z[:1], 5.0)
    np.testing.assert_array_equal(sharp.argmax(1), z[0].argmax(1))
    assert np.all(sharp.max(1) > flat.max(1))
    # untransform maps each member's classes back before averaging
    rev = lambda p: p[..., ::-1]
    np.testing.assert_allclose(tempered_proba(z, 2.0, rev), _softmax(z[..., ::-1] / 2.0).mean(0))


def test_posterior_concentrates_on_the_generating_temperature():
    rng = np.random.default_rng(1)
    step = GRID[1] / GRID[0]
    for true_t in (0.25, 1.0, 2.5):
        logits = rng.normal(scale=2.0, size=(1, 6000, 3))
        labels = np.array([rng.choice(3, p=p) for p in _softmax(logits[0] / true_t)])
        folds = np.array_split(np.arange(6000), 3)
        args = ([logits[:, f] for f in folds], [labels[f] for f in folds],
                [np.ones(len(f), bool) for f in folds])
        temps, weights = temperature_posterior(*args)
        np.testing.assert_allclose(weights.sum(), 1.0)
        mean = np.exp(weights @ np.log(temps))
        assert true_t / step**2 <= mean <= true_t * step**2, (true_t, mean)
        assert temps[np.argmax(weights)] == GRID[np.argmin(held_out_nll(*args))]
        # 6000 rows: the posterior is narrow (within a few grid steps)
        assert temps.max() / temps.min() <= step**6


def test_unseen_rows_are_not_scored_and_no_rows_mean_t_one():
    logits = np.array([[[4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]])
    labels, wrong = np.array([0, 0, 1]), np.array([0, 0, 0])
    everything = np.ones(3, bool)
    sharp = held_out_nll([logits], [labels], [everything])
    assert np.argmin(sharp) == 0  # every row right and confident: the sharpest temperature
    # a wrong, confident row pulls it up, unless its class was unseen in the context
    assert GRID[np.argmin(held_out_nll([logits], [wrong], [everything]))] > 1.0
    np.testing.assert_allclose(held_out_nll([logits], [wrong], [np.array([True, True, False])]),
                               held_out_nll([logits[:, :2]], [labels[:2]], [np.ones(2, bool)]))
    temps, weights = temperature_posterior([logits], [labels], [np.zeros(3, bool)])
    assert temps.tolist() == [1.0] and weights.tolist() == [1.0]
    # the mixture is the weighted sum of the tempered ensembles
    np.testing.assert_allclose(mixture_proba(logits, [0.5, 2.0], [0.25, 0.75]),
                               0.25 * tempered_proba(logits, 0.5) + 0.75 * tempered_proba(logits, 2.0))


def test_stratified_folds_cover_once_and_balance_classes():
    codes = np.repeat([0, 1, 2], [7, 12, 3])
    folds = stratified_folds(codes, 5, np.random.default_rng(0))
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(codes)))
    for c in range(3):
        per_fold = [np.sum(codes[f] == c) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1
    again = stratified_folds(codes, 5, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="n_folds"):
        stratified_folds(codes, 1, np.random.default_rng(0))


def test_classifier_applies_its_temperature():
    from sklearn.datasets import load_iris

    from pfn.estimators import PFNClassifier

    X, y = load_iris(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    Xtr, ytr, Xte = X[idx[:30]], y[idx[:30]], X[idx[30:60]]
    p1 = PFNClassifier(n_estimators=1, temperature=1.0).fit(Xtr, ytr).predict_proba(Xte)
    p3 = PFNClassifier(n_estimators=1, temperature=0.3).fit(Xtr, ytr).predict_proba(Xte)
    # log p at T = 1 is the logits up to a constant per row: softmax(log p1 / 0.3) = p at 0.3
    np.testing.assert_allclose(p3, _softmax(np.log(p1) / 0.3), atol=1e-6)
    auto = PFNClassifier(n_estimators=1).fit(Xtr, ytr)
    temps, weights = auto.temperature_posterior_
    np.testing.assert_allclose(auto.predict_proba(Xte), sum(
        w * PFNClassifier(n_estimators=1, temperature=t).fit(Xtr, ytr).predict_proba(Xte)
        for t, w in zip(temps, weights)), atol=1e-6)
    for bad in (0, -1.0, float("nan"), "warm", True):
        with pytest.raises(ValueError, match="temperature"):
            PFNClassifier(temperature=bad).fit(Xtr, ytr)
    # too few rows to cross-validate: T = 1
    assert PFNClassifier(n_estimators=1).fit(Xtr[:3], ytr[:3]).temperature_ == 1.0


def test_auto_temperature_lowers_held_out_nll_on_real_tables():
    """The shipped network is underconfident on real tables: the temperature chosen on the
    training rows alone lowers the log loss on the unseen rows of every split."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from pfn.estimators import PFNClassifier

    X, y = load_wine(return_X_y=True)
    for split in range(3):
        Xtr, Xte, ytr, yte = train_test_split(X, y, train_size=50, stratify=y, random_state=split)
        nll = {}
        for t in ("auto", 1.0):
            p = PFNClassifier(n_estimators=4, temperature=t, random_state=split).fit(Xtr, ytr) \
                .predict_proba(Xte)
            nll[t] = -np.mean(np.log(p[np.arange(len(yte)), yte]))
        assert nll["auto"] < nll[1.0] - 0.05, (split, nll)
