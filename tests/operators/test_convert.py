"""``operators.convert``: ordinary flax networks turned into neural operators.

The references are direct quadrature sums in numpy written from the definition: tap ``t`` of a
converted layer at an output point ``x`` is the mean of the input under the hat of the base
input spacing centred at ``x + c_t`` (trapezoid weights at Dirichlet ends, normalised; zero
when the centre lies outside a zero-padded domain), times, for a transposed convolution, the
hat-interpolated indicator of that centre lying on a base-grid point.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import operators
from operators.convert import ConvertedConv, ConvertedConvTranspose, general_path
from operators.layers import disco


def hat(s):
    return np.maximum(0.0, 1.0 - np.abs(s))


def tap_weights(n, r, centre, periodic):
    """Normalised quadrature weights (length ``n``) of the hat of half-width 1 (base spacing)
    centred at ``centre`` on a grid refined ``r`` times (positions ``j / r``, base units)."""
    y = np.arange(n) / r
    if periodic:
        period = n / r
        dist = (y - centre + period / 2) % period - period / 2
        q = np.full(n, 1.0 / r)
    else:
        if centre < -1e-9 or centre > (n - 1) / r + 1e-9:
            return np.zeros(n)  # the tap reads the zero padding
        dist = y - centre
        q = np.full(n, 1.0 / r)
        if r > 1:
            q[[0, -1]] /= 2  # trapezoid ends on grids finer than the hats
    w = hat(dist) * q
    return w / w.sum()


def reference(u, kernel, bias, offsets, out_spacing, n_out, r, periodic, phase=None):
    """Direct sum ``y[o] = b + sum_t kernel[t] lam_t(x_o) mean_t(x_o)`` for a channel-last
    ``u (*n, c_in)``, ``kernel (*K, c_in, c_out)``; per axis the tap centres ``offsets[a]`` (base
    input units) and the output's base spacing; output point ``o`` at ``o * out_spacing / r``."""
    d = u.ndim - 1
    y = np.zeros((*n_out, kernel.shape[-1])) + bias
    for o in itertools.product(*[range(m) for m in n_out]):
        for t in itertools.product(*[range(k) for k in kernel.shape[:d]]):
            w = np.ones(())
            for a in range(d):
                centre = o[a] * out_spacing[a] / r + offsets[a][t[a]]
                wa = tap_weights(u.shape[a], r, centre, periodic)
                if phase is not None:
                    f = centre - np.floor(centre)
                    wa = wa * (hat(f / phase) + hat((1 - f) / phase))
                w = np.multiply.outer(w, wa)
            y[o] += np.tensordot(w, u, axes=d) @ kernel[t]
    return y


def smooth(n, periodic, c=1, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(n) / n if periodic else np.linspace(0, 1, n)
    k = rng.normal(size=(c, 2))
    if periodic:
        return np.stack([np.sin(2 * np.pi * (x + k[i, 0])) + 0.5 * np.cos(4 * np.pi * x + k[i, 1]) for i in range(c)], -1)
    return np.stack([np.exp(np.sin(2 * x + k[i, 0])) * (1 + k[i, 1] * x) for i in range(c)], -1)


def smooth2(n, periodic, c=1):
    x = np.arange(n) / n if periodic else np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    if periodic:
        f = [np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y) + 0.5 * np.sin(2 * np.pi * (X + 2 * Y) + i) for i in range(c)]
    else:
        f = [np.exp(np.sin(2 * X + i) + Y * X) for i in range(c)]
    return np.stack(f, -1)


def np_params(layer):
    k = np.asarray(layer.kernel[...], np.float64)
    b = np.asarray(layer.bias[...], np.float64) if layer.bias is not None else 0.0
    return k, b


def run(model, u):
    return np.asarray(model(jnp.asarray(u[None], jnp.float32)))[0]


def jitted(model, x):
    """``model(x)`` compiled (a fresh function: the general path is chosen at trace time)."""
    return np.asarray(jax.jit(lambda v: model(v))(x))


# ---- single layers against the direct sum --------------------------------------------------------


@pytest.mark.parametrize("r", [1, 2, 4])
def test_conv_same_node_grid(r):
    """3x3 stride 1 SAME on a node grid: taps centred at (t - 1) base spacings."""
    conv = nnx.Conv(2, 3, (3, 3), padding="SAME", rngs=nnx.Rngs(0))
    c = operators.convert(conv, jnp.zeros((1, 6, 5, 2)))
    assert isinstance(c, ConvertedConv)
    shape = (5 * r + 1, 4 * r + 1)
    u = np.random.default_rng(r).normal(size=(*shape, 2))
    k, b = np_params(conv)
    want = reference(u, k, b, [(-1, 0, 1)] * 2, (1, 1), shape, r, False)
    with general_path():
        got = run(c, u)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if r == 1:
        np.testing.assert_array_equal(run(c, u), run(conv, u))  # the original layer, bit for bit


