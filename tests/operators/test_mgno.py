"""MgNO (reference parameter counts, any grid) and the resolution-convergent "mgno-conv"."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from .operators_reference import cauchy_differences, far_field_influence

import operators
from operators.layers import reference_prolongation_kernels

SMALL_MGNO = {"width": 4, "n_layers": 2, "smoothing": [[1, 0]] * 3 + [[2, 0]]}
SMALL_CONV = {"width": 4, "n_layers": 2, "smoothing": [[1, 0]] * 2 + [[2, 0]], "base_resolution": 16}


def test_reference_darcy_rough_parameter_count():
    """1 input channel, 4 layers x 24 channels, 6 levels, (1,0) x 5 then (2,0), zero padding."""
    model = nnx.eval_shape(lambda: operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0)))
    assert operators.count_params(model) == 572_661


def test_reference_darcy_smooth_parameter_count():
    """The 211-grid model of the reference (5 x 24, kernel 3 on odd levels): 678,093."""
    model = nnx.eval_shape(lambda: operators.MgNO(
        1, 1, n_layers=5, prolongation_kernel=reference_prolongation_kernels(211, 6), rngs=nnx.Rngs(0)))
    assert operators.count_params(model) == 678_093


@pytest.mark.slow
@pytest.mark.parametrize("size", [85])
def test_any_resolution(size):
    model = operators.build_model("mgno", 2, 3, rngs=nnx.Rngs(0), **SMALL_MGNO)
    y = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, size, size, 2)))
    assert y.shape == (2, size, size, 3) and bool(jnp.isfinite(y).all())


def test_one_dimensional():
    model = operators.build_model("mgno", 1, 1, dim=1, rngs=nnx.Rngs(0), **SMALL_MGNO)
    assert nnx.jit(lambda m, x: m(x))(model, jnp.ones((3, 101, 1))).shape == (3, 101, 1)


def test_layer_structure():
    """u <- GELU(W^Mg u + W u + b), bias-free head: zero input gives exactly head(GELU(b))."""
    model = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), width=4, n_layers=2, smoothing=[[1, 0], [2, 0]])
    y = model(jnp.zeros((1, 9, 9, 1)))
    gelu = lambda v: jax.nn.gelu(v, approximate=False)
    u = gelu(model.linear[0].bias[...])
    u = gelu(u @ model.linear[1].kernel[...] + model.linear[1].bias[...]
             + model.mg[1](jnp.broadcast_to(u, (1, 9, 9, 4)))[0, 4, 4])
    assert model.head.bias is None
    np.testing.assert_allclose(y[0, 4, 4], u @ model.head.kernel[...], rtol=1e-5, atol=1e-6)


def test_bad_input_names_the_problem():
    model = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), **SMALL_MGNO)
    with pytest.raises(ValueError, match="channels"):
        model(jnp.ones((1, 9, 9, 2)))
    with pytest.raises(ValueError, match="shape"):
        model(jnp.ones((9, 9, 1)))


def test_mgno_conv_parameter_count():
    """Same V-cycle as MgNO (kernel-3 prolongations, one level fewer by default)."""
    model = nnx.eval_shape(lambda: operators.build_model("mgno-conv", 1, 1, rngs=nnx.Rngs(0)))
    c = 24

    def vcycle(cf):
        return 9 * c * cf * (1 + 2 * 3 + 4) + 4 * 9 * (c * c + cf * cf) + 4 * 9 * c * c
    want = vcycle(1) + 3 * vcycle(c) + (c + c) + 3 * (c * c + c) + c
    assert operators.count_params(model) == want


@pytest.mark.parametrize("size", [41, 10])
def test_mgno_conv_any_resolution(size):
    model = operators.build_model("mgno-conv", 1, 2, rngs=nnx.Rngs(0), **SMALL_CONV)
    y = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, size, size, 1)))
    assert y.shape == (2, size, size, 2) and bool(jnp.isfinite(y).all())


@pytest.mark.slow
@pytest.mark.parametrize("periodic", [False, True])
def test_mgno_conv_converges_under_refinement(periodic):
    """Random weights, smooth input at s, 2s, 4s: the differences shrink (O(h) or better)."""
    model = operators.build_model("mgno-conv", 1, 1, rngs=nnx.Rngs(0),
                                  **dict(SMALL_CONV, padding="wrap" if periodic else "zeros"))
    sizes = (16, 32, 64) if periodic else (17, 33, 65)
    d = cauchy_differences(model, sizes, periodic)
    assert d[1] < 0.6 * d[0], d


@pytest.mark.slow
def test_receptive_field_fixed_in_physical_units_only_for_mgno_conv():
    """Plain MgNO's stencils and level count live in index space: its receptive field shrinks
    with the grid (what it sees at distance >= 0.3 drops several-fold from 33 to 65 points),
    whereas mgno-conv's converges."""
    mgno = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), **SMALL_MGNO)
    conv = operators.build_model("mgno-conv", 1, 1, rngs=nnx.Rngs(0), **SMALL_CONV)
    m = [far_field_influence(mgno, n) for n in (33, 65)]
    c = [far_field_influence(conv, n) for n in (33, 65)]
    assert m[1] < 0.4 * m[0], m
    assert abs(c[1] - c[0]) < 0.3 * c[0], c


