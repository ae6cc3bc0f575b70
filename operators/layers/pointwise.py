"""Pointwise layers: 1x1 convolutions, channel MLPs, grid positional embedding, quadrature norm.

All act on channel-last fields ``(batch, *spatial, channels)`` and are resolution independent:
a pointwise map commutes with refining the grid (NN-to-NO rule: dense layers act per point).
``param_dtype`` / ``dtype``: the dtype of the parameters (float32) and of the computation
(None: the input's), as in :mod:`operators.layers.conv`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .conv import as_dtype, torch_uniform
from .grid import grid_points, quadrature_weights

__all__ = ["ChannelMLP", "GridEmbedding", "Pointwise", "QuadratureNorm", "activation"]


def gelu(x):
    """Exact (erf) GELU ``x Phi(x)``, written as PyTorch defines it: ``x (1 + erf(x / sqrt 2)) / 2``.

    Same function as ``jax.nn.gelu(approximate=False)``, which goes through erfc; this form makes
    an FNO training step on XLA CPU about 1.15x faster (measured at 64^2 and 128^2).
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * np.asarray(0.5**0.5, x.dtype)))


_ACTS = {
    "gelu": gelu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
    "identity": lambda x: x,
}


def activation(name: str):
    """Activation by name (``gelu`` is the exact erf GELU, as PyTorch's default)."""
    try:
        return _ACTS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTS)}") from None


class Pointwise(nnx.Module):
    """1x1 convolution ``c_in -> c_out`` (``W u + b`` at every grid point)."""

    def __init__(self, in_channels: int, out_channels: int, *, use_bias: bool = True, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, dtype
        self.kernel = nnx.Param(torch_uniform(rngs, (in_channels, out_channels), in_channels, param_dtype))
        self.bias = (nnx.Param(torch_uniform(rngs, (out_channels,), in_channels, param_dtype)) if use_bias
                     else None)

    def __call__(self, x):
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"Pointwise expects {self.in_channels} channels last, got shape {tuple(x.shape)}")
        x = as_dtype(x, self.dtype)
        # one (points, c_in) x (c_in, c_out) matrix product: its gradient is a plain GEMM, which
        # XLA CPU runs 2-3x faster than that of the equivalent multi-axis einsum
        y = (x.reshape(-1, self.in_channels) @ self.kernel[...].astype(x.dtype)).reshape(
            *x.shape[:-1], self.out_channels)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class ChannelMLP(nnx.Module):
    """Pointwise two-layer MLP ``c_in -> hidden -> c_out`` (the lifting/projection of FNO)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, *, act: str = "gelu",
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.fc1 = Pointwise(in_channels, hidden, **kw)
        self.fc2 = Pointwise(hidden, out_channels, **kw)
        self.act = act
        activation(act)

    def __call__(self, x):
        return self.fc2(activation(self.act)(self.fc1(x)))


class GridEmbedding(nnx.Module):
    """Append the coordinates of the unit-cube grid as channels: ``c -> c + d`` (positional
    embedding as a function of the physical coordinate, not of the pixel index)."""

    def __init__(self, dim: int, periodic: bool = False):
        self.dim, self.periodic = dim, bool(periodic)

    def __call__(self, x):
        spatial = x.shape[1:-1]
        axes = [grid_points(n, self.periodic) for n in spatial]
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)
        g = jnp.broadcast_to(jnp.asarray(mesh, x.dtype), (x.shape[0], *mesh.shape))
        return jnp.concatenate([x, g], axis=-1)


class QuadratureNorm(nnx.Module):
    """Instance normalisation with quadrature means (Berner et al. 2025): mean and variance over
    space are integrals, so the statistics converge as the grid is refined (trapezoid weights on
    node grids, rectangle rule on periodic ones), then a per-channel affine map."""

    def __init__(self, channels: int, *, periodic: bool = False, eps: float = 1e-5, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.periodic, self.eps, self.dtype = bool(periodic), eps, dtype
        self.scale = nnx.Param(jnp.ones((channels,), param_dtype))
        self.bias = nnx.Param(jnp.zeros((channels,), param_dtype))

    def __call__(self, x):
        x = as_dtype(x, self.dtype)
        w = jnp.asarray(1.0, x.dtype)
        for n in x.shape[1:-1]:
            w = w[..., None] * jnp.asarray(quadrature_weights(n, self.periodic), x.dtype)
        w = w[None, ..., None]
        axes = tuple(range(1, x.ndim - 1))
        mean = jnp.sum(w * x, axis=axes, keepdims=True)
        var = jnp.sum(w * (x - mean) ** 2, axis=axes, keepdims=True)
        return ((x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...].astype(x.dtype)
                + self.bias[...].astype(x.dtype))
