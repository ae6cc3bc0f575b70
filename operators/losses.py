"""Relative L2 and H1 errors of fields ``(batch, *spatial, channels)``, per sample or averaged.

Norms are integrals over the unit cube approximated with per-axis quadrature (rectangle rule on
periodic grids, trapezoid on node grids; the overall scale cancels in the ratio), taken jointly
over all channels of a sample: ``rel(pred, true) = ||pred - true|| / ||true||``, then averaged
over the batch (the MgNO/neuraloperator convention, mean instead of sum).

H1 norms ``||u||^2 + ||grad u||^2``:

* ``kind="spectral"``: Parseval with the FFT of the field, ``sum_k (1 + |2 pi k|^2) |u_k|^2``
  (the MgNO code's ``HsLoss`` uses integer wavenumbers ``|k|`` and keeps the weight only for
  ``|k| < 20``: :func:`mgno_rel_h1`, i.e. ``two_pi=False, k_max=20``); exact for periodic fields.
* ``kind="fd"``: finite differences, second-order central inside, second-order one-sided at the
  ends of a node grid (``periodic=False``) or wrapped (``periodic=True``), with quadrature.

The MgNO code's Helmholtz loss (``HSloss_d``) is an *absolute* discrete H1 norm of the error,
``sqrt(sum_grid 10 e^2 + |grad_h e|^2)`` per sample: :func:`mgno_helmholtz_h1`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .layers.grid import quadrature_weights, spacing

__all__ = [
    "h1_norm_sq",
    "l2_norm_sq",
    "mgno_helmholtz_h1",
    "mgno_rel_h1",
    "rel_h1",
    "rel_h1_per_sample",
    "rel_l2",
    "rel_l2_per_sample",
]


def _check(pred, true):
    if pred.shape != true.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(true.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"fields must be (batch, *spatial, channels) with >= 1 spatial axis, got shape "
                         f"{tuple(pred.shape)}")


def _weights(shape, periodic: bool | None, dtype):
    """Tensor-product quadrature weights of the spatial grid, shape ``(1, *spatial, 1)``."""
    w = jnp.ones((), dtype)
    for n in shape:
        q = (np.full(n, 1.0 / n) if periodic is None else quadrature_weights(n, periodic))
        w = w[..., None] * jnp.asarray(q, dtype)
    return w[None, ..., None]


def l2_norm_sq(u, periodic: bool | None = None):
    """``∫ |u|^2`` per sample (summed over channels); ``periodic=None``: rectangle rule."""
    w = _weights(u.shape[1:-1], periodic, u.dtype)
    return jnp.sum(w * jnp.abs(u) ** 2, axis=tuple(range(1, u.ndim)))


def _ratio(num, den):
    return jnp.sqrt(num / den)


def rel_l2_per_sample(pred, true, periodic: bool | None = None):
    """Relative L2 error of each sample, shape ``(batch,)``."""
    _check(pred, true)
    return _ratio(l2_norm_sq(pred - true, periodic), l2_norm_sq(true, periodic))


def rel_l2(pred, true, periodic: bool | None = None):
    """Batch mean of the relative L2 error."""
    return jnp.mean(rel_l2_per_sample(pred, true, periodic))


@functools.lru_cache(maxsize=64)
def _wavenumbers(n: int) -> np.ndarray:
    return np.fft.fftfreq(n, d=1.0 / n)  # integer wavenumbers 0, 1, ..., -1


def _spectral_h1_sq(u, two_pi: bool, k_max: int | None):
    axes = tuple(range(1, u.ndim - 1))
    n_tot = int(np.prod(u.shape[1:-1]))
    uf = jnp.fft.fftn(u, axes=axes) / n_tot  # Fourier coefficients of the periodic function
    weight = np.zeros(u.shape[1:-1])
    for i, n in enumerate(u.shape[1:-1]):
        k = np.abs(_wavenumbers(n))
        if k_max is not None:
            k = k * (k < k_max)
        if two_pi:
            k = 2 * np.pi * k
        shape = [1] * len(axes)
        shape[i] = n
        weight = weight + (k**2).reshape(shape)
    w = jnp.asarray(1.0 + weight, u.real.dtype)[None, ..., None]
    return jnp.sum(w * jnp.abs(uf) ** 2, axis=tuple(range(1, u.ndim)))


def _gradient(u, axis: int, periodic: bool):
    """Second-order finite-difference derivative of ``u`` along ``axis`` on the unit grid."""
    n = u.shape[axis]
    h = spacing(n, periodic)
    if periodic:
        return (jnp.roll(u, -1, axis) - jnp.roll(u, 1, axis)) / (2 * h)
    if n < 3:
        raise ValueError(f"finite-difference H1 needs >= 3 points per axis, got {n}")
    sl = lambda a, b: jax.lax.slice_in_dim(u, a, b, axis=axis)
    inner = (sl(2, n) - sl(0, n - 2)) / (2 * h)
    first = (-3 * sl(0, 1) + 4 * sl(1, 2) - sl(2, 3)) / (2 * h)
    last = (3 * sl(n - 1, n) - 4 * sl(n - 2, n - 1) + sl(n - 3, n - 2)) / (2 * h)
    return jnp.concatenate([first, inner, last], axis=axis)


def h1_norm_sq(u, kind: str = "spectral", periodic: bool | None = None, *, two_pi: bool = True,
               k_max: int | None = None):
    """``∫ |u|^2 + |grad u|^2`` per sample (summed over channels)."""
    if kind == "spectral":
        return _spectral_h1_sq(u, two_pi, k_max)
    if kind == "fd":
        p = True if periodic is None else bool(periodic)
        total = l2_norm_sq(u, p)
        for ax in range(1, u.ndim - 1):
            total = total + l2_norm_sq(_gradient(u, ax, p), p)
        return total
    raise ValueError(f"unknown H1 kind {kind!r}; choose 'spectral' or 'fd'")


def rel_h1_per_sample(pred, true, kind: str = "spectral", periodic: bool | None = None, *,
                      two_pi: bool = True, k_max: int | None = None):
    """Relative H1 error of each sample, shape ``(batch,)``. ``periodic`` picks the finite-difference
    stencil and quadrature (``kind="fd"``; default periodic); the spectral kind is periodic."""
    _check(pred, true)
    kw = {"two_pi": two_pi, "k_max": k_max}
    return _ratio(h1_norm_sq(pred - true, kind, periodic, **kw), h1_norm_sq(true, kind, periodic, **kw))


def rel_h1(pred, true, kind: str = "spectral", periodic: bool | None = None, *, two_pi: bool = True,
           k_max: int | None = None):
    """Batch mean of the relative H1 error."""
    return jnp.mean(rel_h1_per_sample(pred, true, kind, periodic, two_pi=two_pi, k_max=k_max))


def mgno_rel_h1(pred, true, periodic: bool | None = None):
    """The training loss of the MgNO code (``HsLoss(k=1)``), batch mean.

    ``periodic`` True or None (the reference): spectral, integer wavenumbers, the derivative
    weight kept for ``|k| < 20`` only. ``periodic=False`` (node grid: the FFT would see the jump
    between the two ends as a discontinuity): finite differences on the node grid with the same
    balance of value and gradient as integer wavenumbers, ``||u||^2 + ||grad u||^2 / (2 pi)^2``.
    """
    if periodic is None or periodic:
        return rel_h1(pred, true, "spectral", two_pi=False, k_max=20)
    _check(pred, true)

    def norm_sq(u):
        total = l2_norm_sq(u, False)
        for ax in range(1, u.ndim - 1):
            total = total + l2_norm_sq(_gradient(u, ax, False), False) / (2 * np.pi) ** 2
        return total

    return jnp.mean(_ratio(norm_sq(pred - true), norm_sq(true)))


def _reference_gradient(u, axis: int):
    """``torch.gradient(u, spacing=1/n, dim=axis)`` (= ``numpy.gradient``, ``edge_order=1``)
    with ``n`` the points of the axis: central differences inside, first-order one-sided at the
    two ends. (The reference takes ``1/n`` as the spacing of its 101-point node grid, whose
    spacing is ``1/(n-1)``: kept, it is part of its loss.)"""
    n = u.shape[axis]
    if n < 2:
        raise ValueError(f"the Helmholtz H1 loss needs >= 2 points per axis, got {n}")
    h = 1.0 / n
    sl = lambda a, b: jax.lax.slice_in_dim(u, a, b, axis=axis)
    first = (sl(1, 2) - sl(0, 1)) / h
    last = (sl(n - 1, n) - sl(n - 2, n - 1)) / h
    if n == 2:
        return jnp.concatenate([first, last], axis=axis)
    inner = (sl(2, n) - sl(0, n - 2)) / (2 * h)
    return jnp.concatenate([first, inner, last], axis=axis)


def mgno_helmholtz_h1_per_sample(pred, true, l2_weight: float = 10.0):
    """The MgNO code's Helmholtz loss of each sample, shape ``(batch,)``: with ``e = pred - true``,
    ``sqrt(sum_{grid, channels} l2_weight e^2 + sum_axes (d_h e)^2)``, ``d_h`` the reference's
    finite difference (:func:`_reference_gradient`). Absolute (not relative) and a plain sum
    over grid points (no quadrature weights), as the reference computes it."""
    _check(pred, true)
    e = pred - true
    total = l2_weight * jnp.abs(e) ** 2
    for ax in range(1, e.ndim - 1):
        total = total + jnp.abs(_reference_gradient(e, ax)) ** 2
    return jnp.sqrt(jnp.sum(total, axis=tuple(range(1, e.ndim))))


def mgno_helmholtz_h1(pred, true, l2_weight: float = 10.0):
    """The training loss of the MgNO code on Helmholtz (``HSloss_d`` of its ``utilities3.py``),
    batch mean of :func:`mgno_helmholtz_h1_per_sample`."""
    return jnp.mean(mgno_helmholtz_h1_per_sample(pred, true, l2_weight))
