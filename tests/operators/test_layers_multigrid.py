"""MgConv (the V-cycle of MgNO) against a numpy V-cycle written with explicit sums and scatters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import Conv, ConvTranspose, MgConv, reference_prolongation_kernels
from operators.registry import count_params

from .operators_reference import conv, conv_transpose, vcycle


def _np(p):
    return np.asarray(p[...], np.float64)


def extract(mg: MgConv) -> dict:
    """The V-cycle's weights as numpy arrays in the layout of ``operators_reference.vcycle``."""
    def steps(level_steps):
        return [(None if s.A is None else _np(s.A.kernel), _np(s.S.kernel)) for s in level_steps]
    return {
        "pre": [steps(lv) for lv in mg.pre],
        "post": [steps(lv) for lv in mg.post],
        "Pi": [_np(c.kernel) for c in mg.Pi],
        "R": [_np(c.kernel) for c in mg.R],
        "P": [_np(c.kernel) for c in mg.P],
    }


@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_matches_explicit_sum(mode, stride):
    layer = Conv(2, 3, 3, stride=stride, padding=mode, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, 9, 8, 2))
    got = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, conv(x, _np(layer.kernel), stride, mode), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k, coarse, fine", [(4, 5, 10), (3, 5, 9), (4, 5, 9), (3, 5, 10), (2, 4, 8)])
def test_transposed_conv_matches_scatter(k, coarse, fine):
    layer = ConvTranspose(2, 3, k, rngs=nnx.Rngs(1))
    x = np.random.default_rng(1).normal(size=(2, coarse, coarse, 2))
    got = np.asarray(layer(jnp.asarray(x, jnp.float32), (fine, fine)))
    np.testing.assert_allclose(got, conv_transpose(x, _np(layer.kernel), (fine, fine)), rtol=1e-4, atol=1e-5)


def test_periodic_transposed_conv_wraps():
    layer = ConvTranspose(1, 1, 4, dim=1, padding="wrap", rngs=nnx.Rngs(2))
    x = np.random.default_rng(2).normal(size=(1, 6, 1))
    got = np.asarray(layer(jnp.asarray(x, jnp.float32), (12,)))
    np.testing.assert_allclose(got, conv_transpose(x, _np(layer.kernel), (12,), periodic=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, size, up", [("zeros", 21, "zeros"), ("wrap", 16, "zeros"), ("wrap", 16, "wrap"),
                                            ("reflect", 13, "zeros")])
def test_vcycle_2d_matches_reference(mode, size, up):
    """Periodic smoothers prolong with zero padding by default (the reference's ConvTranspose2d);
    ``prolongation_padding="wrap"`` wraps the coarse field."""
    smoothing = [(1, 1), (2, 1), (2, 0)]
    kernels = reference_prolongation_kernels(size, 3) if mode != "wrap" else 4
    mg = MgConv(2, 3, smoothing, padding=mode, prolongation_kernel=kernels, prolongation_padding=up,
                rngs=nnx.Rngs(3))
    f = np.random.default_rng(3).normal(size=(2, size, size, 2))
    got = np.asarray(mg(jnp.asarray(f, jnp.float32)))
    want = vcycle(f, extract(mg), mode, periodic_prolongation=up == "wrap")
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_vcycle_1d_matches_reference():
    mg = MgConv(1, 2, [(1, 0), (1, 1), (1, 0), (2, 0)], dim=1, rngs=nnx.Rngs(4))
    f = np.random.default_rng(4).normal(size=(3, 40, 1))
    got = np.asarray(mg(jnp.asarray(f, jnp.float32)))
    want = vcycle(f, extract(mg), "zeros")
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow
def test_parameter_count_formula():
    """Per V-cycle: 9 c_u c_f per S or A, 9 (c_u^2 + c_f^2) per restriction, k^2 c_u^2 per prolongation."""
    c_f, c_u = 3, 5
    smoothing = [(1, 0), (2, 1), (2, 0)]
    mg = MgConv(c_f, c_u, smoothing, prolongation_kernel=[3, 4], rngs=nnx.Rngs(0))
    n_sa = 1 + 2 * (2 + 1 + 2)  # S alone on level 1, then (A, S) per further step
    want = 9 * c_u * c_f * n_sa + 2 * 9 * (c_u**2 + c_f**2) + (9 + 16) * c_u**2
    assert count_params(mg) == want


def test_reference_prolongation_kernels():
    assert reference_prolongation_kernels(211, 6) == [3, 4, 3, 3, 4]  # MgConv_DC_smooth of the reference
    assert reference_prolongation_kernels(256, 6) == [4] * 5


@pytest.mark.parametrize("size", [pytest.param(85, marks=pytest.mark.slow), 30, 7])
def test_any_grid_size(size):
    mg = MgConv(1, 2, rngs=nnx.Rngs(0))  # 6 levels
    y = mg(jnp.ones((1, size, size, 1)))
    assert y.shape == (1, size, size, 2) and bool(jnp.isfinite(y).all())


