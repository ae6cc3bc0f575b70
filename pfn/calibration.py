"""The softmax temperature of a PFN classifier, chosen by cross-validation on the training rows.

Why: a PFN is calibrated for datasets of its prior, not for a user's table. The shipped
`tabular` network is strongly underconfident on real data (its prior is noisier than most real
tables, and averaging a test-time ensemble flattens further): top-label ECE 0.25 on average over
scikit-learn's iris / wine / breast cancer / digits at 20-100 rows (bench/pfn_tabular.py).
Dividing every member's logits by one temperature ``T`` keeps the network's ranking of the
classes and fixes the scale. ``T`` is inferred from the held-out likelihood of the training rows,
each fold predicted by the network with the other folds as its context (the same forward pass as
``predict_proba``, so no test data is ever used): a posterior over a log-spaced grid
(:data:`GRID`), and the prediction is the mixture over it. Held-out rows whose class has no example left in their fold's context are
not scored: they measure an unseen class, not the scale of the logits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRID", "MAX_FOLDS", "MIN_ROWS", "held_out_nll", "mixture_proba", "stratified_folds",
           "temperature_posterior", "tempered_proba"]

#: the temperatures tried (log-spaced: sharpening by up to 20x, flattening by up to 4x)
GRID = np.exp(np.linspace(np.log(0.05), np.log(4.0), 45))
#: fewer training rows than this (or a single class): no cross-validation, T = 1
MIN_ROWS = 4
#: the most folds (10-fold cross-validation; fewer rows: leave-one-out)
MAX_FOLDS = 10


def tempered_proba(member_logits, temperature: float, untransform=None) -> np.ndarray:
    """Class probabilities ``(n, C)`` of an ensemble whose members gave ``member_logits
    (k, n, C)``: each member's softmax of ``logits / temperature`` (in its own class names,
    mapped back by ``untransform (k, n, C) -> (k, n, C)`` when given), averaged over members."""
    z = np.asarray(member_logits, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    if untransform is not None:
        p = untransform(p)
    return p.mean(axis=0)


def stratified_folds(codes, n_folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_folds`` disjoint index sets covering ``codes (n,)``: every class's rows shuffled and
    dealt round-robin (from a random fold), so each fold holds about its share of every class
    and a class of m rows keeps m - 1 in the context of each of its held-out rows."""
    codes = np.asarray(codes)
    if not 2 <= n_folds <= len(codes):
        raise ValueError(f"need 2 <= n_folds <= {len(codes)} rows, got {n_folds}")
    fold_of = np.empty(len(codes), np.intp)
    start = 0
    for c in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == c))
        fold_of[rows] = (start + np.arange(len(rows))) % n_folds
        start = (start + len(rows)) % n_folds
    return [np.flatnonzero(fold_of == f) for f in range(n_folds)]


def held_out_nll(fold_logits, fold_labels, fold_seen, untransform=None, grid=GRID) -> np.ndarray:
    """Total held-out NLL ``(len(grid),)`` at every temperature. Per fold: the members' logits
    ``(k, m, C)`` of its m held-out rows, their labels ``(m,)`` and ``seen (m,)`` (whether the
    row's class is in the fold's context; unseen rows are not scored)."""
    nll = np.zeros(len(grid))
    for logits, labels, seen in zip(fold_logits, fold_labels, fold_seen):
        if not np.any(seen):
            continue
        labels = np.asarray(labels)[seen]
        for i, t in enumerate(grid):
            p = tempered_proba(logits, t, untransform)[seen]
            nll[i] -= np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-300)).sum()
    return nll


def temperature_posterior(fold_logits, fold_labels, fold_seen, untransform=None,
                          grid=GRID, min_weight: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """``(temperatures, weights)``: the posterior over the temperatures of ``grid`` (uniform
    prior on log T; likelihood: the held-out likelihood of :func:`held_out_nll`), keeping those
    with at least ``min_weight`` (renormalised). Predicting with the mixture over this posterior
    rather than with its mode guards against a noisy choice on few rows (on
    bench/pfn_tabular.py's splits it had the lower test NLL in 9 of 12 cells, the other 3
    within 0.01). ``([1.0], [1.0])`` when
    no row is scored."""
    if not any(np.any(seen) for seen in fold_seen):
        return np.ones(1), np.ones(1)
    nll = held_out_nll(fold_logits, fold_labels, fold_seen, untransform, grid)
    w = np.exp(-(nll - nll.min()))
    w /= w.sum()
    keep = w >= min(min_weight, w.max())
    return np.asarray(grid)[keep], w[keep] / w[keep].sum()


def mixture_proba(member_logits, temperatures, weights, untransform=None) -> np.ndarray:
    """Class probabilities ``(n, C)``: :func:`tempered_proba` mixed over ``temperatures`` with
    ``weights``."""
    return sum(w * tempered_proba(member_logits, t, untransform)
               for t, w in zip(temperatures, weights))
