"""DiscoConv: local integral kernels of fixed physical support (hat basis), any grid."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import DiscoConv, disco
from operators.layers.disco import (
    apply_quadrature_taps,
    apply_strided_taps,
    apply_taps,
    axis_operator,
    lattice_plan,
)


def hat(s):
    return np.maximum(0.0, 1.0 - np.abs(s))


def points(n, periodic):
    return np.arange(n) / n if periodic else np.linspace(0, 1, n)


def tap_mean_weights(n, centre, h0, mode):
    """Normalised quadrature weights of the hat of half-width ``h0`` (or the grid spacing, if
    larger: linear interpolation) centred at ``centre``; trapezoid end weights on grids finer
    than the hat."""
    periodic = mode == "wrap"
    y = points(n, periodic)
    h = 1 / n if periodic else 1 / (n - 1)
    trapezoid = h < h0 - 1e-12
    h0 = max(h0, h)
    q = np.full(n, h)
    if periodic:
        w = hat(((y - centre + 0.5) % 1.0 - 0.5) / h0)
    else:
        w = hat((y - centre) / h0)
        if mode == "zeros":
            if centre < -1e-9 or centre > 1 + 1e-9:
                return np.zeros(n)
            if trapezoid:
                q[[0, -1]] = h / 2
        else:  # reflect: mirror images of the interior points
            w[1:-1] += hat((-y[1:-1] - centre) / h0) + hat((2 - y[1:-1] - centre) / h0)
    w = w * q
    return w / w.sum() if w.sum() > 0 else w


def direct(u, kernel, bias, h0, mode, out_n, stride_step):
    """``y(x_o) = b + sum_t kernel[t] . mean of u under the hat at x_o + (t - K//2) h0``."""
    d = u.ndim - 1
    K = kernel.shape[0]
    y = np.zeros((*out_n, kernel.shape[-1])) + bias
    for o in itertools.product(*[range(m) for m in out_n]):
        for t in itertools.product(range(K), repeat=d):
            w = np.ones(())
            for a in range(d):
                x = o[a] * stride_step[a]
                w = np.multiply.outer(w, tap_mean_weights(u.shape[a], x + (t[a] - K // 2) * h0, h0, mode))
            y[o] += np.tensordot(w, u, axes=d) @ kernel[t]
    return y


def index_conv(u, kernel, bias, mode, stride):
    """The ordinary zero / wrap / reflect padded correlation, by loops."""
    d = u.ndim - 1
    K = kernel.shape[0]
    r = K // 2
    padmode = {"zeros": "constant", "wrap": "wrap", "reflect": "reflect"}[mode]
    up = np.pad(u, [(r, r)] * d + [(0, 0)], mode=padmode)
    out_n = [(n - 1) // stride + 1 for n in u.shape[:-1]]
    y = np.zeros((*out_n, kernel.shape[-1])) + bias
    for o in itertools.product(*[range(m) for m in out_n]):
        for t in itertools.product(range(K), repeat=d):
            y[o] += up[tuple(stride * oa + ta for oa, ta in zip(o, t))] @ kernel[t]
    return y


def params(layer):
    return np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64)


@pytest.mark.parametrize("mode, k, stride", [("zeros", 3, 1), ("wrap", 5, 1), ("reflect", 3, 1), ("zeros", 3, 2),
                                             ("wrap", 3, 2)])
def test_base_grid_is_the_ordinary_convolution(mode, k, stride):
    periodic = mode == "wrap"
    layer = DiscoConv(2, 3, k, dim=2, base_resolution=8, stride=stride, padding=mode, rngs=nnx.Rngs(0))
    n = 8 if periodic else 9
    u = np.random.default_rng(0).normal(size=(n, n, 2))
    got = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    np.testing.assert_allclose(got, index_conv(u, *params(layer), mode, stride), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode, shape, stride", [("zeros", (21, 17), 1), ("wrap", (24, 20), 1),
                                                 ("reflect", (13, 19), 1), ("zeros", (21, 17), 2),
                                                 ("wrap", (24, 20), 2)])
def test_any_grid_is_the_direct_quadrature(mode, shape, stride):
    periodic = mode == "wrap"
    layer = DiscoConv(2, 2, 3, dim=2, base_resolution=8, stride=stride, padding=mode, rngs=nnx.Rngs(1))
    u = np.random.default_rng(1).normal(size=(*shape, 2))
    got = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    out_n = [n // stride if periodic else (n - 1) // stride + 1 for n in shape]
    step = [stride / n if periodic else stride / (n - 1) for n in shape]
    want = direct(u, *params(layer), 1 / 8, mode, out_n, step)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_1d_and_radius():
    layer = DiscoConv(1, 1, 5, dim=1, base_resolution=16, rngs=nnx.Rngs(0))
    assert layer.radius == pytest.approx(3 / 16)
    u = np.random.default_rng(2).normal(size=(40, 1))
    got = np.asarray(layer(jnp.asarray(u[None], jnp.float32)))[0]
    want = direct(u, *params(layer), 1 / 16, "zeros", (40,), (1 / 39,))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _orders(layer, sizes, periodic):
    f = jax.jit(lambda v: layer(v))
    outs = []
    for n in sizes:
        x = points(n, periodic)
        X, Y = np.meshgrid(x, x, indexing="ij")
        g = np.sin(2 * np.pi * X + 1) * np.cos(2 * np.pi * Y) if periodic else np.exp(np.sin(2 * X) + X * Y)
        y = np.asarray(f(jnp.asarray(g[None, ..., None], jnp.float32)))[0, ..., 0]
        step = n // sizes[0] if periodic else (n - 1) // (sizes[0] - 1)
        outs.append(y[::step, ::step])
    d = [np.abs(a - b).max() for a, b in itertools.pairwise(outs)]
    return d, [float(np.log2(d[i] / d[i + 1])) for i in range(len(d) - 1)]


@pytest.mark.parametrize("mode", ["wrap", "zeros"])
def test_second_order_convergence_on_nested_grids(mode):
    """Smooth input, nested grids from the reference grid up: second order (the hats' kinks are
    grid points; trapezoid weights and normalised taps at Dirichlet ends)."""
    periodic = mode == "wrap"
    layer = DiscoConv(1, 1, 3, dim=2, base_resolution=8, padding=mode, use_bias=False, rngs=nnx.Rngs(3))
    sizes = (8, 16, 32, 64) if periodic else (9, 17, 33, 65)
    d, orders = _orders(layer, sizes, periodic)
    assert min(orders) > 1.8, (d, orders)


def test_errors():
    with pytest.raises(ValueError, match="odd kernel_size"):
        DiscoConv(1, 1, 4, base_resolution=8, rngs=nnx.Rngs(0))
    layer = DiscoConv(1, 1, 3, base_resolution=8, stride=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"stride 2 cannot coarsen a grid of shape \(10, 9\)"):
        layer(jnp.zeros((1, 10, 9, 1)))
    assert layer(jnp.zeros((1, 11, 9, 1))).shape == (1, 6, 5, 1)


@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
def test_banded_and_dense_forms_agree(mode):
    """The banded depthwise-convolution form equals the dense tap matrices, for integer and
    non-integer refinements, strides 1 and 2, and a grid narrower than the band (dense fallback)."""
    rng = np.random.default_rng(4)
    kernel = jnp.asarray(rng.normal(size=(3, 5, 2, 3)), jnp.float32)
    offsets = [(-1.0, 0.0, 1.0), (-2.0, -1.0, 0.0, 1.0, 2.0)]
    for (n1, n2), (r1, r2), stride in [((17, 13), (2.0, 1.5), 1), ((21, 9), (2.5, 1.0), 2), ((4, 5), (3.0, 4.0), 1)]:
        x = jnp.asarray(rng.normal(size=(2, n1, n2, 2)), jnp.float32)
        periodic = mode == "wrap"
        n_out = [n // stride if periodic else (n - 1) // stride + 1 for n in (n1, n2)]
        geoms = [(m, 1 / r, stride, off, mode) for m, r, off in zip(n_out, (r1, r2), offsets)]
        mats = [axis_operator(m, n, 1 / r, stride / r, off, mode=mode)
                for m, n, r, off in zip(n_out, (n1, n2), (r1, r2), offsets)]
        banded = jax.jit(lambda v, g=geoms: apply_strided_taps(v, g, kernel))(x)
        dense = jax.jit(lambda v, m=mats: apply_taps(v, m, kernel))(x)
        np.testing.assert_allclose(np.asarray(banded), np.asarray(dense), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "wrap"])
def test_coarser_grid_reads_the_linear_interpolation(mode):
    """Half the reference resolution: the stencil applied to the input linearly interpolated onto
    the reference grid, at the coarse points."""
    from operators.layers.grid import resample_linear

    periodic = mode == "wrap"
    layer = DiscoConv(1, 2, 3, dim=2, base_resolution=16, padding=mode, rngs=nnx.Rngs(5))
    n, n_ref = (8, 16) if periodic else (9, 17)
    u = jnp.asarray(np.random.default_rng(5).normal(size=(1, n, n, 1)), jnp.float32)
    fine = np.asarray(resample_linear(u, (n_ref, n_ref), periodic), np.float64)[0]
    want = index_conv(fine, *params(layer), mode, 1)[::2, ::2]
    np.testing.assert_allclose(np.asarray(layer(u))[0], want, rtol=1e-4, atol=1e-5)



def _lattice_cases(mode):
    """``(n_in, n_out, in_step, out_step, offsets, phase)`` per axis: integer refinements of
    stencils, strided stencils, transposed (phase) layers with increasing and decreasing taps,
    dilated and one-tap stencils."""
    periodic = mode == "wrap"

    def size(nb, r):
        return nb * r if periodic else (nb - 1) * r + 1

    def coarse(n, s):
        return n // s if periodic else (n - 1) // s + 1

    def fine(n, s):
        return n * s if periodic else (n - 1) * s + 1

    cases = []
    for r in (1, 2, 3):
        n = size(8, r)
        cases.append((n, n, 1 / r, 1 / r, (-1.0, 0.0, 1.0), None))  # stride 1
        cases.append((n, coarse(n, 2), 1 / r, 2 / r, (-1.0, 0.0, 1.0), None))  # stride 2
        cases.append((n, n, 1 / r, 1 / r, (-2.0, 0.0, 2.0), None))  # kernel dilation 2
        if mode != "reflect":  # transposed stride 2, taps in either order
            cases.append((n, fine(n, 2), 1 / r, 0.5 / r, (-0.5, 0.0, 0.5), 0.5))
            cases.append((n, fine(n, 2), 1 / r, 0.5 / r, (0.5, 0.0, -0.5), 0.5))
    n = size(8, 4)
    cases.append((n, coarse(n, 2), 1 / 4, 2 / 4, (0.0,), None))  # one tap, stride 2
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
def test_lattice_form_equals_the_dense_form(mode):
    """The fast form (a hat filter on the input channels, then one strided, dilated convolution)
    takes every integer refinement of a regular stencil, and equals the dense tap matrices to
    float32 rounding; other grids fall back to the banded / dense forms."""
    rng = np.random.default_rng(7)
    cases = _lattice_cases(mode)
    for (n1, m1, i1, o1, off1, ph1), (n2, m2, i2, o2, off2, ph2) in zip(cases, cases[1:] + cases[:1]):
        assert lattice_plan(m1, n1, i1, o1, off1, mode, ph1) is not None
        x = jnp.asarray(rng.normal(size=(2, n1, n2, 2)), jnp.float32)
        kernel = jnp.asarray(rng.normal(size=(len(off1), len(off2), 2, 3)), jnp.float32)
        geoms = [(m1, i1, o1, off1, mode, ph1), (m2, i2, o2, off2, mode, ph2)]
        fast = jax.jit(lambda v, k, g=geoms: apply_quadrature_taps(v, g, k))(x, kernel)
        mats = [axis_operator(m, n, i, o, off, mode=mode, phase=ph)
                for n, m, i, o, off, ph in ((n1, m1, i1, o1, off1, ph1), (n2, m2, i2, o2, off2, ph2))]
        want = np.asarray(jax.jit(lambda v, k, m=mats: apply_taps(v, m, k))(x, kernel))
        assert fast.shape == want.shape
        np.testing.assert_allclose(np.asarray(fast), want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))
    periodic = mode == "wrap"
    n = 12 if periodic else 13  # 1.5 times 8 cells; and half of them
    assert lattice_plan(n, n, 1 / 1.5, 1 / 1.5, (-1.0, 0.0, 1.0), mode) is None
    assert lattice_plan(5, 5, 2.0, 2.0, (-1.0, 0.0, 1.0), mode) is None
    assert lattice_plan(n, n, 0.5, 0.5, (-1.0, 0.0, 2.0), mode) is None  # irregular taps


@pytest.mark.slow
def test_lattice_form_in_1d_and_3d():
    rng = np.random.default_rng(8)
    x1 = jnp.asarray(rng.normal(size=(3, 33, 2)), jnp.float32)
    k1 = jnp.asarray(rng.normal(size=(5, 2, 2)), jnp.float32)
    g1 = [(33, 0.5, 0.5, (-2.0, -1.0, 0.0, 1.0, 2.0), "zeros", None)]
    want = apply_taps(x1, [axis_operator(33, 33, 0.5, 0.5, g1[0][3])], k1)
    np.testing.assert_allclose(np.asarray(apply_quadrature_taps(x1, g1, k1)), np.asarray(want), atol=1e-5)
    x3 = jnp.asarray(rng.normal(size=(1, 8, 8, 8, 2)), jnp.float32)
    k3 = jnp.asarray(rng.normal(size=(3, 3, 3, 2, 1)), jnp.float32)
    g3 = [(4, 0.5, 1.0, (-1.0, 0.0, 1.0), "wrap", None)] * 3
    want = apply_taps(x3, [axis_operator(4, 8, 0.5, 1.0, (-1.0, 0.0, 1.0), mode="wrap")] * 3, k3)
    np.testing.assert_allclose(np.asarray(apply_quadrature_taps(x3, g3, k3)), np.asarray(want), atol=1e-5)


def test_disco_layer_fast_form_equals_the_banded_form(monkeypatch):
    """A stride-2 layer on a grid refined 4 times: the fast form (default) against the banded
    form it replaced (kept as the reference)."""
    layer = DiscoConv(3, 4, 3, dim=2, base_resolution=8, stride=2, rngs=nnx.Rngs(2))
    x = jnp.asarray(np.random.default_rng(9).normal(size=(1, 33, 33, 3)), jnp.float32)
    fast = jax.jit(lambda v: layer(v))(x)
    monkeypatch.setattr(disco, "USE_LATTICE", False)
    ref = np.asarray(jax.jit(lambda v: layer(v))(x))
    np.testing.assert_allclose(np.asarray(fast), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 2])
def test_disco_layer_fast_form_gradient(stride, monkeypatch):
    """Value and gradient of the fast form against the banded form, strides 1 and 2."""
    layer = DiscoConv(3, 4, 3, dim=2, base_resolution=8, stride=stride, rngs=nnx.Rngs(2))
    x = jnp.asarray(np.random.default_rng(9).normal(size=(2, 33, 33, 3)), jnp.float32)

    def run():
        return jax.jit(jax.value_and_grad(lambda v: jnp.sum(jnp.sin(layer(v)))))(x)

    fast, g_fast = run()
    monkeypatch.setattr(disco, "USE_LATTICE", False)
    ref, g_ref = run()
    np.testing.assert_allclose(float(fast), float(ref), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_fast), np.asarray(g_ref), rtol=0, atol=1e-5 * float(jnp.abs(g_ref).max()))
