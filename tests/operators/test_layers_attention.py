"""IntegralAttention: softmax (and linear) attention as a quadrature over the domain."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import IntegralAttention


def trapezoid(n, periodic):
    if periodic:
        return np.full(n, 1.0 / n)
    w = np.full(n, 1.0 / (n - 1))
    w[[0, -1]] /= 2
    return w


def affine(layer, u):
    return u @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)


def direct(att, u, periodic, kind):
    """Loops over the heads and point pairs of ``int k(x, y) v(y) dy / int k(x, y) dy``."""
    shape, c = u.shape[:-1], u.shape[-1]
    w = np.ones(())
    for n in shape:
        w = np.multiply.outer(w, trapezoid(n, periodic))
    w = w.reshape(-1)
    flat = u.reshape(-1, c)
    q, k, v = affine(att.q, flat), affine(att.k, flat), affine(att.v, flat)
    h, dh = att.heads, c // att.heads
    out = np.zeros_like(q)
    for head in range(h):
        sl = slice(head * dh, (head + 1) * dh)
        for i in range(len(flat)):
            if kind == "softmax":
                kern = np.exp(k[:, sl] @ q[i, sl] / np.sqrt(dh))
            else:
                phi = lambda a: np.where(a > 0, a + 1, np.exp(a))  # elu + 1
                kern = phi(k[:, sl]) @ phi(q[i, sl])
            out[i, sl] = (w * kern) @ v[:, sl] / (w * kern).sum()
    return affine(att.out, out).reshape(u.shape)


@pytest.mark.parametrize("kind, periodic, shape", [("softmax", False, (7, 5)), ("softmax", True, (12,)),
                                                   ("linear", False, (6, 4)), ("linear", True, (10,))])
def test_direct_quadrature(kind, periodic, shape):
    att = IntegralAttention(4, 2, periodic=periodic, kind=kind, rngs=nnx.Rngs(0))
    u = np.random.default_rng(0).normal(size=(*shape, 4))
    got = np.asarray(att(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(got, direct(att, u, periodic, kind), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_chunked_queries_are_exact_and_differentiable():
    att = IntegralAttention(4, 2, chunk=7, rngs=nnx.Rngs(1))
    full = IntegralAttention(4, 2, chunk=10_000, rngs=nnx.Rngs(1))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 5, 4)), jnp.float32)
    np.testing.assert_allclose(np.asarray(att(x)), np.asarray(full(x)), rtol=1e-5, atol=1e-6)
    g = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(att)
    h = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(full)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(h)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("periodic", [False, True])
def test_converges_on_nested_grids(periodic):
    """Smooth input: second order on node grids (trapezoid rule), faster on periodic ones."""
    att = IntegralAttention(4, 2, periodic=periodic, rngs=nnx.Rngs(2))
    sizes = (8, 16, 32, 64) if periodic else (9, 17, 33, 65)
    f = jax.jit(lambda x: att(x))
    outs = []
    for n in sizes:
        x = np.arange(n) / n if periodic else np.linspace(0, 1, n)
        X, Y = np.meshgrid(x, x, indexing="ij")
        u = np.stack([np.sin(2 * np.pi * X + c) * np.cos(2 * np.pi * Y) if periodic else np.sin(2 * X + c) * np.cos(Y - c * X)
                      for c in range(4)], -1)
        y = np.asarray(f(jnp.asarray(u[None], jnp.float32)))[0]
        k = n // sizes[0] if periodic else (n - 1) // (sizes[0] - 1)
        outs.append(y[::k, ::k])
    d = [np.abs(a - b).max() for a, b in itertools.pairwise(outs)]
    if periodic:
        assert d[0] < 1e-5, d  # the rectangle rule is spectrally accurate for smooth periodic integrands
    else:
        orders = [float(np.log2(d[i] / d[i + 1])) for i in range(len(d) - 1)]
        assert min(orders) > 1.8, (d, orders)


def test_errors():
    with pytest.raises(ValueError, match="divisible by heads"):
        IntegralAttention(6, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown attention kind"):
        IntegralAttention(4, 2, kind="flash", rngs=nnx.Rngs(0))
