"""Stationary covariance functions for the GP priors (Rasmussen & Williams 2006, ch. 4).

Every kernel has the signature ``k(x1 (..., n, d), x2 (..., m, d), lengthscale, outputscale)
-> (..., n, m)``, broadcasts over the leading batch axes ``...``, and is jit/vmap/grad friendly.
Hyperparameters are scalars or arrays broadcastable to the batch shape ``...`` (one value per
dataset, as a hyper-prior draws them). The lengthscale is isotropic (one shared by every input
dimension) unless ``ard=True``: then it has shape ``(..., d)``, one lengthscale per input
dimension (automatic relevance determination, R&W eq. 5.2: ``r^2 = sum_d (x_d - x'_d)^2 / l_d^2``
replaces ``|x - x'|^2 / l^2``). ``periodic`` also takes ``period``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax.numpy as jnp

__all__ = [
    "KERNELS",
    "get_kernel",
    "matern12",
    "matern32",
    "matern52",
    "periodic",
    "rbf",
    "squared_distance",
]


def _batch_param(value, like: jnp.ndarray) -> jnp.ndarray:
    """A hyperparameter of batch shape ``...`` as ``(..., 1, 1)`` so it scales ``(..., n, m)``."""
    return jnp.asarray(value, dtype=like.dtype)[..., None, None]


def squared_distance(x1: jnp.ndarray, x2: jnp.ndarray) -> jnp.ndarray:
    """Pairwise ``|x1_i - x2_j|^2`` of ``(..., n, d)`` and ``(..., m, d)``: ``(..., n, m)``.

    Computed from the differences (not the ``|a|^2 + |b|^2 - 2ab`` expansion) so it is exactly
    zero on the diagonal and never negative.
    """
    diff = x1[..., :, None, :] - x2[..., None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def _safe_distance(sq: jnp.ndarray) -> jnp.ndarray:
    """sqrt with a finite gradient at zero distance (double-where)."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _ard_lengthscale(lengthscale, like: jnp.ndarray) -> jnp.ndarray:
    """An ARD lengthscale ``(..., d)`` as ``(..., 1, 1, d)`` so it scales the pairwise
    differences ``(..., n, m, d)``; a scalar is one lengthscale for every dimension."""
    ls = jnp.asarray(lengthscale, dtype=like.dtype)
    if ls.ndim and ls.shape[-1] not in (1, like.shape[-1]):
        raise ValueError(f"an ARD lengthscale has one value per input dimension: last axis "
                         f"{ls.shape[-1]}, inputs have {like.shape[-1]}")
    return ls[..., None, None, :] if ls.ndim else ls


def _scaled_sq(x1, x2, lengthscale, ard=False):
    """``sum_d (x1_d - x2_d)^2 / l_d^2`` (ARD) or ``|x1 - x2|^2 / l^2``: ``(..., n, m)``."""
    x1 = jnp.asarray(x1)
    x2 = jnp.asarray(x2, dtype=x1.dtype)
    if ard:
        diff = (x1[..., :, None, :] - x2[..., None, :, :]) / _ard_lengthscale(lengthscale, x1)
        return jnp.sum(diff * diff, axis=-1)
    return squared_distance(x1, x2) / _batch_param(lengthscale, x1) ** 2


def rbf(x1, x2, lengthscale=1.0, outputscale=1.0, ard=False):
    """Squared exponential ``s exp(-r^2 / (2 l^2))`` (R&W eq. 4.9)."""
    sq = _scaled_sq(x1, x2, lengthscale, ard)
    return _batch_param(outputscale, sq) * jnp.exp(-0.5 * sq)


def matern12(x1, x2, lengthscale=1.0, outputscale=1.0, ard=False):
    """Matern nu=1/2 (exponential / Ornstein-Uhlenbeck) ``s exp(-r / l)`` (R&W eq. 4.14)."""
    r = _safe_distance(_scaled_sq(x1, x2, lengthscale, ard))
    return _batch_param(outputscale, r) * jnp.exp(-r)


def matern32(x1, x2, lengthscale=1.0, outputscale=1.0, ard=False):
    """Matern nu=3/2 ``s (1 + sqrt3 r/l) exp(-sqrt3 r/l)`` (R&W eq. 4.17)."""
    r = jnp.sqrt(3.0) * _safe_distance(_scaled_sq(x1, x2, lengthscale, ard))
    return _batch_param(outputscale, r) * (1.0 + r) * jnp.exp(-r)


def matern52(x1, x2, lengthscale=1.0, outputscale=1.0, ard=False):
    """Matern nu=5/2 ``s (1 + sqrt5 r/l + 5r^2/(3l^2)) exp(-sqrt5 r/l)`` (R&W eq. 4.17)."""
    sq = _scaled_sq(x1, x2, lengthscale, ard)
    r = jnp.sqrt(5.0) * _safe_distance(sq)
    return _batch_param(outputscale, r) * (1.0 + r + (5.0 / 3.0) * sq) * jnp.exp(-r)


def periodic(x1, x2, lengthscale=1.0, outputscale=1.0, period=1.0, ard=False):
    """Exp-sine-squared ``s exp(-2 sum_d sin^2(pi |x_d - x'_d| / p) / l^2)`` (R&W eq. 4.31;
    the sum over input dimensions is the product of 1-D periodic kernels; with ``ard`` each
    dimension's term is divided by its own ``l_d^2``)."""
    x1 = jnp.asarray(x1)
    x2 = jnp.asarray(x2, dtype=x1.dtype)
    diff = x1[..., :, None, :] - x2[..., None, :, :]
    p = jnp.asarray(period, dtype=x1.dtype)[..., None, None, None]
    s2 = jnp.sin(jnp.pi * diff / p) ** 2
    if ard:
        s2 = jnp.sum(s2 / _ard_lengthscale(lengthscale, x1) ** 2, axis=-1)
        return _batch_param(outputscale, s2) * jnp.exp(-2.0 * s2)
    s2 = jnp.sum(s2, axis=-1)
    return _batch_param(outputscale, s2) * jnp.exp(-2.0 * s2 / _batch_param(lengthscale, s2) ** 2)


KERNELS: dict[str, Callable] = {
    "rbf": rbf,
    "matern12": matern12,
    "matern32": matern32,
    "matern52": matern52,
    "periodic": periodic,
}


def get_kernel(name: str, **hyperparameters) -> Callable:
    """The kernel called ``name`` with ``hyperparameters`` bound: ``k(x1, x2) -> (..., n, m)``.

    Unknown names raise a ``ValueError`` listing the available kernels.
    """
    try:
        fn = KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; available: {', '.join(KERNELS)}") from None
    return partial(fn, **hyperparameters)
