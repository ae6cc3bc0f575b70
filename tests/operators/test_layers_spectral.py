"""SpectralConv against explicit DFT sums (1-D, 2-D, 3-D), for both transforms (FFT and truncated
DFT matrices), and its grid independence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from operators.layers import SpectralConv

from .operators_reference import dft_spectral_conv


def _weights(layer):
    return np.asarray(layer.weight_real[...], np.float64), np.asarray(layer.weight_imag[...], np.float64)


TRANSFORMS = ["fft", "dft"]


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("shape, modes", [((16,), (5,)), ((12, 10), (4, 3)), ((8, 6, 8), (3, 2, 3)),
                                          ((9, 7, 5), (2, 3, 2))])
def test_matches_direct_dft(shape, modes, transform):
    layer = SpectralConv(3, 2, modes, dim=len(shape), transform=transform, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(2, *shape, 3))
    got = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    want = dft_spectral_conv(x, *_weights(layer), modes)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_output_on_another_grid_matches_dft(transform):
    layer = SpectralConv(2, 2, (3, 3), transform=transform, rngs=nnx.Rngs(1))
    x = np.random.default_rng(1).normal(size=(1, 12, 14, 2))
    for out_shape in [(24, 20), (7, 9)]:
        got = np.asarray(layer(jnp.asarray(x, jnp.float32), out_shape))
        want = dft_spectral_conv(x, *_weights(layer), (3, 3), out_shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_same_operator_on_every_grid(transform):
    """A band-limited periodic field sampled at 16 and 64 points gives the same output samples."""
    layer = SpectralConv(1, 1, (4, 4), transform=transform, rngs=nnx.Rngs(2))

    def field(n):
        x = np.arange(n) / n
        X, Y = np.meshgrid(x, x, indexing="ij")
        return jnp.asarray((np.sin(2 * np.pi * X) * np.cos(6 * np.pi * Y) + np.cos(4 * np.pi * X))[None, ..., None],
                           jnp.float32)

    coarse, fine = np.asarray(layer(field(16))), np.asarray(layer(field(64)))
    np.testing.assert_allclose(fine[:, ::4, ::4], coarse, atol=1e-5)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_modes_beyond_the_grid_are_dropped(transform):
    """On a grid too small for the modes only the representable ones are used (no error)."""
    layer = SpectralConv(1, 1, 8, dim=1, transform=transform, rngs=nnx.Rngs(0))
    x = np.random.default_rng(3).normal(size=(2, 6, 1))
    got = np.asarray(layer(jnp.asarray(x, jnp.float32)))
    wr, wi = _weights(layer)
    # representable on 6 points: k = 0..3 -> keep the first 4 weights (Nyquist k=3 included)
    want = dft_spectral_conv(x, wr[:4], wi[:4], (4,))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_transforms_have_the_same_gradients():
    """The DFT path is the same linear map as the FFT path, so the gradients (w.r.t. input and
    weights) agree too."""
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 12, 10, 2)), jnp.float32)
    grads = []
    for transform in TRANSFORMS:
        layer = SpectralConv(2, 3, (4, 3), transform=transform, rngs=nnx.Rngs(5))
        graphdef, state = nnx.split(layer)
        loss = lambda st, xx, g=graphdef: jnp.sum(jnp.sin(nnx.merge(g, st)(xx)))
        grads.append(jax.grad(loss, argnums=(0, 1))(state, x))
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4 * np.abs(np.asarray(a)).max())


@pytest.mark.parametrize("shape, modes, out_shape", [((6, 8), (4, 3), (12, 8)), ((6, 5, 4), (3, 2, 2), (12, 10, 8)),
                                                     ((8, 6), (4, 4), (8, 6)), ((9, 7), (5, 4), (4, 3))])
def test_transforms_agree_where_the_grids_cut_the_modes(shape, modes, out_shape):
    """Edge cases of the kept modes: the input's Nyquist frequency kept on a first axis and the
    output grid finer (it sits at -n/2 there), modes beyond both grids, a coarser output grid."""
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, *shape, 2)), jnp.float32)
    fft, dft = (SpectralConv(2, 2, modes, dim=len(shape), transform=t, rngs=nnx.Rngs(7)) for t in TRANSFORMS)
    a, b = np.asarray(fft(x, out_shape)), np.asarray(dft(x, out_shape))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_auto_transform_picks_dft_for_few_modes_on_cpu():
    layer = SpectralConv(1, 1, 4, dim=1, rngs=nnx.Rngs(0))
    assert layer.transform == "auto"
    assert layer._use_dft((64,), (64,)) == (jax.default_backend() == "cpu")
    wide = SpectralConv(1, 1, (40, 8), rngs=nnx.Rngs(0))
    assert not wide._use_dft((256, 256), (256, 256))  # 80 frequencies on the first axis


def test_jit_and_grad():
    layer = SpectralConv(2, 2, (3, 3), rngs=nnx.Rngs(0))
    x = jnp.ones((1, 8, 8, 2))
    g = jax.grad(lambda xx: jnp.sum(layer(xx) ** 2))(x)
    assert g.shape == x.shape
    y = nnx.jit(lambda m, xx: m(xx))(layer, x)
    assert y.shape == (1, 8, 8, 2)


def test_bad_input():
    layer = SpectralConv(2, 2, (3, 3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="SpectralConv expects"):
        layer(jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="modes"):
        SpectralConv(2, 2, (3,), dim=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown transform 'fftw'"):
        SpectralConv(2, 2, (3, 3), transform="fftw", rngs=nnx.Rngs(0))
