"""Attention as an integral over the domain (Kovachki et al. 2023, Sec. 5.2; Berner et al. 2025:
"attention -> integral with quadrature weights").

Self-attention of a field ``u`` on a grid is the quadrature of the integral operator

    (A u)(x) = int exp(q(x) . k(y) / sqrt(d)) v(y) dy / int exp(q(x) . k(y) / sqrt(d)) dy,

with pointwise ``q, k, v`` (linear maps of ``u(x)``) per head. Plain softmax attention weights
every point equally, which is the rectangle rule on a periodic grid but not on a node grid;
here the softmax carries the quadrature weights ``w_j`` (trapezoid on node grids, rectangle on
periodic ones): ``softmax_j(s_ij + log w_j)``. The output at a point therefore converges to the
integral operator as the grid is refined (second order for smooth fields), whatever the grid.

``kind="softmax"`` costs ``O(N^2)`` for ``N`` grid points (queries are processed in chunks of
``chunk`` points, recomputed in the backward pass, to bound memory). ``kind="linear"`` uses the
positive feature map ``phi = elu + 1`` in place of the exponential kernel,
``(A u)(x) = phi(q(x)) . int phi(k(y)) v(y)^T dy / phi(q(x)) . int phi(k(y)) dy``, the same
quadrature at ``O(N d^2)`` cost (Katharopoulos et al. 2020). ``param_dtype`` / ``dtype``: the
parameter and computation dtypes (None: the input's).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .conv import as_dtype
from .grid import quadrature_weights
from .pointwise import Pointwise

__all__ = ["KINDS", "IntegralAttention", "domain_weights"]

KINDS = ("softmax", "linear")


@functools.lru_cache(maxsize=128)
def _weights(shape: tuple, periodic: bool) -> np.ndarray:
    w = np.ones(())
    for n in shape:
        w = np.multiply.outer(w, quadrature_weights(n, periodic))
    w = w.reshape(-1)
    w.setflags(write=False)
    return w


def domain_weights(shape, periodic: bool) -> np.ndarray:
    """Flattened product quadrature weights of a grid (they sum to 1)."""
    return _weights(tuple(int(n) for n in shape), bool(periodic)).copy()


class IntegralAttention(nnx.Module):
    """Multi-head attention ``(b, *n, c) -> (b, *n, c)`` as a quadrature over the domain."""

    def __init__(self, channels: int, heads: int = 4, *, periodic: bool = False, kind: str = "softmax",
                 chunk: int = 1024, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        if kind not in KINDS:
            raise ValueError(f"unknown attention kind {kind!r}; choose from {KINDS}")
        self.channels, self.heads, self.periodic, self.kind = channels, heads, bool(periodic), kind
        self.chunk, self.dtype = int(chunk), dtype
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.q = Pointwise(channels, channels, **kw)
        self.k = Pointwise(channels, channels, **kw)
        self.v = Pointwise(channels, channels, **kw)
        self.out = Pointwise(channels, channels, **kw)

    def __call__(self, x):
        x = as_dtype(x, self.dtype)
        b, shape, c = x.shape[0], x.shape[1:-1], x.shape[-1]
        if c != self.channels:
            raise ValueError(f"IntegralAttention expects {self.channels} channels last, got shape {tuple(x.shape)}")
        n, h = math.prod(shape), self.heads
        w = jnp.asarray(_weights(tuple(int(s) for s in shape), self.periodic), x.dtype)
        q, k, v = (f(x).reshape(b, n, h, c // h) for f in (self.q, self.k, self.v))
        if self.kind == "linear":
            fq, fk = jax.nn.elu(q) + 1.0, jax.nn.elu(k) + 1.0
            kv = jnp.einsum("bkhd,bkhe,k->bhde", fk, v, w)
            z = jnp.einsum("bkhd,k->bhd", fk, w)
            o = jnp.einsum("bqhd,bhde->bqhe", fq, kv) / jnp.einsum("bqhd,bhd->bqh", fq, z)[..., None]
        else:
            o = self._softmax(q, k, v, jnp.log(w))
        return self.out(o.reshape(x.shape))

    def _softmax(self, q, k, v, logw):
        scale = float(1.0 / np.sqrt(q.shape[-1]))
        b, n, h, d = q.shape
        q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # (b, h, n, d): batched matrix products

        def attend(qc):
            s = jnp.einsum("bhqd,bhkd->bhqk", qc, k) * scale + logw
            return jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(s, axis=-1), v)

        if n <= self.chunk:
            o = attend(q)
        else:
            m = -(-n // self.chunk)
            qp = jnp.pad(q, [(0, 0), (0, 0), (0, m * self.chunk - n), (0, 0)])
            qs = jnp.moveaxis(qp.reshape(b, h, m, self.chunk, d), 2, 0)
            o = jax.lax.map(jax.checkpoint(attend), qs)  # (m, b, h, chunk, d)
            o = jnp.moveaxis(o, 0, 2).reshape(b, h, m * self.chunk, d)[:, :, :n]
        return jnp.swapaxes(o, 1, 2)
