"""The Gaussian predictive likelihood of every neural process, its minimum-std link, and the
log-mean-exp over samples used for latent, bootstrap and martingale models."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def std_from_raw(raw: jax.Array, min_std: float) -> jax.Array:
    """Predictive std ``min_std + (1 - min_std) softplus(raw)`` (the BNP / NPF convention): the
    floor keeps the likelihood bounded when a model overfits its context."""
    return min_std + (1.0 - min_std) * jax.nn.softplus(raw)


def gaussian_logpdf(y: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """Log density of independent Gaussians, summed over the last (output) axis."""
    z = (y - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * math.log(2 * math.pi), axis=-1)


def logmeanexp(a: jax.Array, axis: int = 0) -> jax.Array:
    """``log mean_k exp(a_k)`` along ``axis``, computed stably."""
    return jax.scipy.special.logsumexp(a, axis=axis) - math.log(a.shape[axis])


def masked_sum(a: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum over the last (point) axis counting only ``mask``."""
    return jnp.sum(a * mask.astype(a.dtype), axis=-1)


def masked_point_mean(a: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the last (point) axis counting only ``mask``; 0 where the mask is empty."""
    m = mask.astype(a.dtype)
    return jnp.sum(a * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)


def mixture_moments(mean: jax.Array, std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and std of the equal-weight mixture over the leading (sample) axis."""
    m = jnp.mean(mean, axis=0)
    var = jnp.mean(std**2 + mean**2, axis=0) - m**2
    return m, jnp.sqrt(jnp.maximum(var, 0.0))


def per_point_draws(sampler, key: jax.Array, lead: tuple, n_points: int, tail: tuple = ()
                    ) -> jax.Array:
    """Random draws of shape ``(*lead, n_points, *tail)`` where point ``j`` uses
    ``fold_in(key, j)``: the draws of the first points do not depend on how many padding points
    follow, so padding never changes a stochastic prediction."""
    keys = jax.vmap(lambda j: jax.random.fold_in(key, j))(jnp.arange(n_points))
    draws = jax.vmap(lambda k: sampler(k, (*lead, *tail)))(keys)  # (n, *lead, *tail)
    return jnp.moveaxis(draws, 0, len(lead))
