"""Differential kernels: finite-difference stencils scaled by the grid spacing (the "diffconv"
of Liu-Schiaffini et al. 2024, one of the conversion rules of Berner et al. 2025).

A learned stencil ``w`` (``K^d`` taps, ``K`` odd) splits into its sum ``S = sum_t w_t`` (a
pointwise map) and a zero-sum part ``D = w - S delta_centre``. On a grid of spacing ``h`` the
layer computes ``S u + (h0 / h) (D * u)`` with ``D * u`` the index-space stencil: since the taps
of ``D`` sum to zero, ``(D * u)(x) = sum_t D_t (u(x + t h) - u(x)) = h sum_t D_t t . grad u(x)
+ O(h^2)``, so the output converges (first order) to the differential operator
``S u + h0 sum_t D_t t . grad u`` as ``h -> 0``. On the reference grid (``h = h0``) the layer is
the plain convolution with ``w``.

Boundaries: ``wrap`` (periodic) and ``reflect`` pad as their names say; ``zeros`` (Dirichlet
grids) pads the difference part by repeating the end values, because differences against a zero
extension would grow like ``u / h`` at the ends (a one-sided difference is used there instead).
The grid must have the same spacing along every axis (the stencil mixes the axes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .conv import as_dtype, dimension_numbers, stencil_params
from .grid import check_padding, spacing

__all__ = ["DiffConv"]

_JNP_PAD = {"zeros": "edge", "wrap": "wrap", "reflect": "reflect"}


class DiffConv(nnx.Module):
    """Differential kernel ``c_in -> c_out``: ``S u + (h0/h) (D * u)``, reference spacing
    ``h0 = 1 / base_resolution`` (any grid; equal spacing along the axes); ``param_dtype`` / ``dtype``:
    parameter and computation dtypes (None: the input's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, padding: str = "zeros", use_bias: bool = True, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        dimension_numbers(dim)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"DiffConv needs an odd kernel_size >= 3, got {kernel_size}")
        if not base_resolution or base_resolution <= 0:
            raise ValueError(f"base_resolution must be positive, got {base_resolution}")
        self.dim, self.kernel_size = dim, int(kernel_size)
        self.base_resolution = float(base_resolution)
        self.padding = check_padding(padding)
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, dtype
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias, param_dtype)

    def grid_spacing(self, shape) -> float:
        periodic = self.padding == "wrap"
        hs = [spacing(int(n), periodic) for n in shape]
        if max(hs) - min(hs) > 1e-9 * max(hs):
            raise ValueError(f"DiffConv needs the same spacing along every axis, got a grid of shape {tuple(shape)} "
                             f"(spacings {[round(h, 6) for h in hs]})")
        return hs[0]

    def __call__(self, x):
        if x.ndim != self.dim + 2 or x.shape[-1] != self.in_channels:
            raise ValueError(f"DiffConv expects (batch, {', '.join(['s'] * self.dim)}, {self.in_channels}), "
                             f"got shape {tuple(x.shape)}")
        x = as_dtype(x, self.dtype)
        h = self.grid_spacing(x.shape[1:-1])
        w = self.kernel[...].astype(x.dtype)
        axes = tuple(range(self.dim))
        s = w.sum(axis=axes)  # (c_in, c_out)
        centre = (self.kernel_size // 2,) * self.dim
        d = w.at[centre].add(-s)  # zero-sum part
        r = self.kernel_size // 2
        xp = jnp.pad(x, [(0, 0)] + [(r, r)] * self.dim + [(0, 0)], mode=_JNP_PAD[self.padding])
        # padded by one point past the end and cropped: XLA's CPU backend runs unpadded stride-1
        # convolutions on a much slower path (see operators.layers.disco.apply_lattice_taps)
        diff = jax.lax.conv_general_dilated(xp, d, (1,) * self.dim, [(0, 1)] * self.dim,
                                            dimension_numbers=dimension_numbers(self.dim))
        diff = diff[(slice(None), *[slice(0, n) for n in x.shape[1:-1]])]
        y = x @ s + diff * jnp.asarray(1.0 / (h * self.base_resolution), x.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y