@pytest.mark.parametrize("r", [1, 2])
def test_conv_stride2_circular(r):
    """3x3 stride 2 CIRCULAR on a periodic grid: flax pads (1, 1), output o reads 2o + t - 1."""
    conv = nnx.Conv(1, 2, (3, 3), strides=2, padding="CIRCULAR", rngs=nnx.Rngs(1))
    c = operators.convert(conv, jnp.zeros((1, 8, 6, 1)), periodic=True)
    shape = (8 * r, 6 * r)
    u = np.random.default_rng(r).normal(size=(*shape, 1))
    k, b = np_params(conv)
    want = reference(u, k, b, [(-1, 0, 1)] * 2, (2, 2), (4 * r, 3 * r), r, True)
    with general_path():
        got = run(c, u)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if r == 1:
        np.testing.assert_allclose(run(conv, u), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_conv_transpose_same(r):
    """1-D ConvTranspose, kernel 3, stride 2, SAME: lax places input i at output 2i + 2 - t, so
    tap t is centred (t - 2)/2 base input spacings from the output point, on one phase."""
    up = nnx.ConvTranspose(2, 3, (3,), strides=2, padding="SAME", rngs=nnx.Rngs(2))
    c = operators.convert(up, jnp.zeros((1, 5, 2)))
    assert isinstance(c, ConvertedConvTranspose)
    n = 4 * r + 1
    u = np.random.default_rng(r).normal(size=(n, 2))
    k, b = np_params(up)
    want = reference(u, k, b, [(-1.0, -0.5, 0.0)], (0.5,), (9 * r + 1,), r, False, phase=0.5)
    with general_path():
        got = run(c, u)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if r == 1:
        np.testing.assert_allclose(run(up, u), want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_conv5_valid_and_reflect_exact_at_base():
    """Kernel 5 with VALID / explicit / REFLECT padding or dilation 2: the quadrature path
    reproduces the layer on its base grid."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 13, 11, 2)), jnp.float32)
    for pad, dil in [("VALID", 1), ([(2, 1), (0, 3)], 1), ("REFLECT", 1), ("SAME", 1), ("SAME", 2)]:
        conv = nnx.Conv(2, 2, (5, 5), padding=pad, kernel_dilation=dil, rngs=nnx.Rngs(0))
        c = operators.convert(conv, x[:1])
        with general_path():
            got = np.asarray(c(x))
        np.testing.assert_allclose(got, np.asarray(conv(x)), rtol=1e-4, atol=1e-5, err_msg=str(pad))


# ---- a small U-Net ------------------------------------------------------------------------------


class TinyUNet(nnx.Module):
    """Two levels, stride-2 convolutions down, transposed convolutions up, a skip, GroupNorm and a
    pointwise head: the user's own ``__call__``."""

    def __init__(self, periodic, rngs):
        pad = "CIRCULAR" if periodic else "SAME"
        self.c0 = nnx.Conv(1, 4, (3, 3), padding=pad, rngs=rngs)
        self.down = nnx.List([nnx.Conv(4, 6, (3, 3), strides=2, padding=pad, rngs=rngs),
                              nnx.Conv(6, 6, (3, 3), strides=2, padding=pad, rngs=rngs)])
        self.mid = nnx.Conv(6, 6, (5, 5), padding=pad, rngs=rngs)
        self.up = nnx.List([nnx.ConvTranspose(6, 6, (3, 3), strides=2, padding=pad if periodic else "SAME", rngs=rngs),
                            nnx.ConvTranspose(6, 4, (2, 2), strides=2, padding=pad if periodic else "SAME",
                                              rngs=rngs)])
        self.norm = nnx.GroupNorm(8, num_groups=2, rngs=rngs)
        self.head = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        a = jax.nn.gelu(self.c0(x))
        b = jax.nn.gelu(self.down[0](a))
        c = jax.nn.gelu(self.mid(jax.nn.gelu(self.down[1](b))))
        u = jax.nn.gelu(self.up[0](c))[:, :b.shape[1], :b.shape[2]]
        u = self.up[1](u + b)[:, :a.shape[1], :a.shape[2]]
        return self.head(jax.nn.gelu(self.norm(jnp.concatenate([u, a], axis=-1))))


@pytest.fixture(scope="module")
def unets():
    out = {}
    for periodic in (False, True):
        m = TinyUNet(periodic, nnx.Rngs(3))
        n = 16 if periodic else 17
        out[periodic] = (m, operators.convert(m, jnp.asarray(smooth2(n, periodic)[None], jnp.float32), periodic))
    return out


@pytest.mark.parametrize("periodic", [False, True])
def test_unet_same_output_and_parameters_at_base(unets, periodic):
    m, c = unets[periodic]
    n = 16 if periodic else 17
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, n, n, 1)), jnp.float32)
    want = jitted(m, x)
    np.testing.assert_array_equal(jitted(c, x), want)
    with general_path():
        np.testing.assert_allclose(jitted(c, x), want, rtol=1e-4, atol=1e-5)
    pa, pc = nnx.to_flat_state(nnx.state(m, nnx.Param)), nnx.to_flat_state(nnx.state(c, nnx.Param))
    assert [p for p, _ in pa] == [p for p, _ in pc]
    for (_, a), (_, b) in zip(pa, pc):
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]))
    assert type(m.down[0]) is nnx.Conv  # the original is left alone


