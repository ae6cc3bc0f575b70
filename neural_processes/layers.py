"""Building blocks shared by every neural process: MLPs, masked multi-head attention and the
induced set attention block (ISAB, Lee et al. 2019, Eq. 9) used by the martingale generator.

Point sets are ``(batch, n_points, features)``; a ``mask`` of shape ``(batch, n_points)`` marks the
real points (1) and the padding (0). Padding never enters a pooled mean or an attention key, so a
padded batch gives the same prediction as the unpadded one.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    """``depth`` dense layers with ReLU between them (none after the last)."""

    def __init__(self, in_features: int, width: int, out_features: int, depth: int, *,
                 rngs: nnx.Rngs):
        if depth < 1:
            raise ValueError(f"MLP depth must be >= 1, got {depth}")
        sizes = [in_features] + [width] * (depth - 1) + [out_features]
        self.layers = getattr(nnx, "List", list)(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )

    def __call__(self, h: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        return h


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the point axis (-2) of ``values (..., n, d)`` counting only ``mask (..., n)``."""
    w = mask[..., None].astype(values.dtype)
    return jnp.sum(values * w, axis=-2) / jnp.maximum(jnp.sum(w, axis=-2), 1.0)


class MultiHeadAttention(nnx.Module):
    """Scaled dot-product attention (Vaswani et al. 2017) with a key mask, followed by the
    residual + feed-forward block used by the ANP (Kim et al. 2019)."""

    def __init__(self, q_features: int, kv_features: int, width: int, heads: int, *,
                 rngs: nnx.Rngs, v_features: int | None = None):
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nnx.Linear(q_features, width, use_bias=False, rngs=rngs)
        self.k = nnx.Linear(kv_features, width, use_bias=False, rngs=rngs)
        self.v = nnx.Linear(v_features or kv_features, width, use_bias=False, rngs=rngs)
        self.o = nnx.Linear(width, width, rngs=rngs)
        self.ff = nnx.Linear(width, width, rngs=rngs)
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)

    def __call__(self, query: jax.Array, key: jax.Array, value: jax.Array,
                 key_mask: jax.Array | None = None) -> jax.Array:
        *batch, nq, _ = query.shape
        h = self.heads
        q = self.q(query).reshape(*batch, nq, h, -1)
        k = self.k(key).reshape(*key.shape[:-1], h, -1)
        v = self.v(value).reshape(*value.shape[:-1], h, -1)
        logits = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(q.shape[-1])
        if key_mask is not None:
            m = key_mask[..., None, None, :].astype(bool)
            logits = jnp.where(m, logits, -1e30)
        att = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("...hqk,...khd->...qhd", att, v).reshape(*batch, nq, -1)
        out = self.norm1(self.q(query) + out)
        return self.norm2(out + jax.nn.relu(self.ff(out)))


class SelfAttention(nnx.Module):
    """Masked multi-head self-attention over a point set."""

    def __init__(self, features: int, heads: int, *, rngs: nnx.Rngs):
        self.att = MultiHeadAttention(features, features, features, heads, rngs=rngs)

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        return self.att(h, h, h, mask)


class ISAB(nnx.Module):
    """Induced set attention block (Set Transformer, Lee et al. 2019, Eq. 9):
    ``H = MAB(I, X)``, ``out = MAB(X, H)``; cost linear in the set size. Padded points of ``X``
    are masked out of the first step, so they never influence the real outputs."""

    def __init__(self, in_features: int, width: int, n_inducing: int, heads: int, *,
                 rngs: nnx.Rngs):
        self.inducing = nnx.Param(jax.random.normal(rngs.params(), (n_inducing, width)) * 0.1)
        self.mab1 = MultiHeadAttention(width, in_features, width, heads, rngs=rngs)
        self.mab2 = MultiHeadAttention(in_features, width, width, heads, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        ind = jnp.broadcast_to(self.inducing[...], (*x.shape[:-2], *self.inducing.shape))
        h = self.mab1(ind, x, x, mask)
        return self.mab2(x, h, h)
