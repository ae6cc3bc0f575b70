"""Test-time ensembles over the symmetries of a PFN's prior (TabPFN's ensembling).

A PFN approximates the posterior predictive of its prior. Where the prior is invariant under a
transformation g of the data (permuting exchangeable features, reflecting a stationary GP's
domain, renaming classes), the exact posterior predictive is too: p(y | g x, g D) = p(y | x, D).
The network is only approximately invariant, so averaging its predictive distributions over a
few random g (each member sees the transformed context and targets) cancels part of its
approximation error at the cost of one batched forward pass. Member 0 is always the identity,
so ``n_estimators=1`` is the plain network.

Which transformations are symmetries is a property of the prior (``symmetries``):

- ``permute_features``: every registered prior draws its used features exchangeably (i.i.d.
  inputs, isotropic or i.i.d.-ARD kernels, i.i.d. Gaussian network weights);
- ``reflect``: x_j -> 2 c - x_j per feature about the centre c of the prior's input law:
  GP priors (stationary kernels, x ~ U[0, 1]: c = 1/2) and the classification prior
  (x ~ N(0, 1), an RBF GP or a BNN with zero-mean Gaussian weights: c = 0); not the BNN
  regression prior (its inputs on [0, 1] meet non-centred biases);
- ``permute_classes``: the classification prior permutes class ids at random.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Members", "Symmetries", "draw_members", "symmetries"]


@dataclass(frozen=True)
class Symmetries:
    """The transformations a prior's datasets are invariant under (see the module doc)."""

    permute_features: bool = False
    reflect: bool = False
    centre: float = 0.0  # of the reflection, in the network's encoded input units
    permute_classes: bool = False


def symmetries(config: dict) -> Symmetries:
    """The symmetries of the prior a checkpoint was trained on (``config["prior"]``); a model
    trained on a data file (no prior) has none that can be assumed."""
    prior = config.get("prior")
    if not prior:
        return Symmetries()
    if config.get("task") == "classification":  # ClassificationPrior: x ~ N(0, 1)
        return Symmetries(permute_features=True, reflect=True, centre=0.0, permute_classes=True)
    if str(prior).startswith("gp"):  # GPPrior: x ~ U[0, 1]^d, stationary kernels
        return Symmetries(permute_features=True, reflect=True, centre=0.5)
    return Symmetries(permute_features=True)


@dataclass(frozen=True)
class Members:
    """k transformations of one dataset: ``feature_perm (k, d)`` (member i's column j is the
    data's column ``feature_perm[i, j]``), ``flip (k, d)`` (reflect that column), ``class_perm
    (k, C)`` (class c is shown to member i as ``class_perm[i, c]``)."""

    feature_perm: np.ndarray
    flip: np.ndarray
    class_perm: np.ndarray
    centre: float = 0.0

    def __len__(self) -> int:
        return len(self.feature_perm)

    def transform_x(self, Z):
        """``Z (n, d)`` encoded inputs -> ``(k, n, d)``, each member's view."""
        Zk = Z[:, self.feature_perm].transpose(1, 0, 2)  # (k, n, d)
        return np.where(self.flip[:, None, :], 2 * self.centre - Zk, Zk)

    def transform_y(self, codes):
        """``codes (n,)`` class ids -> ``(k, n)``, each member's names for them."""
        return np.take_along_axis(self.class_perm, np.broadcast_to(
            codes, (len(self), len(codes))), axis=1)

    def untransform_proba(self, proba):
        """``proba (k, n, C)`` in each member's class names -> the data's class order."""
        return np.take_along_axis(proba, self.class_perm[:, None, :], axis=2)


def draw_members(n_estimators: int, n_features: int, n_classes: int, sym: Symmetries,
                 rng: np.random.Generator) -> Members:
    """Up to ``n_estimators`` members, the first the identity, the rest drawn from ``rng``
    among the transformations ``sym`` allows: all distinct, so fewer where the data has fewer
    views (1-D regression: x and its reflection)."""
    if isinstance(n_estimators, bool) or not isinstance(n_estimators, (int, np.integer)) \
            or n_estimators < 1:
        raise ValueError(f"n_estimators must be a positive integer, got {n_estimators!r}")
    if n_estimators > 1 and not (sym.permute_features and n_features > 1) and not sym.reflect \
            and not (sym.permute_classes and n_classes > 1):
        raise ValueError("n_estimators > 1 needs a symmetry of the model's prior to average "
                         "over, and this model has none for this data (a model trained on a data "
                         "file, or one feature and no reflection): use n_estimators=1")
    k, d, c = int(n_estimators), int(n_features), max(int(n_classes), 1)
    kinds = [  # (allowed, how many, all of them with the identity first, a random one)
        (sym.permute_features, math.factorial(d), lambda: itertools.permutations(range(d)),
         lambda: tuple(rng.permutation(d))),
        (sym.reflect, 2 ** d, lambda: itertools.product((False, True), repeat=d),
         lambda: tuple(rng.random(d) < 0.5)),
        (sym.permute_classes, math.factorial(c), lambda: itertools.permutations(range(c)),
         lambda: tuple(rng.permutation(c))),
    ]
    identity = tuple(next(iter(every())) for _, _, every, _ in kinds)
    total = math.prod(count if allowed else 1 for allowed, count, _, _ in kinds)
    if total <= _ENUMERATE:
        # few transformations (low-dimensional data): the identity, then others in random
        # order, at most all of them
        every = list(itertools.product(*(list(all_()) if allowed else [ident] for
                                         (allowed, _, all_, _), ident in zip(kinds, identity))))
        order = [0, *(1 + rng.permutation(len(every) - 1))]
        chosen = [every[i] for i in order[:k]]
    else:  # many: the identity, then random ones (a repeat is improbable and harmless)
        chosen = [identity] + [tuple(draw() if allowed else ident for (allowed, _, _, draw), ident
                                     in zip(kinds, identity)) for _ in range(k - 1)]
    perm, flip, cls = (np.array([m[j] for m in chosen]) for j in range(3))
    k = len(chosen)
    return Members(perm.astype(np.intp).reshape(k, d), flip.astype(bool).reshape(k, d),
                   cls.astype(np.intp).reshape(k, c), sym.centre)


_ENUMERATE = 64  # list every transformation when there are at most this many
