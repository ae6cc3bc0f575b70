"""Pointwise layers, grid embedding, quadrature norm and grid helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import (
    ChannelMLP,
    GridEmbedding,
    Pointwise,
    QuadratureNorm,
    quadrature_weights,
    resample_linear,
)
from operators.layers.grid import check_padding, coarse_size


def test_pointwise_is_a_1x1_conv():
    layer = Pointwise(3, 2, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 5, 4, 3))
    want = x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
    np.testing.assert_allclose(layer(jnp.asarray(x, jnp.float32)), want, rtol=1e-5, atol=1e-6)
    assert Pointwise(3, 2, use_bias=False, rngs=nnx.Rngs(0)).bias is None


def test_channel_mlp_shape_and_unknown_activation():
    assert ChannelMLP(3, 2, 7, rngs=nnx.Rngs(0))(jnp.ones((1, 4, 3))).shape == (1, 4, 2)
    with pytest.raises(ValueError, match="unknown activation"):
        ChannelMLP(3, 2, 7, act="swish2", rngs=nnx.Rngs(0))


def test_grid_embedding_node_and_periodic():
    y = GridEmbedding(2)(jnp.zeros((1, 3, 5, 1)))
    np.testing.assert_allclose(y[0, :, 0, 1], [0, 0.5, 1])
    np.testing.assert_allclose(y[0, 0, :, 2], [0, 0.25, 0.5, 0.75, 1])
    yp = GridEmbedding(1, periodic=True)(jnp.zeros((1, 4, 1)))
    np.testing.assert_allclose(yp[0, :, 1], [0, 0.25, 0.5, 0.75])


def test_quadrature_norm_statistics_converge():
    """The normalised field has quadrature mean 0 and variance 1 on every grid; the node-grid
    statistics are trapezoid integrals (so they match the continuum value, not the sample mean)."""
    norm = QuadratureNorm(1, periodic=False, rngs=nnx.Rngs(0))
    for n in (33, 65):
        x = np.linspace(0, 1, n)
        u = jnp.asarray((x**2)[None, :, None], jnp.float32)
        y = np.asarray(norm(u))[0, :, 0]
        w = quadrature_weights(n, False)
        np.testing.assert_allclose(w @ y, 0, atol=1e-5)
        np.testing.assert_allclose(w @ y**2, 1, atol=1e-3)
        # value at x = 1: (1 - 1/3) / sqrt(1/5 - 1/9) up to O(h^2)
        np.testing.assert_allclose(y[-1], (2 / 3) / np.sqrt(4 / 45), rtol=2e-3)


def test_quadrature_weights_and_resampling():
    assert np.isclose(quadrature_weights(7, False).sum(), 1) and np.isclose(quadrature_weights(7, True).sum(), 1)
    x = np.linspace(0, 1, 9)
    u = jnp.asarray((2 * x + 1)[None, :, None], jnp.float32)
    np.testing.assert_allclose(resample_linear(u, (5,), False)[0, :, 0], 2 * np.linspace(0, 1, 5) + 1, atol=1e-6)
    assert coarse_size(85, 0.5, False) == 43 and coarse_size(64, 0.5, True) == 32
    assert check_padding("circular") == "wrap"
    with pytest.raises(ValueError, match="unknown padding mode"):
        check_padding("mirror")


def test_gelu_is_the_exact_erf_gelu():
    """Our GELU (erf form, as PyTorch) against scipy's erf in float64, with its gradient."""
    from scipy.special import erf

    from operators.layers.pointwise import gelu

    x = np.linspace(-9.0, 9.0, 2001)
    want = 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    dwant = 0.5 * (1.0 + erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    xj = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(np.asarray(gelu(xj)), want, atol=2e-6)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(gelu))(xj)), dwant, atol=2e-6)


def test_pointwise_names_a_wrong_channel_count():
    layer = Pointwise(4, 2, rngs=nnx.Rngs(0))
    assert layer(jnp.ones((2, 5, 3, 4))).shape == (2, 5, 3, 2)
    with pytest.raises(ValueError, match="Pointwise expects 4 channels last"):
        layer(jnp.ones((2, 5, 8)))  # 8 channels: a bare reshape would make 20 rows of 4
