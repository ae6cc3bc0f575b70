"""Latent-variable neural processes: NP (Garnelo et al. 2018b) and ANP (Kim et al. 2019), a
deterministic path plus a global latent ``z`` with ``q(z | C) = N(mu(C), sigma(C)^2)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from neural_processes.base import GaussianDecoder, NeuralProcess
from neural_processes.layers import MLP, SelfAttention, masked_mean
from neural_processes.likelihood import gaussian_logpdf
from pde_data.points import PointSets


class LatentEncoder(nnx.Module):
    """``q(z | S)``: per-point MLP (+ self-attention for the ANP), masked mean, MLP to the mean
    and std (std ``0.1 + 0.9 sigmoid``, the ANP parametrisation)."""

    def __init__(self, x_dim: int, y_dim: int, width: int, depth: int, heads: int,
                 attention: bool, *, rngs: nnx.Rngs):
        self.encoder = MLP(x_dim + y_dim, width, width, depth, rngs=rngs)
        self.self_att = SelfAttention(width, heads, rngs=rngs) if attention else None
        self.head = MLP(width, width, 2 * width, 2, rngs=rngs)

    def __call__(self, x, y, mask) -> tuple[jax.Array, jax.Array]:
        h = self.encoder(jnp.concatenate([x, y], axis=-1))
        if self.self_att is not None:
            h = self.self_att(h, mask)
        mu, raw = jnp.split(self.head(masked_mean(h, mask)), 2, axis=-1)
        return mu, 0.1 + 0.9 * jax.nn.sigmoid(raw)


def gaussian_kl(mu_q, s_q, mu_p, s_p) -> jax.Array:
    """``KL(N(mu_q, s_q^2) || N(mu_p, s_p^2))`` summed over the last axis."""
    return jnp.sum(jnp.log(s_p / s_q) + (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2) - 0.5,
                   axis=-1)


class NP(NeuralProcess):
    """Neural process with deterministic and latent paths; trained with the conditional ELBO
    ``E_{q(z|D)} log p(y_D | x_D, C, z) - KL(q(z|D) || q(z|C))`` (Garnelo et al. 2018b, Eq. 7;
    Kim et al. 2019, Eq. 2), per point. Prediction averages over ``z ~ q(z | C)``."""

    name = "np"
    stochastic = True

    def __init__(self, x_dim: int = 1, y_dim: int = 1, *, rngs: nnx.Rngs, **kw):
        super().__init__(x_dim, y_dim, rngs=rngs, **kw)
        self.latent = LatentEncoder(self.x_dim, self.y_dim, self.width, self.enc_depth,
                                    self.heads, self.attention, rngs=rngs)
        self.decoder = GaussianDecoder(self.x_dim, 2 * self.width, self.y_dim, self.width,
                                       self.dec_depth, self.min_std, rngs=rngs)

    def _decode(self, xc, yc, mc, xt, z):
        r = self.det.aggregate(self.det.represent(xc, yc, mc), xt)  # (B, Nt, w)
        r = jnp.broadcast_to(r, (z.shape[0], *r.shape))
        zt = jnp.broadcast_to(z[..., None, :], (*r.shape[:-1], z.shape[-1]))
        return self.decoder(xt, jnp.concatenate([r, zt], axis=-1))

    def predictive(self, xc, yc, mc, xt, key, num_samples: int):
        mu, s = self.latent(xc, yc, mc)
        z = mu + s * jax.random.normal(key, (num_samples, *mu.shape))
        return self._decode(xc, yc, mc, xt, z)

    def loss(self, batch: PointSets, key: jax.Array):
        m_all = batch.mask_all
        mu_d, s_d = self.latent(batch.x, batch.y, m_all)
        mu_c, s_c = self.latent(batch.x, batch.y, batch.mask_context)
        z = mu_d + s_d * jax.random.normal(key, (1, *mu_d.shape))
        mean, std = self._decode(batch.x, batch.y, batch.mask_context, batch.x, z)
        recon = jnp.sum(gaussian_logpdf(batch.y, mean[0], std[0]) * m_all, axis=-1)
        kl = gaussian_kl(mu_d, s_d, mu_c, s_c)
        n = jnp.maximum(jnp.sum(m_all, axis=-1), 1.0)
        return -jnp.mean((recon - kl) / n), {"kl": jnp.mean(kl / n)}


class ANP(NP):
    """Attentive neural process (Kim et al. 2019): self-attention in both paths and
    cross-attention from the targets in the deterministic path."""

    name = "anp"
    attention = True
