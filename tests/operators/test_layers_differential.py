"""DiffConv: finite-difference stencils whose zero-sum part is divided by the grid spacing."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import DiffConv


def stencil(u, w, mode):
    """Correlation of ``u (*n, c_in)`` with ``w (*K, c_in, c_out)``, padded edge / wrap / reflect."""
    d = u.ndim - 1
    K = w.shape[0]
    r = K // 2
    up = np.pad(u, [(r, r)] * d + [(0, 0)], mode={"zeros": "edge", "wrap": "wrap", "reflect": "reflect"}[mode])
    y = np.zeros((*u.shape[:-1], w.shape[-1]))
    for t in itertools.product(range(K), repeat=d):
        sl = tuple(slice(ta, ta + n) for ta, n in zip(t, u.shape[:-1]))
        y += up[sl] @ w[t]
    return y


def params(layer):
    return np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64)


@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
def test_reference_grid_is_the_plain_stencil(mode):
    periodic = mode == "wrap"
    layer = DiffConv(2, 3, 3, dim=2, base_resolution=8, padding=mode, rngs=nnx.Rngs(0))
    n = 8 if periodic else 9
    u = np.random.default_rng(0).normal(size=(n, n, 2))
    w, b = params(layer)
    got = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(got, stencil(u, w, mode) + b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, n", [("zeros", 33), ("wrap", 20), ("reflect", 17)])
def test_other_grids_scale_the_zero_sum_part(mode, n):
    """Independent form: ``S u + (h0/h) sum_t D_t u(x + t h)`` with ``D = w - S delta``."""
    layer = DiffConv(1, 2, 5, dim=1, base_resolution=8, padding=mode, rngs=nnx.Rngs(1))
    u = np.random.default_rng(1).normal(size=(n, 1))
    w, b = params(layer)
    s = w.sum(axis=0)
    dd = w.copy()
    dd[2] -= s
    h = 1 / n if mode == "wrap" else 1 / (n - 1)
    want = u @ s + stencil(u, dd, mode) * (1 / 8) / h + b
    got = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_converges_to_the_differential_operator():
    """Periodic ``u = sin(2 pi x) cos(2 pi y)``: the output tends to ``S u + h0 sum_t D_t (t . grad u)``
    at first order in ``h``."""
    layer = DiffConv(1, 1, 3, dim=2, base_resolution=8, padding="wrap", use_bias=False, rngs=nnx.Rngs(2))
    w = np.asarray(layer.kernel[...], np.float64)[..., 0, 0]
    s = w.sum()
    dd = w.copy()
    dd[1, 1] -= s
    errs = []
    for n in (16, 32, 64, 128):
        x = np.arange(n) / n
        X, Y = np.meshgrid(x, x, indexing="ij")
        u = np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y)
        ux = 2 * np.pi * np.cos(2 * np.pi * X) * np.cos(2 * np.pi * Y)
        uy = -2 * np.pi * np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y)
        limit = s * u + (1 / 8) * sum(dd[i, j] * ((i - 1) * ux + (j - 1) * uy) for i in range(3) for j in range(3))
        y = np.asarray(layer(jnp.asarray(u[None, ..., None], jnp.float32)))[0, ..., 0]
        errs.append(np.abs(y - limit).max())
    orders = [float(np.log2(errs[i] / errs[i + 1])) for i in range(3)]
    assert all(0.8 < o < 1.3 for o in orders), (errs, orders)


def test_errors():
    with pytest.raises(ValueError, match="odd kernel_size >= 3"):
        DiffConv(1, 1, 2, base_resolution=8, rngs=nnx.Rngs(0))
    layer = DiffConv(1, 1, 3, base_resolution=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="same spacing along every axis"):
        layer(jnp.zeros((1, 9, 17, 1)))
