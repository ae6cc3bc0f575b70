"""Conditional neural processes: CNP (Garnelo et al. 2018a) with mean pooling and CANP, its
attentive deterministic version (the deterministic path of the ANP, Kim et al. 2019)."""

from __future__ import annotations

import jax
from flax import nnx

from neural_processes.base import GaussianDecoder, NeuralProcess
from neural_processes.likelihood import gaussian_logpdf, masked_point_mean
from pde_data.points import PointSets


class CNP(NeuralProcess):
    """``p(y_t | x_t, C) = N(mu, sigma^2)`` from ``MLP([x_t, mean_i r_i])``; trained by the
    conditional log-likelihood of all points of the task (Garnelo et al. 2018a, Eq. 4)."""

    name = "cnp"

    def __init__(self, x_dim: int = 1, y_dim: int = 1, *, rngs: nnx.Rngs, **kw):
        super().__init__(x_dim, y_dim, rngs=rngs, **kw)
        self.decoder = GaussianDecoder(self.x_dim, self.width, self.y_dim, self.width,
                                       self.dec_depth, self.min_std, rngs=rngs)

    def predictive(self, xc, yc, mc, xt, key, num_samples: int = 1):
        r = self.det.aggregate(self.det.represent(xc, yc, mc), xt)
        mean, std = self.decoder(xt, r)
        return mean[None], std[None]

    def loss(self, batch: PointSets, key: jax.Array):
        mean, std = self.predictive(batch.x, batch.y, batch.mask_context, batch.x, key, 1)
        ll = masked_point_mean(gaussian_logpdf(batch.y, mean[0], std[0]), batch.mask_all)
        return -ll.mean(), {}


class CANP(CNP):
    """CNP with self-attention over the context and cross-attention to the targets."""

    name = "canp"
    attention = True
