"""Index-space convolutions with a boundary padding mode (the stencils of MgNO, He et al. 2024).

``Conv``: a ``k^d`` stencil, stride 1 or 2, padded by ``k//2`` with the layer's padding mode
(zeros: Dirichlet, wrap: periodic, reflect). ``ConvTranspose``: the stride-2 prolongation,
cropped to the size of the finer grid, so any grid size works (kernel 4 or 3).
Weights are stored ``(*kernel, c_in, c_out)`` and initialised like PyTorch's default
(uniform in ``±1/sqrt(fan_in)``), the scheme the reference models were trained with.

Every layer takes ``param_dtype`` (the dtype of its parameters, float32 by default) and
``dtype`` (the dtype it computes in; None: the input's dtype, the parameters cast to it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .grid import check_padding, pad

__all__ = ["Conv", "ConvTranspose", "as_dtype", "dimension_numbers", "stencil_conv", "torch_uniform"]

_SPATIAL = "DHW"


def dimension_numbers(dim: int):
    """Channel-last ``lax`` dimension numbers for a ``dim``-D convolution."""
    if dim not in (1, 2, 3):
        raise ValueError(f"only 1-, 2- and 3-D convolutions are supported, got dim={dim}")
    s = _SPATIAL[-dim:]
    return ("N" + s + "C", s + "IO", "N" + s + "C")


def as_dtype(x, dtype):
    """``x`` in the computation dtype of a layer (``dtype=None``: the input's own)."""
    return x if dtype is None else x.astype(dtype)


def _lax_conv(x, w, stride, widths):
    return jax.lax.conv_general_dilated(x, w, stride, widths, dimension_numbers=dimension_numbers(x.ndim - 2))


def _tap_products(x, dy, kernel_shape, stride, widths):
    """The kernel gradient ``(*k, c_in, c_out)`` of a convolution: for every tap ``t``,
    ``sum_{b, p} x_pad[b, stride p + t, c_in] dy[b, p, c_out]``, one matrix product per tap over
    the strided view of the zero-padded input (no transposed copy of ``x`` or ``dy``)."""
    x = jnp.pad(x, [(0, 0), *widths, (0, 0)])
    out = dy.shape[1:-1]
    reduce = tuple(range(len(out) + 1))
    products = []
    for taps in np.ndindex(*kernel_shape):
        view = (slice(None), *(slice(t, t + s * (m - 1) + 1, s) for t, s, m in zip(taps, stride, out)),
                slice(None))
        products.append(jax.lax.dot_general(x[view], dy, ((reduce, reduce), ((), ()))))
    return jnp.stack(products).reshape(*kernel_shape, x.shape[-1], dy.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def stencil_conv(x, w, stride: tuple[int, ...], widths: tuple[tuple[int, int], ...]):
    """Channel-last convolution ``x (b, *n, c_in)``, ``w (*k, c_in, c_out)``, zero padding
    ``widths`` per axis: ``lax.conv_general_dilated``, whose kernel gradient is taken as one
    matrix product per tap (:func:`_tap_products`) instead of XLA's kernel-gradient convolution.
    Same values and gradients (to rounding). Why: on XLA CPU the kernel gradient of the
    prolongation's 2x2-tap, 24 -> 96 channel convolution (32^2 coarse points, batch 4) cost ~25x
    its forward pass (XLA transposes both operands to a batch-as-feature layout first); per tap
    it costs ~2x, and an MgNO training step at 64^2 ~40% less CPU time
    (bench/mgno_vs_torch.py). For the 3x3 smoothers and restrictions XLA's own is faster, so
    :class:`Conv` keeps it."""
    return _lax_conv(x, w, stride, widths)


def _stencil_conv_fwd(x, w, stride, widths):
    return _lax_conv(x, w, stride, widths), (x, w)


def _stencil_conv_bwd(stride, widths, res, dy):
    x, w = res
    (dx,) = jax.vjp(lambda x: _lax_conv(x, w, stride, widths), x)[1](dy)
    return dx, _tap_products(x, dy, w.shape[:-2], stride, widths).astype(w.dtype)


stencil_conv.defvjp(_stencil_conv_fwd, _stencil_conv_bwd)


def torch_uniform(rngs: nnx.Rngs, shape, fan_in: int, dtype=jnp.float32):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, PyTorch's default for conv weights and biases."""
    bound = 1.0 / max(fan_in, 1) ** 0.5
    return jax.random.uniform(rngs.params(), shape, dtype, -bound, bound)


def stencil_params(rngs: nnx.Rngs, dim: int, kernel_size: int, in_channels: int,
                   out_channels: int, use_bias: bool, param_dtype=jnp.float32,
                   fan_in: int | None = None) -> tuple[nnx.Param, nnx.Param | None]:
    """The ``(k,)*dim + (c_in, c_out)`` kernel and optional ``(c_out,)`` bias of a stencil layer,
    initialised as PyTorch's convolutions (kernel drawn first, then bias; ``fan_in`` defaults to
    ``c_in k^d``, a transposed convolution's is ``c_out k^d``)."""
    fan_in = in_channels * kernel_size**dim if fan_in is None else fan_in
    kernel = nnx.Param(torch_uniform(rngs, (kernel_size,) * dim + (in_channels, out_channels), fan_in,
                                     param_dtype))
    bias = nnx.Param(torch_uniform(rngs, (out_channels,), fan_in, param_dtype)) if use_bias else None
    return kernel, bias


class Conv(nnx.Module):
    """``d``-D convolution ``c_in -> c_out`` with a ``k^d`` stencil, stride 1 or 2 and
    ``k//2`` padding in the given mode; ``(b, *n, c_in) -> (b, *ceil(n/stride), c_out)``.
    ``valid=True``: no padding, ``n -> (n - k) // stride + 1`` (the reference MgNO's Helmholtz
    restrictions, 101 -> 50 -> 24 -> 11 -> 5)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 stride: int = 1, padding: str = "zeros", use_bias: bool = False, valid: bool = False,
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        dimension_numbers(dim)
        self.dim, self.stride, self.kernel_size = dim, int(stride), int(kernel_size)
        self.padding, self.valid, self.dtype = check_padding(padding), bool(valid), dtype
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias, param_dtype)

    def __call__(self, x):
        k = self.kernel_size
        lo = k // 2
        x = as_dtype(x, self.dtype)
        widths = "VALID"
        if not self.valid and self.padding == "zeros":  # zero padding inside the convolution
            widths = [(lo, k - 1 - lo)] * self.dim
        elif not self.valid:
            x = pad(x, [(lo, k - 1 - lo)] * self.dim, self.padding)
        y = jax.lax.conv_general_dilated(
            x, self.kernel[...].astype(x.dtype), (self.stride,) * self.dim, widths,
            dimension_numbers=dimension_numbers(self.dim))
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class ConvTranspose(nnx.Module):
    """Stride-2 transposed convolution (prolongation) ``c_in -> c_out``, cropped to ``shape``.

    Coarse point ``j`` spreads to fine points ``2j - crop + t`` for kernel tap ``t = 0..k-1``
    (the PyTorch ``ConvTranspose(k, stride=2, padding=crop)`` layout; ``crop=1`` is MgNO's
    Darcy / Navier-Stokes prolongation, ``crop=0`` its Helmholtz one); the result is cut to the
    fine grid's size, so kernel 4 (even sizes) and kernel 3 (odd sizes) both fit any grid. With
    ``padding="wrap"`` the coarse field is periodic; otherwise values beyond the ends are zero
    (PyTorch's ConvTranspose2d, which cannot wrap: the reference's behaviour on every grid).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, *, dim: int = 2,
                 padding: str = "zeros", crop: int = 1, dtype=None, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        dimension_numbers(dim)
        if kernel_size not in (2, 3, 4):
            raise ValueError(f"prolongation kernel must be 2, 3 or 4, got {kernel_size}")
        if crop not in (0, 1):
            raise ValueError(f"prolongation crop (PyTorch padding) must be 0 or 1, got {crop}")
        self.dim, self.kernel_size, self.crop, self.dtype = dim, int(kernel_size), int(crop), dtype
        self.periodic = check_padding(padding) == "wrap"
        # PyTorch's ConvTranspose init uses fan_in = out_channels * k^d
        self.kernel, _ = stencil_params(rngs, dim, kernel_size, in_channels, out_channels, False,
                                        param_dtype, fan_in=out_channels * kernel_size**dim)

    def __call__(self, x, shape: Sequence[int]):
        x = as_dtype(x, self.dtype)
        d = self.dim
        # sub-pixel form: fine point 2m + a (of the uncropped output) gets sum_s x[m - s] w[a + 2s],
        # s = 0, 1, so every parity a = (a_1..a_d) is a plain 2^d-tap convolution of the coarse
        # field padded by one point: one stride-1 convolution with 2^d c_out output channels,
        # then the parities interleaved. Same sums as the lhs-dilated transposed convolution,
        # but its gradient is a plain convolution too (on XLA CPU the layer's gradient ran ~20x
        # faster at 64^2 x 24 channels, an MgNO training step ~2x; bench/mgno_vs_torch.py), and
        # its kernel gradient one matrix product per tap (stencil_conv: ~5x faster again).
        w = self.kernel[...].astype(x.dtype)
        w = jnp.pad(w, [(0, 4 - self.kernel_size)] * d + [(0, 0), (0, 0)])
        taps = np.array([[a + 2 * (1 - q) for q in (0, 1)] for a in (0, 1)])  # taps[a, q]
        index = []
        for i in range(d):
            view = [1] * (2 * d)
            view[i] = view[d + i] = 2
            index.append(taps.reshape(view))
        w = w[tuple(index)]  # (a_1..a_d, q_1..q_d, c_in, c_out)
        c_in, c_out = w.shape[-2:]
        w = jnp.transpose(w, [*range(d, 2 * d), 2 * d, *range(d), 2 * d + 1]).reshape((2,) * d + (c_in, -1))
        if self.periodic:
            y = stencil_conv(pad(x, [(1, 1)] * d, "wrap"), w, (1,) * d, ((0, 0),) * d)
        else:
            y = stencil_conv(x, w, (1,) * d, ((1, 1),) * d)
        n = y.shape[1:-1]  # coarse + 1 per axis
        y = y.reshape(y.shape[0], *n, *(2,) * d, c_out)
        y = jnp.transpose(y, [0, *(a for i in range(d) for a in (1 + i, 1 + d + i)), 2 * d + 1])
        y = y.reshape(y.shape[0], *(2 * m for m in n), c_out)
        start = self.crop  # offset of fine point 0 in the uncropped output
        index = [slice(None)]
        for axis, n_f in enumerate(shape):
            stop, n_full = start + int(n_f), y.shape[1 + axis]
            if stop > n_full:  # fine grid larger than the stencil reaches: pad with zeros
                widths = [(0, 0)] * y.ndim
                widths[1 + axis] = (0, stop - n_full)
                y = jnp.pad(y, widths)
            index.append(slice(start, stop))
        return y[tuple(index)]
