"""Hyper-priors for GP hyperparameters: Gamma in (shape, rate) form.

The PFN paper's GP hyper-prior (Mueller et al. 2022, section 5.1; the BoTorch defaults its
code uses through GPyTorch ``GammaPrior(concentration, rate)``) puts the Gamma directly on the
lengthscale and on the outputscale (the kernel variance), not on their squares or logs:
lengthscale ~ Gamma(3, rate 6) (mean 0.5), outputscale ~ Gamma(2, rate 0.15) (mean 13.3),
noise variance ~ Gamma(1e-4, rate 1) floored at 1e-4 (so in practice almost always 1e-4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_gamma(key, shape_rate: tuple[float, float], batch_shape, floor: float = 0.0):
    """Draws of Gamma(shape, rate) (density ∝ x^(shape-1) e^(-rate x)), at least ``floor``."""
    shape, rate = shape_rate
    draw = jax.random.gamma(key, jnp.float32(shape), batch_shape, dtype=jnp.float32) / rate
    return jnp.maximum(draw, floor)


def gamma_log_density(x, shape_rate: tuple[float, float]):
    """log Gamma(x; shape, rate) for MAP / diagnostics."""
    a, b = shape_rate
    return a * jnp.log(b) - jax.scipy.special.gammaln(a) + (a - 1) * jnp.log(x) - b * x
