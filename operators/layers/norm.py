"""Layer normalisation over a whole field, as PyTorch's ``LayerNorm([C, *grid])`` (Ba et al. 2016).

The reference MgNO normalises ``u_l + P u_{l+1}`` after every prolongation of its Navier-Stokes
model, and every layer's output of its Helmholtz model, over channels and space together, with
one learnt scale and shift per grid point and channel: the layer is tied to the grid it was
built for (a different grid is a named error).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from .conv import as_dtype

__all__ = ["GridLayerNorm"]


class GridLayerNorm(nnx.Module):
    """``(x - mean) / sqrt(var + eps) * scale + bias`` with mean and (biased) variance over all
    of ``(*grid, channels)`` per sample; ``scale``, ``bias``: ``(*grid, channels)``."""

    def __init__(self, channels: int, grid: Sequence[int], *, eps: float = 1e-5, affine: bool = True,
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        self.shape = (*(int(n) for n in grid), int(channels))
        if any(n < 1 for n in self.shape):
            raise ValueError(f"GridLayerNorm needs a grid and channels >= 1, got {self.shape}")
        self.eps, self.dtype = float(eps), dtype
        self.scale = nnx.Param(jnp.ones(self.shape, param_dtype)) if affine else None
        self.bias = nnx.Param(jnp.zeros(self.shape, param_dtype)) if affine else None

    def __call__(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"this layer norm was built for fields of shape (batch, *{self.shape}) "
                             f"(the model's grid_size), got {tuple(x.shape)}; rebuild the model with "
                             "grid_size set to this grid")
        x = as_dtype(x, self.dtype)
        axes = tuple(range(1, x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...].astype(y.dtype) + self.bias[...].astype(y.dtype)
        return y