def test_linear_and_periodic_shift_equivariant():
    """Without biases the V-cycle is linear; with periodic smoothers and periodic prolongation it
    commutes with shifts by 2^(levels-1) points (the stride of the coarsest level). The default,
    zero-padded prolongation (the reference's) breaks that at the boundary."""
    mg = MgConv(1, 2, [(1, 0), (1, 0), (2, 0)], padding="wrap", prolongation_padding="wrap", rngs=nnx.Rngs(5))
    rng = np.random.default_rng(5)
    a, b = (jnp.asarray(rng.normal(size=(1, 16, 16, 1)), jnp.float32) for _ in range(2))
    np.testing.assert_allclose(mg(2 * a - b), 2 * mg(a) - mg(b), atol=1e-4)
    shifted = mg(jnp.roll(a, (4, -8), axis=(1, 2)))
    np.testing.assert_allclose(shifted, jnp.roll(mg(a), (4, -8), axis=(1, 2)), atol=1e-5)
    ref = MgConv(1, 2, [(1, 0), (1, 0), (2, 0)], padding="wrap", rngs=nnx.Rngs(5))
    gap = jnp.abs(ref(jnp.roll(a, (4, -8), axis=(1, 2))) - jnp.roll(ref(a), (4, -8), axis=(1, 2))).max()
    assert gap > 1e-3


def test_bad_configuration():
    with pytest.raises(ValueError, match="coarsest level has no post-smoothing"):
        MgConv(1, 2, [(1, 0), (2, 1)], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="prolongation kernels"):
        MgConv(1, 2, [(1, 0), (2, 0)], prolongation_kernel=[3, 4], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown padding mode"):
        MgConv(1, 2, padding="mirror", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="1-D and 2-D"):
        MgConv(1, 2, dim=3, rngs=nnx.Rngs(0))


def test_jit_grad():
    mg = MgConv(1, 2, [(1, 0), (2, 0)], rngs=nnx.Rngs(0))
    x = jnp.ones((1, 9, 9, 1))
    loss = lambda m: jnp.sum(m(x) ** 2)
    grads = nnx.grad(loss)(mg)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("dim, stride, widths", [(2, 2, ((1, 0), (0, 1))), (1, 1, ((0, 0),))])
def test_stencil_conv_gradient_matches_autodiff(dim, stride, widths):
    """The per-tap kernel gradient of ``stencil_conv`` equals JAX's own gradient of the plain
    ``lax.conv_general_dilated`` (values, input and kernel gradients), float64."""
    from operators.layers.conv import dimension_numbers, stencil_conv

    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, *(7,) * dim, 3)))
        w = jnp.asarray(rng.normal(size=(*(3,) * dim, 3, 4)))
        plain = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride,) * dim, widths,
                                                          dimension_numbers=dimension_numbers(dim))
        ours = lambda x, w: stencil_conv(x, w, (stride,) * dim, widths)
        dy = jnp.asarray(rng.normal(size=plain(x, w).shape))
        np.testing.assert_allclose(ours(x, w), plain(x, w), rtol=1e-12)
        grads = jax.jit(lambda f, x, w, dy: jax.vjp(f, x, w)[1](dy), static_argnums=0)
        for got, want in zip(grads(ours, x, w, dy), grads(plain, x, w, dy)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_transposed_conv_gradient_matches_scatter(padding="zeros"):
    """The prolongation's output, input and kernel gradients equal JAX's gradients of the
    transposed convolution written as one einsum with the 0/1 spreading matrix of each axis
    (coarse ``j``, tap ``t`` -> fine ``2j - 1 + t``); ``padding="wrap"`` folds it periodically."""
    layer = ConvTranspose(2, 3, 4, padding=padding, rngs=nnx.Rngs(4))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 5, 5, 2)), jnp.float32)
    dy = jnp.asarray(np.random.default_rng(5).normal(size=(2, 10, 10, 3)), jnp.float32)
    w = layer.kernel[...]

    graphdef, state = nnx.split(layer)  # one leaf: the kernel (no bias)

    def ours(x, w):
        return nnx.merge(graphdef, jax.tree.map(lambda _: w, state))(x, (10, 10))

    spread = np.zeros((10, 5, 4))  # spread[i, j, t] = 1 where coarse j, tap t lands on fine i
    for j in range(5):
        for t in range(4):
            i = 2 * j - 1 + t
            if padding == "wrap" or 0 <= i < 10:
                spread[i % 10, j, t] = 1.0

    def scatter(x, w):  # coarse j -> fine 2j - 1 + t per axis (wrapped, or dropped off the grid)
        return jnp.einsum("ijs,klt,bjlc,stcd->bikd", spread, spread, x, w)

    @jax.jit
    def values_and_grads(x, w, dy):
        (y_ours, vjp_ours), (y_ref, vjp_ref) = jax.vjp(ours, x, w), jax.vjp(scatter, x, w)
        return (y_ours, *vjp_ours(dy)), (y_ref, *vjp_ref(dy))

    for got, want in zip(*values_and_grads(x, w, dy)):  # output, input gradient, kernel gradient
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
