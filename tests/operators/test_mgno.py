"""MgNO (reference parameter counts, any grid) and the resolution-convergent "mgno-conv"."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import operators
from operators.layers import reference_prolongation_kernels

from .operators_reference import cauchy_differences, far_field_influence

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


@pytest.mark.slow
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


# --- the reference's Navier-Stokes and Helmholtz models (xlliu2017/MgNO MgNO_NS, MgNO_helm) ---

def _conv3(ci, co, bias=True):
    return 9 * ci * co + (co if bias else 0)


def test_reference_navier_stokes_parameter_count():
    """MgNO_NS (README "NS2": 5 layers x 32 channels, smoothing (1,0) x 3 + (2,0) x 2, --bias):
    per V-cycle 1 + 1 + 1 + 2 + 2 smoothing steps with biases, 4 restrictions Pi / R, 4 kernel-4
    prolongations and a 64 / 32 / 16 / 8 layer norm (scale and shift per point and channel)."""
    model = nnx.eval_shape(lambda: operators.build_model("mgno-ns", 1, 1, rngs=nnx.Rngs(0)))
    c = 32

    def vcycle(cf):
        smoothers = _conv3(cf, c) + 6 * (_conv3(c, cf) + _conv3(cf, c))
        return smoothers + 4 * (9 * c * c + 9 * cf * cf + 16 * c * c) + 2 * c * (64**2 + 32**2 + 16**2 + 8**2)
    assert operators.count_params(model) == vcycle(1) + 4 * vcycle(c) + c == 2_885_194


def test_reference_helmholtz_parameter_count():
    """MgNO_helm (README: 4 layers x 20 channels, smoothing 1 1 1 1 2, 101 x 101): channels (l+1) c
    on level l, biases on the smoothers, a [20, 101, 101] layer norm per layer and a V-cycle head.
    The reference's 5,351,806 also counts the A it builds but never applies on each cycle's first
    step (11,241 scalars)."""
    model = nnx.eval_shape(lambda: operators.build_model("mgno-helmholtz", 1, 1, rngs=nnx.Rngs(0)))
    kernels = [3, 4, 4, 3]

    def vcycle(cu, cf):
        n = 0
        for l, steps in enumerate([1, 1, 1, 1, 2]):
            u, f = cu * (l + 1), cf * (l + 1)
            n += steps * _conv3(f, u) + (steps - (l == 0)) * _conv3(u, f)
            if l < 4:
                n += 9 * u * cu * (l + 2) + 9 * f * cf * (l + 2) + kernels[l] ** 2 * cu * (l + 2) * u
        return n
    ours = vcycle(20, 1) + 3 * vcycle(20, 20) + 4 * 2 * 20 * 101**2 + vcycle(1, 20)
    assert operators.count_params(model) == ours == 5_340_565
    unused_A = _conv3(20, 1) + 3 * _conv3(20, 20) + _conv3(1, 20)
    assert ours + unused_A == 5_351_806


@pytest.mark.slow
def test_helmholtz_levels_and_kernels():
    """Unpadded restrictions 101 -> 50 -> 24 -> 11 -> 5; prolongation kernels 3, 4, 4, 3 land back
    exactly on each finer grid."""
    from operators.layers.multigrid import level_grids

    assert [g[0] for g in level_grids(101, 5, "valid")] == [101, 50, 24, 11, 5]
    assert reference_prolongation_kernels(101, 5, "valid") == [3, 4, 4, 3]
    model = operators.MgNOHelmholtz(1, 2, width=2, n_layers=1, smoothing=[1, 1, 2], grid_size=21,
                                    rngs=nnx.Rngs(0))
    assert [p.kernel_size for p in model.head.P] == [3, 4]
    assert jax.eval_shape(model, jnp.ones((1, 21, 21, 1))).shape == (1, 21, 21, 2)
    with pytest.raises(ValueError, match="grid_size"):
        jax.eval_shape(model, jnp.ones((1, 25, 25, 1)))


def test_navier_stokes_structure():
    """No 1x1 path, output head(u) + u_0: with the head zeroed the model is the identity; a grid
    other than the layer norms' is a named error."""
    model = operators.build_model("mgno-ns", 1, 1, rngs=nnx.Rngs(0), width=4, n_layers=1, grid_size=16,
                                  smoothing=[[1, 0], [2, 0]])
    assert model.linear is None and model.mg[0].norms is not None
    assert model.mg[0].Pi[0].padding == "wrap" and not model.mg[0].P[0].periodic
    model.head.kernel[...] = jnp.zeros_like(model.head.kernel[...])
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 1)), jnp.float32)
    np.testing.assert_array_equal(model(x), x)
    with pytest.raises(ValueError, match="grid_size"):
        jax.eval_shape(model, jnp.ones((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="in_channels >= out_channels"):
        operators.build_model("mgno-ns", 1, 2, rngs=nnx.Rngs(0), width=4, n_layers=1, grid_size=16)


def test_periodic_prolongation_zero_pads_by_default():
    """The reference's ConvTranspose2d zero-pads on periodic grids too: that is the default;
    prolongation_padding="wrap" keeps the coarse field periodic (and old periodic runs, stored
    without the option, load with it)."""
    from operators.models.mgno import legacy_hparams

    hp = operators.default_hparams("mgno", pde="navier_stokes")
    assert hp["padding"] == "wrap" and hp["prolongation_padding"] == "zeros"
    small = {**SMALL_MGNO, "padding": "wrap"}
    zeros = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), **small)
    wrap = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(0), prolongation_padding="wrap", **small)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 16, 16, 1)), jnp.float32)
    assert float(jnp.abs(zeros(x) - wrap(x)).max()) > 1e-4
    assert legacy_hparams({"padding": "wrap"})["prolongation_padding"] == "wrap"
    assert legacy_hparams({"padding": "zeros"})["prolongation_padding"] == "zeros"
    assert legacy_hparams({"padding": "wrap", "prolongation_padding": "zeros"})["prolongation_padding"] == "zeros"
