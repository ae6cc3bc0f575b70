"""U-Net building blocks whose down- and up-sampling is resolution-aware (Berner et al. 2025:
"U-Net -> resampled integral kernels").

Each block is a local integral kernel of fixed physical support (:mod:`operators.layers.disco`)
with a reference resolution ``base_resolution`` (cells per axis of the block's *input* grid on
the reference grid). On that grid the blocks are the ordinary U-Net layers; on any other grid
they are quadratures of the same continuous kernels:

* :class:`ConvBlock`: two ``K^d`` kernels, each followed by a quadrature instance norm and the
  activation (same grid in and out);
* :class:`Down`: a stride-2 kernel: the output lives on the input grid with half the cells
  (periodic ``n/2`` points, node grid ``(n-1)/2 + 1``); ValueError when 2 does not divide it;
* :class:`Up`: a kernel on the coarse grid evaluated at the points of the finer grid ``shape``
  (each tap a hat of the coarse spacing: on the reference grid, the ``K^d`` convolution on the
  coarse grid followed by linear interpolation, a "resize-convolution" without the checkerboard
  of a transposed convolution).

Every block takes ``param_dtype`` (parameters, float32) and ``dtype`` (computation; None: the
input's).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from .conv import as_dtype, dimension_numbers, stencil_params
from .disco import DiscoConv, apply_quadrature_taps
from .grid import check_padding, spacing
from .pointwise import QuadratureNorm
from .pointwise import activation as get_activation

__all__ = ["ConvBlock", "Down", "Up"]


class ConvBlock(nnx.Module):
    """``act(norm(K2 act(norm(K1 u))))`` with local integral kernels ``K1: c_in -> c_out``,
    ``K2: c_out -> c_out`` of reference resolution ``base_resolution``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, padding: str = "zeros", norm: bool = True, activation: str = "gelu",
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        get_activation(activation)
        self.act = activation
        dt = {"dtype": dtype, "param_dtype": param_dtype}
        kw = {"dim": dim, "base_resolution": base_resolution, "padding": padding, "rngs": rngs, **dt}
        periodic = check_padding(padding) == "wrap"
        self.conv1 = DiscoConv(in_channels, out_channels, kernel_size, **kw)
        self.conv2 = DiscoConv(out_channels, out_channels, kernel_size, **kw)
        self.norm1 = QuadratureNorm(out_channels, periodic=periodic, rngs=rngs, **dt) if norm else None
        self.norm2 = QuadratureNorm(out_channels, periodic=periodic, rngs=rngs, **dt) if norm else None

    def __call__(self, x):
        act = get_activation(self.act)
        u = self.conv1(x)
        u = act(self.norm1(u) if self.norm1 is not None else u)
        u = self.conv2(u)
        return act(self.norm2(u) if self.norm2 is not None else u)


class Down(DiscoConv):
    """Stride-2 local integral kernel: the grid with half the cells, kernel of fixed physical
    support (reference resolution ``base_resolution`` of the input grid)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, padding: str = "zeros", use_bias: bool = True, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(in_channels, out_channels, kernel_size, dim=dim, base_resolution=base_resolution,
                         stride=2, padding=padding, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                         rngs=rngs)


class Up(nnx.Module):
    """Coarse grid -> finer grid ``shape``: ``y(x) = sum_t w_t (mean of u around x + (t - K//2) H)``
    with hats of the coarse reference spacing ``H = 1 / base_resolution`` (``base_resolution``:
    cells of the coarse input grid on the reference grid)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, padding: str = "zeros", use_bias: bool = True, dtype=None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        dimension_numbers(dim)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"Up needs an odd kernel_size, got {kernel_size}")
        self.dim, self.kernel_size = dim, int(kernel_size)
        self.base_resolution = float(base_resolution)
        self.padding = check_padding(padding)
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, dtype
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias, param_dtype)

    def __call__(self, x, shape: Sequence[int]):
        if x.ndim != self.dim + 2 or x.shape[-1] != self.in_channels or len(shape) != self.dim:
            raise ValueError(f"Up expects (batch, {', '.join(['s'] * self.dim)}, {self.in_channels}) and a "
                             f"{self.dim}-D target shape, got {tuple(x.shape)} and {tuple(shape)}")
        x = as_dtype(x, self.dtype)
        periodic = self.padding == "wrap"
        offsets = tuple(float(t - self.kernel_size // 2) for t in range(self.kernel_size))
        geoms = [(int(n_out), spacing(int(n_in), periodic) * self.base_resolution,
                  spacing(int(n_out), periodic) * self.base_resolution, offsets, self.padding, None)
                 for n_in, n_out in zip(x.shape[1:-1], shape)]
        y = apply_quadrature_taps(x, geoms, self.kernel[...])
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y