@pytest.mark.parametrize("n_layers, grid_size, want", [(4, 256, 572_661), (5, 211, 678_093)])
def test_reference_counts_from_grid_size(n_layers, grid_size, want):
    """Darcy rough (4 x 24 at 256) and Darcy smooth (5 x 24 at 211) through the registry: the
    prolongation kernels follow the parity of the level sizes of ``grid_size`` (``"auto"``)."""
    model = nnx.eval_shape(lambda: operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), n_layers=n_layers,
                                                         grid_size=grid_size))
    assert [p.kernel_size for p in model.mg[0].P] == reference_prolongation_kernels(grid_size, 6)
    assert operators.count_params(model) == want


def test_explicit_prolongation_kernel_overrides_grid_size():
    model = nnx.eval_shape(lambda: operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), n_layers=5,
                                                         grid_size=211, prolongation_kernel=4))
    assert operators.count_params(model) == 738_573  # kernel 4 on every level
    with pytest.raises(ValueError, match="prolongation_kernel"):
        operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), prolongation_kernel="big")


@pytest.mark.slow
def test_mgno_conv_same_operator_at_s_and_2s():
    """A random-weight one-layer mgno-conv (V-cycle + 1x1 path + bias) applied to a smooth
    function sampled at s and 2s (nested node grids, compared on the coarse points): the
    relative difference is small and shrinks with s.

    Bounds: the kernels are hat-interpolated stencils, so refining the grid replaces each tap's
    point value by a hat-weighted mean over +-h0, a change of O(h0^2 |v''|) inside and, with the
    normalised taps, O(h0 |v'|) at a Dirichlet end; measured 0.012 (17 -> 33) and 0.0045
    (33 -> 65). Before the boundary fix a tap centred on an end point lost up to half of its
    weight under refinement and the difference was about 0.09, whatever the smoothness."""
    model = operators.build_model("mgno-conv", 1, 1, rngs=nnx.Rngs(0), **dict(SMALL_CONV, n_layers=1))
    d = cauchy_differences(model, (17, 33, 65), False)
    assert d[0] < 0.025 and d[1] < 0.6 * d[0], d


@pytest.mark.slow
@pytest.mark.parametrize("periodic, bound", [(False, 0.06), (True, 0.035)])
def test_mgno_conv_layers_agree_from_the_reference_grid_on(periodic, bound):
    """Two random-weight layers, smooth input on nested grids from the reference grid (16 cells)
    to 2x and 4x. A transposed-convolution prolongation into the input grid leaves an even/odd
    checkerboard that the next layer point-samples at the reference grid but averages on finer
    grids: differences 0.091 (nodes) / 0.088 (periodic) from 16 to 32 cells. The
    resize-convolution (coarse stencil + linear interpolation) leaves only the O(h0^2) interior
    and O(h0) boundary quadrature changes: measured 0.041 / 0.017, then 0.019 / 0.004."""
    model = operators.build_model("mgno-conv", 1, 1, rngs=nnx.Rngs(0),
                                  **dict(SMALL_CONV, padding="wrap" if periodic else "zeros"))
    sizes = (16, 32, 64) if periodic else (17, 33, 65)
    d = cauchy_differences(model, sizes, periodic)
    assert d[0] < bound and d[1] < 0.6 * d[0], d