def test_unet_fast_form_equals_the_reference_forms(unets, monkeypatch):
    """On a grid refined twice every converted layer (3x3 and 5x5 stencils, stride 2, transposed
    kernels 3 and 2) takes the fast lattice form; the model's output equals the banded / dense
    reference forms to float32 rounding."""
    c = unets[False][1]
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 33, 33, 1)), jnp.float32)
    fast = jitted(c, x)
    monkeypatch.setattr(disco, "USE_LATTICE", False)
    ref = jitted(c, x)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn-no", "unet-no"])
def test_converted_models_fast_form_value_and_gradient(name, monkeypatch):
    """The registry's converted models on a node grid refined 4 times and a periodic grid refined
    twice: loss and parameter gradient of the fast form equal the reference forms'."""
    for periodic, r in ((False, 4), (True, 2)):
        model = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), width=8, base_resolution=8,
                                      padding="wrap" if periodic else "zeros",
                                      **({"depth": 2, "projection_hidden": 8} if name == "cnn-no" else {"groups": 2}))
        n = 8 * r if periodic else 8 * r + 1
        x = jnp.asarray(smooth2(n, periodic)[None], jnp.float32)
        monkeypatch.setattr(disco, "USE_LATTICE", True)
        v_fast, g_fast = nnx.jit(nnx.value_and_grad(lambda m, v: jnp.mean(jnp.sin(m(v)))))(model, x)
        monkeypatch.setattr(disco, "USE_LATTICE", False)  # a fresh function: traced again
        v_ref, g_ref = nnx.jit(nnx.value_and_grad(lambda m, v: jnp.mean(jnp.sin(m(v)))))(model, x)
        np.testing.assert_allclose(float(v_fast), float(v_ref), rtol=1e-5, atol=1e-6)
        for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5 * float(jnp.abs(b).max()) + 1e-8)


def _orders(model, sizes, periodic, field=smooth2):
    step = jax.jit(lambda x: model(x))
    outs = []
    for n in sizes:
        y = np.asarray(step(jnp.asarray(field(n, periodic)[None], jnp.float32)))[0, ..., 0]
        k = n // sizes[0] if periodic else (n - 1) // (sizes[0] - 1)
        outs.append(y[::k, ::k])
    d = [float(np.sqrt(np.mean((a - b) ** 2))) for a, b in itertools.pairwise(outs)]
    return d, [float(np.log2(d[i] / d[i + 1])) for i in range(len(d) - 1)]


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_unet_converges_second_order_on_periodic_grids(unets):
    """Nested periodic grids 16 -> 32 -> 64 -> 128 with a smooth input: about second order."""
    d, orders = _orders(unets[True][1], (16, 32, 64, 128), True)
    assert orders[-1] > 1.7 and min(orders) > 1.4, (d, orders)


def test_unet_converges_on_node_grids(unets):
    """Node grids 17 -> 33 -> 65 -> 129: at least first order (one-sided means at the ends)."""
    d, orders = _orders(unets[False][1], (17, 33, 65, 129), False)
    assert min(orders) > 0.9, (d, orders)


