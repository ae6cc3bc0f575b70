"""Resolution-aware U-Net blocks: Down (stride-2 kernel), Up (kernel evaluated on the finer grid),
ConvBlock."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import ConvBlock, Down, Up

from .test_layers_disco import direct, index_conv, params


def lin_interp_periodic(n_out, n_in):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        s = o * n_in / n_out
        i = int(np.floor(s))
        f = s - i
        m[o, i % n_in] += 1 - f
        m[o, (i + 1) % n_in] += f
    return m


@pytest.mark.parametrize("n_out", [16, 24])
def test_up_on_the_reference_grid_is_conv_then_linear_interpolation(n_out):
    """Periodic coarse grid of 8 points (the reference): the 3x3 circular convolution on the
    coarse grid, then linear interpolation onto the finer grid."""
    up = Up(2, 3, 3, dim=2, base_resolution=8, padding="wrap", rngs=nnx.Rngs(0))
    u = np.random.default_rng(0).normal(size=(8, 8, 2))
    coarse = index_conv(u, *params(up), "wrap", 1)
    m = lin_interp_periodic(n_out, 8)
    want = np.einsum("ai,bj,ijc->abc", m, m, coarse)
    got = np.asarray(up(jnp.asarray(u[None], jnp.float32), (n_out, n_out)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_up_is_the_direct_sum(mode):
    up = Up(1, 2, 3, dim=2, base_resolution=8, padding=mode, rngs=nnx.Rngs(1))
    u = np.random.default_rng(1).normal(size=(13, 9, 1))  # a coarse grid finer than its reference
    got = np.asarray(up(jnp.asarray(u[None], jnp.float32), (21, 17)))[0]
    want = direct(u, *params(up), 1 / 8, mode, (21, 17), (1 / 20, 1 / 16))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_down_halves_the_grid():
    down = Down(2, 4, dim=2, base_resolution=16, rngs=nnx.Rngs(0))
    assert down(jnp.zeros((1, 17, 33, 2))).shape == (1, 9, 17, 4)
    with pytest.raises(ValueError, match="cannot coarsen"):
        down(jnp.zeros((1, 16, 16, 2)))
    periodic = Down(2, 4, dim=1, base_resolution=16, padding="wrap", rngs=nnx.Rngs(0))
    assert periodic(jnp.zeros((1, 24, 2))).shape == (1, 12, 4)


@pytest.mark.slow
def test_block_pair_converges_under_refinement():
    """Down -> ConvBlock -> Up on nested periodic grids 8 -> 16 -> 32 -> 64: second order."""
    down = Down(1, 4, dim=2, base_resolution=8, padding="wrap", rngs=nnx.Rngs(2))
    block = ConvBlock(4, 4, dim=2, base_resolution=4, padding="wrap", rngs=nnx.Rngs(3))
    up = Up(4, 1, dim=2, base_resolution=4, padding="wrap", rngs=nnx.Rngs(4))
    net = jax.jit(lambda f: up(block(down(f)), f.shape[1:3]))
    outs = []
    for n in (8, 16, 32, 64):
        x = np.arange(n) / n
        X, Y = np.meshgrid(x, x, indexing="ij")
        f = jnp.asarray((np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y + 1))[None, ..., None], jnp.float32)
        y = np.asarray(net(f))[0, ..., 0]
        outs.append(y[:: n // 8, :: n // 8])
    d = [np.abs(a - b).max() for a, b in itertools.pairwise(outs)]
    orders = [float(np.log2(d[i] / d[i + 1])) for i in range(2)]
    assert orders[-1] > 1.8 and min(orders) > 1.5, (d, orders)
