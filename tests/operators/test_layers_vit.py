"""ViT layers in physical units: patch embedding by quadrature, positional encoding of the
physical position, patch decoding by interpolation."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import PatchDecode, PatchEmbed, PositionalEncoding
from operators.layers.vit import token_centres

from .test_layers_disco import tap_mean_weights


def np_(p):
    return np.asarray(p[...], np.float64)


@pytest.mark.parametrize("periodic", [True, False])
def test_patch_embed_on_the_reference_grid_is_the_patch_convolution(periodic):
    pe = PatchEmbed(2, 5, 4, dim=2, base_resolution=16, padding="wrap" if periodic else "zeros", rngs=nnx.Rngs(0))
    n = 16 if periodic else 17
    u = np.random.default_rng(0).normal(size=(n, n, 2))
    k, b = np_(pe.kernel), np_(pe.bias)
    patches = u[:16, :16].reshape(4, 4, 4, 4, 2).transpose(0, 2, 1, 3, 4)  # (J1, J2, t1, t2, c)
    want = np.einsum("abstc,stco->abo", patches, k).reshape(16, 5) + b
    got = np.asarray(pe(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, n", [("zeros", 27), ("wrap", 40)])
def test_patch_embed_on_other_grids_is_the_quadrature(mode, n):
    """Token ``J`` is ``b + sum_t k_t . (mean of u under the hat of the reference spacing at
    (J p + t) / base_resolution)``."""
    pe = PatchEmbed(1, 3, 2, dim=2, base_resolution=8, padding=mode, rngs=nnx.Rngs(1))
    u = np.random.default_rng(1).normal(size=(n, n, 1))
    k, b = np_(pe.kernel), np_(pe.bias)
    want = np.zeros((4, 4, 3)) + b
    for J in itertools.product(range(4), repeat=2):
        for t in itertools.product(range(2), repeat=2):
            w = np.multiply.outer(*[tap_mean_weights(n, (J[a] * 2 + t[a]) / 8, 1 / 8, mode) for a in range(2)])
            want[J] += np.tensordot(w, u, axes=2) @ k[t]
    got = np.asarray(pe(jnp.asarray(u[None], jnp.float32)))[0].reshape(4, 4, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_patch_embed_converges_second_order():
    pe = PatchEmbed(1, 2, 4, dim=2, base_resolution=8, padding="wrap", rngs=nnx.Rngs(2))
    outs = []
    for n in (8, 16, 32, 64, 128):
        x = np.arange(n) / n
        X, Y = np.meshgrid(x, x, indexing="ij")
        f = np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y + 1)
        outs.append(np.asarray(pe(jnp.asarray(f[None, ..., None], jnp.float32)))[0])
    d = [np.abs(a - b).max() for a, b in itertools.pairwise(outs)]
    orders = [float(np.log2(d[i] / d[i + 1])) for i in range(len(d) - 1)]
    assert min(orders) > 1.8, (d, orders)


def test_patch_decode_interpolates_the_reference_pixels():
    dec = PatchDecode(3, 2, 2, dim=1, base_resolution=8, padding="wrap", rngs=nnx.Rngs(3))
    z = np.random.default_rng(3).normal(size=(1, 4, 3))
    lattice = (z[0] @ np_(dec.kernel) + np_(dec.bias)).reshape(8, 2)  # token J, pixel t -> 2J + t
    base = np.asarray(dec(jnp.asarray(z, jnp.float32), (8,)))[0]
    np.testing.assert_allclose(base, lattice, rtol=1e-5, atol=1e-6)
    fine = np.asarray(dec(jnp.asarray(z, jnp.float32), (16,)))[0]
    np.testing.assert_allclose(fine[::2], lattice, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fine[1::2], (lattice + np.roll(lattice, -1, axis=0)) / 2, rtol=1e-5, atol=1e-6)
    node = PatchDecode(3, 2, 2, dim=1, base_resolution=8, rngs=nnx.Rngs(3))
    y = np.asarray(node(jnp.asarray(z, jnp.float32), (9,)))[0]
    np.testing.assert_allclose(y[:8], lattice, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[8], lattice[7], rtol=1e-5, atol=1e-6)  # the end node: constant extension


def test_positional_encoding_is_a_function_of_position():
    pos = PositionalEncoding(3, 4, dim=2, rngs=nnx.Rngs(4))
    table = np_(pos.table).reshape(16, 3)
    np.testing.assert_allclose(np.asarray(pos(token_centres(4, 2))), table, rtol=1e-6, atol=1e-7)
    mid = np.asarray(pos(np.array([[0.25, 0.125]])))[0]  # halfway between cells (0, 0) and (1, 0)
    t = np_(pos.table)
    np.testing.assert_allclose(mid, (t[0, 0] + t[1, 0]) / 2, rtol=1e-5, atol=1e-6)


def test_patch_size_must_tile_the_domain():
    with pytest.raises(ValueError, match="must divide base_resolution"):
        PatchEmbed(1, 4, 3, base_resolution=16, rngs=nnx.Rngs(0))
