"""Gaussian-process sampling, exact posterior predictive and log marginal likelihood.

Batched over leading axes ``...`` with a Cholesky factorisation (Rasmussen & Williams 2006,
Algorithm 2.1). ``kernel_fn(x1, x2) -> (..., n, m)`` is a stationary kernel of two point sets, e.g.
``functools.partial(kernels.rbf, lengthscale=0.1)`` or ``kernels.get_kernel("rbf", ...)``.
``y`` values are ``(..., n)`` (one output). Optional boolean ``mask`` ``(..., n)`` marks the
real points of a padded set: padded points are decoupled (unit diagonal, zero covariance,
zero target) so they change neither the posterior nor the likelihood.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = ["gp_log_marginal_likelihood", "gp_posterior", "sample_gp"]

LOG_2PI = 1.8378770664093453


def _after(x, *earlier):
    """``x``, made to wait for ``earlier`` results: orders LAPACK calls one after another.

    On CPU a batched LAPACK call runs on an intra-op pool worker, fans its batch out to the
    same pool and waits for it; two independent calls that start together can hold every
    worker of a small (2-core) pool and wait forever. XLA runs independent operations
    concurrently whatever their order in the program, so only a data dependence serialises
    them: ``x`` plus zero times one (finite) element of each earlier result.
    """
    for e in earlier:
        x = x + 0.0 * jnp.nan_to_num(jnp.ravel(e)[0]).astype(x.dtype)
    return x


def _noisy_cov(x, kernel_fn, noise_var, jitter, mask=None):
    """``K(x, x) + (noise + jitter) I`` with padded points decoupled: (..., n, n)."""
    k = kernel_fn(x, x)
    n = k.shape[-1]
    eye = jnp.eye(n, dtype=k.dtype)
    diag = jnp.asarray(noise_var, k.dtype)[..., None] + jitter
    diag = jnp.broadcast_to(diag, k.shape[:-1])
    if mask is not None:
        pair = mask[..., :, None] & mask[..., None, :]
        k = jnp.where(pair, k, 0.0)
        diag = jnp.where(mask, diag, 1.0)
    return k + eye * diag[..., None]


def sample_gp(
    key: jax.Array,
    x: jnp.ndarray,
    kernel_fn: Callable,
    noise_var=0.0,
    jitter: float = 1e-6,
) -> jnp.ndarray:
    """Draw ``y = f(x) + eps`` with ``f ~ GP(0, k)``, ``eps ~ N(0, noise_var)``: (..., n).

    ``x`` is ``(..., n, d)``; ``noise_var`` a scalar or batch-shaped ``(...)``; ``jitter`` is
    added to the diagonal so the Cholesky factor exists in float32.
    """
    x = jnp.asarray(x)
    cov = _noisy_cov(x, kernel_fn, noise_var, jitter)
    chol = jnp.linalg.cholesky(cov)
    eps = jax.random.normal(key, cov.shape[:-1], dtype=cov.dtype)
    return jnp.einsum("...ij,...j->...i", chol, eps)


def gp_posterior(
    x_ctx: jnp.ndarray,
    y_ctx: jnp.ndarray,
    x_tgt: jnp.ndarray,
    kernel_fn: Callable,
    noise_var,
    mask: jnp.ndarray | None = None,
    include_noise: bool = True,
    jitter: float = 1e-6,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Exact predictive ``(mean, var)`` at ``x_tgt`` (..., m) given a context (R&W eqs. 2.23-2.24).

    ``var`` is the variance of a noisy observation ``y`` when ``include_noise`` (the quantity a
    PFN predicts), else of the latent ``f``. ``mask`` (..., n) marks real context points.
    """
    x_ctx = jnp.asarray(x_ctx)
    y_ctx = jnp.asarray(y_ctx, x_ctx.dtype)
    x_tgt = jnp.asarray(x_tgt, x_ctx.dtype)
    cov = _noisy_cov(x_ctx, kernel_fn, noise_var, jitter, mask)
    k_star = kernel_fn(x_ctx, x_tgt)  # (..., n, m)
    if mask is not None:
        k_star = jnp.where(mask[..., :, None], k_star, 0.0)
        y_ctx = jnp.where(mask, y_ctx, 0.0)
    batch = jnp.broadcast_shapes(cov.shape[:-2], k_star.shape[:-2], y_ctx.shape[:-1])
    n = cov.shape[-1]
    cov = jnp.broadcast_to(cov, batch + (n, n))
    k_star = jnp.broadcast_to(k_star, batch + k_star.shape[-2:])
    y_ctx = jnp.broadcast_to(y_ctx, batch + (n,))
    chol = jnp.linalg.cholesky(_after(cov, y_ctx))  # y_ctx may itself come from a Cholesky
    v = solve_triangular(chol, k_star, lower=True)  # (..., n, m)
    w = solve_triangular(chol, _after(y_ctx, v)[..., None], lower=True)[..., 0]  # (..., n)
    mean = jnp.einsum("...nm,...n->...m", v, w)
    # Stationary kernels: k(x, x) = k(0) for every target (all kernels in ``kernels``).
    prior_var = kernel_fn(x_tgt[..., :1, :], x_tgt[..., :1, :])[..., 0, :]  # (..., 1)
    var = prior_var - jnp.sum(v * v, axis=-2)
    var = jnp.maximum(var, 0.0)
    if include_noise:
        var = var + jnp.asarray(noise_var, var.dtype)[..., None]
    return mean, var


def gp_log_marginal_likelihood(
    x: jnp.ndarray,
    y: jnp.ndarray,
    kernel_fn: Callable,
    noise_var,
    mask: jnp.ndarray | None = None,
    jitter: float = 1e-6,
) -> jnp.ndarray:
    """``log p(y | x)`` under ``GP(0, k)`` plus Gaussian noise, summed over points: (...,)
    (R&W eq. 2.30); only points with ``mask`` true count."""
    x = jnp.asarray(x)
    y = jnp.asarray(y, x.dtype)
    cov = _noisy_cov(x, kernel_fn, noise_var, jitter, mask)
    if mask is not None:
        y = jnp.where(mask, y, 0.0)
        n_real = jnp.sum(mask, axis=-1).astype(x.dtype)
    else:
        n_real = jnp.asarray(y.shape[-1], x.dtype)
    batch = jnp.broadcast_shapes(cov.shape[:-2], y.shape[:-1])
    n = cov.shape[-1]
    cov = jnp.broadcast_to(cov, batch + (n, n))
    y = jnp.broadcast_to(y, batch + (n,))
    chol = jnp.linalg.cholesky(_after(cov, y))
    alpha = solve_triangular(chol, y[..., None], lower=True)[..., 0]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * jnp.sum(alpha * alpha, axis=-1) - 0.5 * log_det - 0.5 * n_real * LOG_2PI
