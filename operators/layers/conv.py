"""Index-space convolutions with a boundary padding mode (the stencils of MgNO, He et al. 2024).

``Conv``: a ``k^d`` stencil, stride 1 or 2, padded by ``k//2`` with the layer's padding mode
(zeros: Dirichlet, wrap: periodic, reflect). ``ConvTranspose``: the stride-2 prolongation,
cropped to the size of the finer grid, so any grid size works (kernel 4 or 3).
Weights are stored ``(*kernel, c_in, c_out)`` and initialised like PyTorch's default
(uniform in ``±1/sqrt(fan_in)``), the scheme the reference models were trained with.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from .grid import check_padding, pad

__all__ = ["Conv", "ConvTranspose", "dimension_numbers", "torch_uniform"]

_SPATIAL = "DHW"


def dimension_numbers(dim: int):
    """Channel-last ``lax`` dimension numbers for a ``dim``-D convolution."""
    if dim not in (1, 2, 3):
        raise ValueError(f"only 1-, 2- and 3-D convolutions are supported, got dim={dim}")
    s = _SPATIAL[-dim:]
    return ("N" + s + "C", s + "IO", "N" + s + "C")


def torch_uniform(rngs: nnx.Rngs, shape, fan_in: int, dtype=jnp.float32):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, PyTorch's default for conv weights and biases."""
    bound = 1.0 / max(fan_in, 1) ** 0.5
    return jax.random.uniform(rngs.params(), shape, dtype, -bound, bound)


def stencil_params(rngs: nnx.Rngs, dim: int, kernel_size: int, in_channels: int,
                   out_channels: int, use_bias: bool) -> tuple[nnx.Param, nnx.Param | None]:
    """The ``(k,)*dim + (c_in, c_out)`` kernel and optional ``(c_out,)`` bias of a stencil layer,
    initialised as PyTorch's convolutions (kernel drawn first, then bias)."""
    fan_in = in_channels * kernel_size**dim
    kernel = nnx.Param(torch_uniform(rngs, (kernel_size,) * dim + (in_channels, out_channels), fan_in))
    bias = nnx.Param(torch_uniform(rngs, (out_channels,), fan_in)) if use_bias else None
    return kernel, bias


class Conv(nnx.Module):
    """``d``-D convolution ``c_in -> c_out`` with a ``k^d`` stencil, stride 1 or 2 and
    ``k//2`` padding in the given mode; ``(b, *n, c_in) -> (b, *ceil(n/stride), c_out)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 stride: int = 1, padding: str = "zeros", use_bias: bool = False, rngs: nnx.Rngs):
        dimension_numbers(dim)
        self.dim, self.stride, self.kernel_size = dim, int(stride), int(kernel_size)
        self.padding = check_padding(padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias)

    def __call__(self, x):
        k = self.kernel_size
        lo = k // 2
        x = pad(x, [(lo, k - 1 - lo)] * self.dim, self.padding)
        y = jax.lax.conv_general_dilated(
            x, self.kernel[...].astype(x.dtype), (self.stride,) * self.dim, "VALID",
            dimension_numbers=dimension_numbers(self.dim))
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class ConvTranspose(nnx.Module):
    """Stride-2 transposed convolution (prolongation) ``c_in -> c_out``, cropped to ``shape``.

    Coarse point ``j`` spreads to fine points ``2j - 1 + t`` for kernel tap ``t = 0..k-1`` (the
    PyTorch ``ConvTranspose(k, stride=2, padding=1)`` layout); the result is cut to the fine
    grid's size, so kernel 4 (even sizes) and kernel 3 (odd sizes) both fit any grid. With
    ``padding="wrap"`` the coarse field is periodic; otherwise values beyond the ends are zero.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, *, dim: int = 2,
                 padding: str = "zeros", rngs: nnx.Rngs):
        dimension_numbers(dim)
        if kernel_size not in (2, 3, 4):
            raise ValueError(f"prolongation kernel must be 2, 3 or 4, got {kernel_size}")
        self.dim, self.kernel_size = dim, int(kernel_size)
        self.periodic = check_padding(padding) == "wrap"
        # PyTorch's ConvTranspose init uses fan_in = out_channels * k^d
        fan_in = out_channels * kernel_size**dim
        self.kernel = nnx.Param(torch_uniform(rngs, (kernel_size,) * dim + (in_channels, out_channels), fan_in))

    def __call__(self, x, shape: Sequence[int]):
        k = self.kernel_size
        w = jnp.flip(self.kernel[...].astype(x.dtype), axis=tuple(range(self.dim)))
        start = 1  # offset of fine point 0 in the full (uncropped) output
        if self.periodic:
            x = pad(x, [(1, 1)] * self.dim, "wrap")
            start = 3
        y = jax.lax.conv_general_dilated(
            x, w, (1,) * self.dim, [(k - 1, k - 1)] * self.dim, lhs_dilation=(2,) * self.dim,
            dimension_numbers=dimension_numbers(self.dim))
        full = y.shape[1:-1]
        index = [slice(None)]
        for n_f, n_full in zip(shape, full):
            stop = start + int(n_f)
            if stop > n_full:  # fine grid larger than the stencil reaches: pad with zeros
                y = jnp.pad(y, [(0, 0)] * (len(index)) + [(0, stop - n_full)] + [(0, 0)] * (y.ndim - len(index) - 1))
            index.append(slice(start, stop))
        return y[tuple(index)]