@pytest.mark.slow
def test_unet_jit_grad_and_non_nested_grid(unets):
    _, c = unets[False]
    x = jnp.asarray(smooth2(25, False)[None], jnp.float32)  # refines 17 by 1.5: strides still divide
    loss = nnx.jit(nnx.value_and_grad(lambda mod, x: jnp.mean(mod(x) ** 2)))
    value, g = loss(c, x)
    assert bool(jnp.isfinite(value)) and all(bool(jnp.isfinite(v).all()) for v in jax.tree.leaves(g))
    coarse = jax.jit(lambda v: c(v))(jnp.asarray(smooth2(9, False)[None], jnp.float32))  # r = 1/2: 9 -> 5 -> 3
    assert coarse.shape == (1, 9, 9, 1) and bool(jnp.isfinite(coarse).all())


# ---- errors -------------------------------------------------------------------------------------


def test_stride_that_no_longer_divides_the_grid(unets):
    def run_on(model, n):  # traced only: the error is raised while tracing
        return jax.eval_shape(lambda x: model(x), jax.ShapeDtypeStruct((1, n, n, 1), jnp.float32))

    with pytest.raises(ValueError, match=r"layer 'down\.1'.*9 points.*stride no longer divides"):
        run_on(unets[True][1], 18)  # 18 -> 9 -> 4.5
    with pytest.raises(ValueError, match=r"layer 'down\.0'.*grid of 20 points"):
        run_on(unets[False][1], 20)


def test_even_kernel_and_unknown_layer():
    with pytest.raises(ValueError, match=r"'conv'.*even kernel \(4, 4\)"):
        operators.convert(_Wrap(nnx.Conv(1, 1, (4, 4), rngs=nnx.Rngs(0))), jnp.zeros((1, 9, 9, 1)))

    class PosEmb(nnx.Module):
        def __init__(self):
            self.table = nnx.Param(jnp.zeros((9, 9, 1)))

        def __call__(self, x):
            return x + self.table[...]

    with pytest.raises(ValueError, match=r"layer 'conv' \(PosEmb\) holds parameters \(table\).*keep=\(PosEmb,\)"):
        operators.convert(_Wrap(PosEmb()), jnp.zeros((1, 9, 9, 1)))
    with pytest.raises(ValueError, match=r"'conv' \(nnx.Embed\)"):
        operators.convert(_Wrap(nnx.Embed(4, 2, rngs=nnx.Rngs(0))), jnp.zeros((1, 9, 9, 1)))


class _Wrap(nnx.Module):
    def __init__(self, layer, pool=None):
        self.conv, self.pool = layer, pool

    def __call__(self, x):
        y = self.conv(x)
        if self.pool == "max":
            y = nnx.max_pool(y, (2, 2), (2, 2))
        elif self.pool == "slice":
            y = y[:, ::2, ::2]
        elif self.pool == "fixed":
            y = jax.image.resize(y, (y.shape[0], 9, 9, y.shape[-1]), "linear")
            y = self.conv(y)
        return y


def test_what_convert_cannot_see():
    conv = nnx.Conv(1, 1, (3, 3), rngs=nnx.Rngs(0))
    x = jnp.zeros((1, 9, 9, 1))
    with pytest.raises(ValueError, match=r"pooling \(e\.g\. nnx\.max_pool\) at .*test_convert\.py.*stride-2 nnx\.Conv"):
        operators.convert(_Wrap(conv, "max"), x)
    with pytest.raises(ValueError, match=r"strided slicing"):
        operators.convert(_Wrap(conv, "slice"), x)
    with pytest.raises(ValueError, match=r"layer 'conv' receives the grid \(9, 9\), not \(17, 17\)"):
        # resizes to a fixed 9 x 9 and applies the layer again: fine on the base grid only
        operators.convert(_Wrap(conv, "fixed"), x)
    with pytest.raises(ValueError, match="pads circularly.*periodic=True"):
        operators.convert(nnx.Conv(1, 1, (3, 3), padding="CIRCULAR", rngs=nnx.Rngs(0)), x)
    with pytest.raises(ValueError, match=r"example must be one input"):
        operators.convert(conv, jnp.zeros((9, 1)))
    with pytest.raises(ValueError, match="already converted"):
        operators.convert(operators.convert(conv, x), x)


def test_shared_layer_on_two_grids_is_refused():
    class Shared(nnx.Module):
        def __init__(self):
            self.c = nnx.Conv(1, 1, (3, 3), rngs=nnx.Rngs(0))
            self.d = nnx.Conv(1, 1, (3, 3), strides=2, rngs=nnx.Rngs(0))

        def __call__(self, x):
            return self.c(self.d(self.c(x)))

    with pytest.raises(ValueError, match=r"layer 'c' is applied to grids of several sizes"):
        operators.convert(Shared(), jnp.zeros((1, 9, 9, 1)))
