"""Vision-transformer layers in physical units (Berner et al. 2025: patching and positional
encodings defined on the domain, not on the pixel grid).

* :class:`PatchEmbed`: the patches are cells of fixed physical size ``patch_size / base_resolution``,
  so the number of tokens, ``(base_resolution / patch_size)^d``, is the same on every grid. A
  token is the integral of the input against a kernel of ``patch_size^d`` hat basis functions
  (one per pixel of the reference grid, :mod:`operators.layers.disco`), with normalised
  quadrature weights: on the reference grid it is the usual stride-``p`` patch convolution, on
  finer grids the quadrature of the same integral.
* :class:`PositionalEncoding`: a learned function of the physical position (multilinear
  interpolation of values on a lattice of cell centres), evaluated at the tokens' centres.
* :class:`PatchDecode`: each token gives the values of the output on its patch's reference
  pixels; the output on any grid is their (multi)linear interpolation at the grid's points.
* :class:`TransformerBlock`: pre-norm multi-head self-attention and MLP on the tokens (the tokens
  are equal cells of the domain, so their mean is the rectangle-rule integral).

Every layer takes ``param_dtype`` (parameters, float32) and ``dtype`` (computation; None: the
input's, or the table's for the positional encoding).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .conv import as_dtype, dimension_numbers, torch_uniform
from .disco import apply_quadrature_taps
from .grid import check_padding, spacing
from .pointwise import activation as get_activation

__all__ = ["PatchDecode", "PatchEmbed", "PositionalEncoding", "TransformerBlock", "token_centres"]


def _tokens(base_resolution: int, patch_size: int) -> int:
    if patch_size < 1 or base_resolution < patch_size or base_resolution % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide base_resolution {base_resolution} "
                         "(the patches tile the domain)")
    return base_resolution // patch_size


def token_centres(tokens: int, dim: int) -> np.ndarray:
    """``(tokens^dim, dim)``: physical centres ``(J + 1/2) / tokens`` of the patches."""
    c = (np.arange(tokens) + 0.5) / tokens
    return np.stack(np.meshgrid(*[c] * dim, indexing="ij"), axis=-1).reshape(-1, dim)


class PatchEmbed(nnx.Module):
    """``(b, *n, c_in) -> (b, tokens^d, embed)``, patches of physical size ``patch_size / base_resolution``."""

    def __init__(self, in_channels: int, embed: int, patch_size: int, *, dim: int = 2, base_resolution: int,
                 padding: str = "zeros", dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        dimension_numbers(dim)
        self.tokens = _tokens(int(base_resolution), int(patch_size))
        self.dim, self.patch_size, self.base_resolution = dim, int(patch_size), int(base_resolution)
        self.padding = check_padding(padding)
        self.in_channels, self.embed, self.dtype = in_channels, embed, dtype
        fan_in = in_channels * patch_size**dim
        self.kernel = nnx.Param(torch_uniform(rngs, (patch_size,) * dim + (in_channels, embed), fan_in, param_dtype))
        self.bias = nnx.Param(torch_uniform(rngs, (embed,), fan_in, param_dtype))

    def __call__(self, x):
        if x.ndim != self.dim + 2 or x.shape[-1] != self.in_channels:
            raise ValueError(f"PatchEmbed expects (batch, {', '.join(['s'] * self.dim)}, {self.in_channels}), "
                             f"got shape {tuple(x.shape)}")
        x = as_dtype(x, self.dtype)
        periodic = self.padding == "wrap"
        p = self.patch_size
        offsets = tuple(float(t) for t in range(p))
        geoms = [(self.tokens, spacing(int(n), periodic) * self.base_resolution, float(p), offsets, self.padding, None)
                 for n in x.shape[1:-1]]
        y = apply_quadrature_taps(x, geoms, self.kernel[...]) + self.bias[...].astype(x.dtype)
        return y.reshape(x.shape[0], -1, self.embed)


class PositionalEncoding(nnx.Module):
    """A learned function of the physical position: values on the centres of ``resolution^d``
    cells, multilinearly interpolated (clamped at the ends, or periodic)."""

    def __init__(self, embed: int, resolution: int, *, dim: int = 2, periodic: bool = False, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.dim, self.resolution, self.periodic, self.dtype = dim, int(resolution), bool(periodic), dtype
        self.table = nnx.Param(0.02 * jax.random.normal(rngs.params(), (resolution,) * dim + (embed,), param_dtype))

    def __call__(self, positions):
        """``positions (N, dim)`` in [0, 1] -> ``(N, embed)``."""
        pos = np.asarray(positions, np.float64)
        t = as_dtype(self.table[...], self.dtype)
        mats = [jnp.asarray(_interp(tuple(pos[:, a].tolist()), self.resolution, self.periodic), t.dtype)
                for a in range(self.dim)]
        # sum over the lattice: prod_a mats[a][N, k_a] table[k_1..k_d, e]
        out = jnp.tensordot(mats[0], t, axes=[[1], [0]])
        for a in range(1, self.dim):
            out = jnp.einsum("nk,nk...->n...", mats[a], out)
        return out


@functools.lru_cache(maxsize=256)
def _interp(pos: tuple, resolution: int, periodic: bool) -> np.ndarray:
    """``(N, resolution)`` linear interpolation weights of cell-centre values at ``pos``."""
    s = np.asarray(pos) * resolution - 0.5
    i0 = np.floor(s).astype(int)
    f = s - i0
    m = np.zeros((len(s), resolution))
    rows = np.arange(len(s))
    for i, w in ((i0, 1.0 - f), (i0 + 1, f)):
        i = i % resolution if periodic else np.clip(i, 0, resolution - 1)
        np.add.at(m, (rows, i), w)
    return m


@functools.lru_cache(maxsize=256)
def _lattice_interp(n_out: int, lattice: int, step: float, periodic: bool) -> np.ndarray:
    """``(n_out, lattice)``: linear interpolation at ``o * step`` of values on the integers
    ``0..lattice-1`` (periodic with period ``lattice``, else constant beyond the last)."""
    s = np.arange(n_out) * step
    i0 = np.floor(s + 1e-9).astype(int)
    f = np.clip(s - i0, 0.0, 1.0)
    m = np.zeros((n_out, lattice))
    rows = np.arange(n_out)
    for i, w in ((i0, 1.0 - f), (i0 + 1, f)):
        i = i % lattice if periodic else np.clip(i, 0, lattice - 1)
        np.add.at(m, (rows, i), w)
    return m


class PatchDecode(nnx.Module):
    """``(b, tokens^d, embed) -> (b, *shape, c_out)``: per token, the values at its patch's
    ``patch_size^d`` reference pixels, linearly interpolated onto the grid ``shape``."""

    def __init__(self, embed: int, out_channels: int, patch_size: int, *, dim: int = 2, base_resolution: int,
                 padding: str = "zeros", dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.tokens = _tokens(int(base_resolution), int(patch_size))
        self.dim, self.patch_size, self.base_resolution = dim, int(patch_size), int(base_resolution)
        self.periodic = check_padding(padding) == "wrap"
        self.embed, self.out_channels, self.dtype = embed, out_channels, dtype
        k = patch_size**dim * out_channels
        self.kernel = nnx.Param(torch_uniform(rngs, (embed, k), embed, param_dtype))
        self.bias = nnx.Param(torch_uniform(rngs, (k,), embed, param_dtype))

    def __call__(self, z, shape: Sequence[int]):
        z = as_dtype(z, self.dtype)
        b, d, p, T = z.shape[0], self.dim, self.patch_size, self.tokens
        v = z @ self.kernel[...].astype(z.dtype) + self.bias[...].astype(z.dtype)  # (b, T^d, p^d c)
        v = v.reshape((b,) + (T,) * d + (p,) * d + (self.out_channels,))
        # interleave token and pixel axes: (b, T, p, T, p, ..., c) -> the reference pixel lattice
        perm = [0] + [ax for a in range(d) for ax in (1 + a, 1 + d + a)] + [1 + 2 * d]
        u = jnp.transpose(v, perm).reshape((b,) + (T * p,) * d + (self.out_channels,))
        for a, n in enumerate(shape):
            step = spacing(int(n), self.periodic) * self.base_resolution
            m = jnp.asarray(_lattice_interp(int(n), T * p, step, self.periodic), u.dtype)
            u = jnp.moveaxis(jnp.tensordot(m, jnp.moveaxis(u, 1 + a, 0), axes=1), 0, 1 + a)
        return u


class TransformerBlock(nnx.Module):
    """Pre-norm block ``z + MHSA(LN z)``, then ``z + MLP(LN z)`` on ``(b, tokens, embed)``."""

    def __init__(self, embed: int, heads: int, mlp_hidden: int, *, activation: str = "gelu", dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        if embed % heads:
            raise ValueError(f"embed {embed} must be divisible by heads {heads}")
        get_activation(activation)
        self.heads, self.act = heads, activation
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.norm1 = nnx.LayerNorm(embed, **kw)
        self.qkv = nnx.Linear(embed, 3 * embed, **kw)
        self.proj = nnx.Linear(embed, embed, **kw)
        self.norm2 = nnx.LayerNorm(embed, **kw)
        self.fc1 = nnx.Linear(embed, mlp_hidden, **kw)
        self.fc2 = nnx.Linear(mlp_hidden, embed, **kw)

    def __call__(self, z):
        b, n, e = z.shape
        h = self.heads
        q, k, v = jnp.split(self.qkv(self.norm1(z)).reshape(b, n, 3 * h, e // h), 3, axis=2)
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k) * float(1.0 / np.sqrt(e // h))
        a = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, axis=-1), v).reshape(b, n, e)
        z = z + self.proj(a)
        return z + self.fc2(get_activation(self.act)(self.fc1(self.norm2(z))))
