"""Neural bootstrapping neural processes, NeuBNP and NeuBANP (the bootstrap baseline of the MPNP
paper): the context representations are reweighted by ``n * Dirichlet(1, ..., 1)`` weights
(a Bayesian bootstrap), one weight vector per sample, instead of resampling the context."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from neural_processes.base import ContextRep, GaussianDecoder, NeuralProcess
from neural_processes.likelihood import gaussian_logpdf, logmeanexp, per_point_draws
from pde_data.points import PointSets


def dirichlet_weights(key: jax.Array, mask: jax.Array, num_samples: int) -> jax.Array:
    """``(samples, *mask.shape)`` weights ``n * Dir(1, ..., 1)`` on the real points (0 on
    padding), drawn as normalised Exp(1) variables so padding does not change them."""
    g = per_point_draws(jax.random.exponential, key, (num_samples, *mask.shape[:-1]),
                        mask.shape[-1]) * mask
    n = jnp.sum(mask, axis=-1, keepdims=True)
    return g / jnp.maximum(jnp.sum(g, axis=-1, keepdims=True), 1e-12) * n


class NeuBNP(NeuralProcess):
    """CNP whose context representations are multiplied by bootstrap weights ``w_i``. Loss: the
    log-mean-exp over ``K`` weight draws of the ``w``-weighted context log-likelihood, plus the
    same for the target log-likelihood, per point."""

    name = "neubnp"
    stochastic = True

    def __init__(self, x_dim: int = 1, y_dim: int = 1, *, train_samples: int = 10,
                 rngs: nnx.Rngs, **kw):
        super().__init__(x_dim, y_dim, rngs=rngs, **kw)
        if train_samples < 1:
            raise ValueError(f"train_samples must be >= 1, got {train_samples}")
        self.train_samples = int(train_samples)
        self.decoder = GaussianDecoder(self.x_dim, self.width, self.y_dim, self.width,
                                       self.dec_depth, self.min_std, rngs=rngs)

    def extra_config(self):
        return {"train_samples": self.train_samples}

    def _weighted(self, xc, yc, mc, xt, key, num_samples):
        rep = self.det.represent(xc, yc, mc)
        w = dirichlet_weights(key, mc, num_samples)
        rep = ContextRep(rep.keys, rep.values[None] * w[..., None], mc)
        mean, std = self.decoder(xt, self.det.aggregate(rep, xt))
        return mean, std, w

    def predictive(self, xc, yc, mc, xt, key, num_samples: int):
        mean, std, _ = self._weighted(xc, yc, mc, xt, key, num_samples)
        return mean, std

    def loss(self, batch: PointSets, key: jax.Array):
        mean, std, w = self._weighted(batch.x, batch.y, batch.mask_context, batch.x, key,
                                      self.train_samples)
        lp = gaussian_logpdf(batch.y, mean, std)  # (K, B, N)
        ll_c = logmeanexp(jnp.sum(lp * w * batch.mask_context, axis=-1), axis=0)
        ll_t = logmeanexp(jnp.sum(lp * batch.mask_target, axis=-1), axis=0)
        n = jnp.maximum(jnp.sum(batch.mask_all, axis=-1), 1.0)
        return -jnp.mean((ll_c + ll_t) / n), {}


class NeuBANP(NeuBNP):
    """NeuBNP on the attentive (CANP) backbone."""

    name = "neubanp"
    attention = True
