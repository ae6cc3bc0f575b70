"""Local integral kernels of fixed physical size and the resolution-convergent V-cycle."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers.local_kernel import (
    KernelProlongation,
    KernelRestriction,
    LocalKernelConv,
    hat,
)
from operators.layers.physical_multigrid import PhysicalMgConv

from .operators_reference import conv, conv_transpose, resize_conv, vcycle


def _np(p):
    return np.asarray(p[...], np.float64)


def _points(n, periodic):
    return np.arange(n) / n if periodic else np.linspace(0, 1, n)


def direct_sum(x, w, h0, out_shape, mode, quadrature):
    """``y[I] = sum_J k(x_J - X_I) v[J]`` with per-tap normalised quadrature weights (or
    ``k(X_I - x_J) v[J]`` for a prolongation) with the hat-interpolated kernel, by explicit loops
    over all point pairs."""
    periodic = mode == "wrap"
    d = x.ndim - 2
    xin = [_points(n, periodic) for n in x.shape[1:-1]]
    xout = [_points(n, periodic) for n in out_shape]
    y = np.zeros((x.shape[0], *out_shape, w.shape[-1]))

    def axis_deltas(a, i, j):
        if quadrature:
            ds = [xin[a][j] - xout[a][i]]
        else:
            ds = [xout[a][i] - xin[a][j]]
        if periodic:
            ds = [(ds[0] + 0.5) % 1.0 - 0.5]
        elif mode == "reflect" and quadrature and 0 < j < x.shape[1 + a] - 1:
            ds += [-xin[a][j] - xout[a][i], 2 - xin[a][j] - xout[a][i]]
        return ds

    def axis_weight(a, i, j, t):  # phi of tap t, summed over the images of input point j
        return sum(hat(dl / h0 - (t - 1)) for dl in axis_deltas(a, i, j))

    # normalised quadrature: per axis, tap and output point, the weights sum to 1 (0 for a tap
    # centred outside the domain with zero padding)
    norm = [np.ones((n, 3)) for n in out_shape]
    if quadrature:
        for a in range(d):
            for i in range(out_shape[a]):
                for t in range(3):
                    mass = sum(axis_weight(a, i, j, t) for j in range(x.shape[1 + a]))
                    centre = xout[a][i] + (t - 1) * h0
                    outside = mode == "zeros" and not (-1e-9 <= centre <= 1 + 1e-9)
                    norm[a][i, t] = 0.0 if outside or mass == 0 else 1.0 / mass

    for I in itertools.product(*[range(n) for n in out_shape]):
        for J in itertools.product(*[range(n) for n in x.shape[1:-1]]):
            k = np.zeros(w.shape[-2:])
            for t in itertools.product(range(3), repeat=d):
                k += w[t] * np.prod([axis_weight(a, I[a], J[a], t[a]) * norm[a][I[a], t[a]] for a in range(d)])
            y[(slice(None), *I)] += x[(slice(None), *J)] @ k
    return y


@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
def test_at_reference_spacing_equals_index_space_stencils(mode):
    """h = h0: the kernel conv is the 3x3 conv, the restriction the stride-2 conv and the
    prolongation the kernel-3 transposed conv."""
    periodic = mode == "wrap"
    n = 16 if periodic else 17
    h0 = 1 / 16
    nc = 8 if periodic else 9
    rngs = nnx.Rngs(0)
    x = np.random.default_rng(0).normal(size=(2, n, n, 2))
    xc = np.random.default_rng(1).normal(size=(2, nc, nc, 2))
    kc = LocalKernelConv(2, 3, padding=mode, h0=h0, rngs=rngs)
    np.testing.assert_allclose(kc(jnp.asarray(x, jnp.float32)), conv(x, _np(kc.kernel), 1, mode), atol=1e-5)
    kr = KernelRestriction(2, 3, padding=mode, h0=h0, rngs=rngs)
    np.testing.assert_allclose(kr(jnp.asarray(x, jnp.float32), (nc, nc)), conv(x, _np(kr.kernel), 2, mode),
                               atol=1e-5)
    kp = KernelProlongation(2, 3, padding=mode, h0=h0, rngs=rngs)
    np.testing.assert_allclose(kp(jnp.asarray(xc, jnp.float32), (n, n)),
                               conv_transpose(xc, _np(kp.kernel), (n, n), periodic), atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "wrap"])
def test_prolongation_at_coarse_spacing_is_a_resize_convolution(mode):
    """h0 = the coarse spacing: a 3x3 convolution on the coarse grid, then linear interpolation
    onto the 2x grid, so neighbouring fine points get no alternating (checkerboard) weights."""
    periodic = mode == "wrap"
    nc, n = (8, 16) if periodic else (9, 17)
    xc = np.random.default_rng(5).normal(size=(2, nc, nc, 2))
    kp = KernelProlongation(2, 3, padding=mode, h0=1 / 8, rngs=nnx.Rngs(5))
    np.testing.assert_allclose(kp(jnp.asarray(xc, jnp.float32), (n, n)),
                               resize_conv(xc, _np(kp.kernel), (n, n), periodic), atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "wrap", "reflect"])
def test_restriction_and_prolongation_match_direct_sums_off_grid(mode):
    """Grids that do not line up with the reference spacing (11 -> 7 points, h0 = 1/8)."""
    rngs = nnx.Rngs(1)
    x = np.random.default_rng(2).normal(size=(1, 11, 10, 2))
    kr = KernelRestriction(2, 2, padding=mode, h0=1 / 8, rngs=rngs)
    got = np.asarray(kr(jnp.asarray(x, jnp.float32), (7, 6)))
    np.testing.assert_allclose(got, direct_sum(x, _np(kr.kernel), 1 / 8, (7, 6), mode, True), atol=1e-5)
    kp = KernelProlongation(2, 2, padding=mode, h0=1 / 8, rngs=rngs)
    xc = x[:, :7, :6]
    got = np.asarray(kp(jnp.asarray(xc, jnp.float32), (11, 10)))
    mode_p = "wrap" if mode == "wrap" else "zeros"
    np.testing.assert_allclose(got, direct_sum(xc, _np(kp.kernel), 1 / 8, (11, 10), mode_p, False), atol=1e-5)


@pytest.mark.parametrize("mode", ["zeros", "wrap"])
def test_same_grid_kernel_matches_direct_sum_off_grid(mode):
    kc = LocalKernelConv(1, 2, dim=1, padding=mode, h0=1 / 6, rngs=nnx.Rngs(2))
    x = np.random.default_rng(3).normal(size=(2, 23, 1))
    got = np.asarray(kc(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, direct_sum(x, _np(kc.kernel), 1 / 6, (23,), mode, True), atol=1e-5)


@pytest.mark.slow
def test_kernel_conv_converges_under_refinement():
    """Applied to a smooth field, the kernel conv at h0/2, h0/4, ... converges (Cauchy, O(h))."""
    kc = LocalKernelConv(1, 1, padding="zeros", h0=1 / 8, rngs=nnx.Rngs(3))
    outs = []
    for cells in (16, 32, 64, 128):
        x = np.linspace(0, 1, cells + 1)
        X, Y = np.meshgrid(x, x, indexing="ij")
        f = np.exp(np.sin(2 * X) + Y * X)
        outs.append(np.asarray(kc(jnp.asarray(f[None, ..., None], jnp.float32)))[0, ::cells // 16, ::cells // 16, 0])
    diffs = [np.abs(a - b).max() for a, b in itertools.pairwise(outs)]
    assert diffs[1] < 0.6 * diffs[0] and diffs[2] < 0.6 * diffs[1], diffs


@pytest.mark.parametrize("mode", [pytest.param("zeros", marks=pytest.mark.slow), "wrap",
                                  pytest.param("reflect", marks=pytest.mark.slow)])
def test_physical_vcycle_at_base_resolution_is_an_mgno_vcycle(mode):
    """At the reference grid: MgNO's V-cycle with kernel-3 transposed convolutions between the
    fixed levels and a resize-convolution (coarse 3x3 stencil, then linear interpolation) into
    level 0, computed independently with index-space convolutions."""
    periodic = mode == "wrap"
    mg = PhysicalMgConv(2, 3, [(1, 1), (2, 1), (1, 0), (2, 0)], padding=mode, base_resolution=16, rngs=nnx.Rngs(4))
    n = 16 if periodic else 17
    f = np.random.default_rng(4).normal(size=(2, n, n, 2))
    got = np.asarray(mg(jnp.asarray(f, jnp.float32)))

    def steps(level):
        return [(None if s.A is None else _np(s.A.kernel), _np(s.S.kernel)) for s in level]
    weights = {
        "pre": [steps(lv) for lv in mg.pre],
        "post": [steps(lv) for lv in mg.post],
        "Pi": [_np(mg.Pi0.kernel)] + [_np(c.kernel) for c in mg.Pi],
        "R": [_np(mg.R0.kernel)] + [_np(c.kernel) for c in mg.R],
        "P": [_np(mg.P0.kernel)] + [_np(c.kernel) for c in mg.P],
    }
    want = vcycle(f, weights, mode, resize_first=True)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_physical_vcycle_any_size_and_bad_base():
    mg = PhysicalMgConv(1, 2, [(1, 0), (1, 0), (2, 0)], base_resolution=16, rngs=nnx.Rngs(0))
    for n in (9, 23):
        assert mg(jnp.ones((1, n, n, 1))).shape == (1, n, n, 2)
    with pytest.raises(ValueError, match="multiple of"):
        PhysicalMgConv(1, 2, [(1, 0), (1, 0), (2, 0)], base_resolution=18, rngs=nnx.Rngs(0))
