"""Local integral kernels of fixed physical support with a piecewise-linear basis (DISCO-style:
Ocampo et al. 2022; the "conv -> integral kernel" rule of Berner et al. 2025).

A stencil of ``K`` taps per axis learned on a grid of spacing ``h0`` is read as the continuous
kernel ``k(y) = sum_t w_t prod_a phi(y_a / h0 - c_t)``: a linear combination of fixed basis
functions of the offset ``y`` (tensor-product hats ``phi(s) = max(0, 1 - |s|)`` centred on the
taps ``c_t h0``), so its support has a fixed physical radius ``(max |c_t| + 1) h0`` whatever the
grid. On a grid of spacing ``h`` the layer is the quadrature ``sum_j k(y_j - x) v_j (h/h0)^d``,
which equals the stencil when ``h = h0`` and converges to ``h0^-d * integral k(y - x) v(y) dy``
as ``h -> 0`` (second order on nested grids for smooth ``v``: the hats' kinks are grid points).

On a grid *coarser* than the reference (``h > h0``) the hats take the grid's spacing instead,
so each tap reads the linear interpolation of the input at its centre: the stencil applied to
the input interpolated onto the reference grid, sampled at the coarse points.

Normalised taps (as :mod:`operators.layers.local_kernel`): per axis, each tap's quadrature
weights at an output point are divided by their sum, so every tap is a weighted mean of the
input around its centre ``x + c_t h0`` (in the interior of nested grids the sums are exactly 1).
Without it a tap centred on a Dirichlet end, half of whose hat lies outside, would weigh 1 on
the reference grid and ``-> 1/2`` under refinement. With ``zeros`` padding a tap centred outside
the domain reads the zero padding (weight 0), and on grids finer than the reference the end
points carry the trapezoid weight ``h/2``, so a tap's mean is second-order accurate up to the
boundary.

Everything is separable: :func:`axis_operator` gives, per axis, a ``(K, n_out, n_in)`` matrix of
tap weights between an input grid and an output grid (same grid, a grid coarsened by a stride,
a finer grid, or a fixed token grid), and :func:`apply_taps` contracts the axes and then the
taps and channels with the stencil. :class:`DiscoConv` is the layer (stride 1 or more, output on
the input grid coarsened by the stride); :mod:`operators.convert` builds converted ``nnx.Conv``
and ``nnx.ConvTranspose`` layers from the same two functions.

Units of :func:`axis_operator`: lengths are in multiples of the reference spacing ``h0`` (the
layer's input spacing on the grid it was trained on), so input point ``i`` of a grid refined by
``r`` sits at ``i / r``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .conv import dimension_numbers, stencil_params
from .grid import check_padding, spacing

__all__ = ["DiscoConv", "apply_strided_taps", "apply_taps", "axis_operator", "coarsened_size", "hat"]


def hat(s):
    """The hat function ``max(0, 1 - |s|)``."""
    return np.maximum(0.0, 1.0 - np.abs(s))


@functools.lru_cache(maxsize=1024)
def _axis_operator(n_out, n_in, in_step, out_step, offsets, width, mode, phase, out_origin):
    width = max(width, in_step)  # a grid coarser than the reference: linear interpolation
    y = np.arange(n_in) * in_step  # input positions
    x = out_origin + np.arange(n_out) * out_step  # output positions
    centres = x[None, :] + np.asarray(offsets)[:, None]  # (K, n_out)
    delta = y[None, None, :] - centres[:, :, None]  # (K, n_out, n_in)
    length = (n_in - 1) * in_step
    if mode == "wrap":
        period = n_in * in_step
        delta = (delta + 0.5 * period) % period - 0.5 * period
    m = hat(delta / width)
    if mode == "reflect" and n_in > 2:
        # mirror images about both ends (the end points themselves are not repeated)
        inner = np.zeros(n_in)
        inner[1:-1] = 1.0
        for image in (-y, 2.0 * length - y):
            m = m + hat((image[None, None, :] - centres[:, :, None]) / width) * inner
    q = np.full(n_in, in_step)
    if mode == "zeros" and n_in > 1 and in_step < width:
        q[[0, -1]] = 0.5 * in_step  # trapezoid weights at the ends
    m = m * q
    mass = m.sum(axis=2)
    inv = np.where(mass > 1e-12 * in_step, 1.0 / np.where(mass > 1e-12 * in_step, mass, 1.0), 0.0)
    if mode == "zeros":
        eps = 1e-9 * max(1.0, length)
        inv = np.where((centres >= -eps) & (centres <= length + eps), inv, 0.0)
    m = m * inv[:, :, None]
    if phase is not None:
        # transposed convolutions: tap t reads the input only where its centre lies on the
        # reference input lattice (the integers); in between, the indicator is interpolated
        # with hats of the output reference spacing ``phase``
        frac = centres - np.floor(centres)
        lam = hat(frac / phase) + hat((1.0 - frac) / phase)
        m = m * lam[:, :, None]
    m.setflags(write=False)
    return m


def axis_operator(n_out: int, n_in: int, in_step: float, out_step: float, offsets: Sequence[float],
                  width: float = 1.0, mode: str = "zeros", phase: float | None = None,
                  out_origin: float = 0.0) -> np.ndarray:
    """``(K, n_out, n_in)``: per tap, the normalised quadrature weights of the input points for
    each output point along one axis.

    Input point ``i`` sits at ``i * in_step``, output point ``o`` at ``out_origin + o * out_step``
    (units of the reference spacing); tap ``t`` is the hat of half-width ``width`` centred at
    ``x_o + offsets[t]``. ``mode``: ``zeros`` (domain ``[0, (n_in - 1) in_step]``, zero outside,
    trapezoid end weights), ``wrap`` (period ``n_in * in_step``) or ``reflect`` (mirror images).
    ``phase``: for transposed convolutions, multiply tap ``t`` by the hat-interpolated indicator
    (hats of half-width ``phase``) of its centre lying on an integer."""
    m = _axis_operator(int(n_out), int(n_in), float(in_step), float(out_step), tuple(float(o) for o in offsets),
                       float(width), check_padding(mode), None if phase is None else float(phase), float(out_origin))
    return m.copy()


def apply_taps(x, mats: Sequence, kernel):
    """``y[b, I, o] = sum_{t, J, i} prod_a mats[a][t_a, I_a, J_a] x[b, J, i] kernel[t, i, o]`` for a
    channel-last ``x (b, *n_in, c_in)``, per-axis tap matrices ``(K_a, n_out_a, n_in_a)`` and a
    kernel ``(*K, c_in, c_out)``."""
    d = len(mats)
    z = x
    for a, m in enumerate(mats):
        m = jnp.asarray(m, x.dtype)
        ax = 1 + 2 * a  # spatial axis a, after the a (tap, out) pairs already in place
        z = jnp.tensordot(z, m, axes=[[ax], [2]])  # appends (K, n_out)
        z = jnp.moveaxis(z, (-2, -1), (ax, ax + 1))
    taps, sp = "stu"[:d], "ABC"[:d]
    inter = "".join(t + s for t, s in zip(taps, sp))
    return jnp.einsum(f"b{inter}i,{taps}io->b{sp}o", z, kernel.astype(x.dtype))


_PADS = {"zeros": "constant", "wrap": "wrap", "reflect": "reflect"}


@functools.lru_cache(maxsize=1024)
def _axis_band(n_out, n_in, in_step, stride, offsets, mode):
    """The banded form of :func:`_axis_operator` for output points on the input grid coarsened
    ``stride`` times (output ``o`` at ``o * stride * in_step``): the weight of input ``i`` for
    tap ``t`` at output ``o`` is ``kern[t, i - stride * o - lo] * q[i] * inv[t, o]``. Returns
    ``(lo, pad_lo, pad_hi, kern (K, L), q (n_in,), inv (K, n_out))``, or None when the band is
    wider than the grid (then the dense form is used)."""
    r = 1.0 / in_step
    w = max(1.0, in_step)  # hat half-width (reference spacing, or the grid's on coarser grids)
    off = np.asarray(offsets)
    lo = int(np.ceil((off.min() - w) * r + 1e-9))
    hi = int(np.floor((off.max() + w) * r - 1e-9))
    m = np.arange(lo, hi + 1)
    kern = hat((m[None, :] / r - off[:, None]) / w)  # (K, L)
    pad_lo = max(0, -lo)
    pad_hi = max(0, stride * (n_out - 1) + hi - (n_in - 1))
    if max(pad_lo, pad_hi) >= n_in or hi - lo + 1 > n_in:
        return None
    q = np.full(n_in, in_step)
    if mode == "zeros" and n_in > 1 and in_step < w:
        q[[0, -1]] = 0.5 * in_step
    qp = np.pad(q, (pad_lo, pad_hi), mode=_PADS[mode])
    idx = stride * np.arange(n_out)[:, None] + (lo + pad_lo) + np.arange(len(m))[None, :]  # (n_out, L)
    mass = np.einsum("tl,ol->to", kern, qp[idx])
    inv = np.where(mass > 1e-12 * in_step, 1.0 / np.where(mass > 1e-12 * in_step, mass, 1.0), 0.0)
    if mode == "zeros":
        length = (n_in - 1) * in_step
        centres = np.arange(n_out)[None, :] * stride * in_step + off[:, None]
        eps = 1e-9 * max(1.0, length)
        inv = np.where((centres >= -eps) & (centres <= length + eps), inv, 0.0)
    for a in (kern, q, inv):
        a.setflags(write=False)
    return lo, pad_lo, pad_hi, kern, q, inv


def apply_strided_taps(x, geoms, kernel):
    """:func:`apply_taps` for output grids that coarsen the input grid by an integer stride,
    computed from shifted slices within the band (``O(n r)`` per axis instead of ``O(n^2)``).

    ``geoms``: per axis ``(n_out, in_step, stride, offsets, mode)`` (see :func:`axis_operator`:
    output ``o`` at ``o * stride * in_step``, hats of half-width 1)."""
    d = len(geoms)
    z = x
    for a, (n_out, in_step, stride, offsets, mode) in enumerate(geoms):
        ax = 1 + a
        n_in = z.shape[ax]
        band = _axis_band(int(n_out), int(n_in), float(in_step), int(stride), tuple(float(o) for o in offsets),
                          mode)
        if band is None:
            m = _axis_operator(int(n_out), int(n_in), float(in_step), float(in_step) * stride,
                               tuple(float(o) for o in offsets), 1.0, mode, None, 0.0)
            z = jnp.tensordot(z, jnp.asarray(m, z.dtype), axes=[[ax], [2]])  # (..., C, K, n_out)
            z = jnp.moveaxis(z, -1, ax)
            z = z.reshape(z.shape[:-2] + (-1,))
            continue
        lo, pad_lo, pad_hi, kern, q, inv = band
        K, L = kern.shape
        C = z.shape[-1]
        shape_q = [1] * z.ndim
        shape_q[ax] = n_in
        zq = z * jnp.asarray(q, z.dtype).reshape(shape_q)
        widths = [(0, 0)] * z.ndim
        widths[ax] = (pad_lo, pad_hi)
        zp = jnp.pad(zq, widths, mode=_PADS[mode])
        start = lo + pad_lo
        zp = jax.lax.slice_in_dim(zp, start, start + stride * (n_out - 1) + L, axis=ax)
        acc = 0.0
        for l in range(L):  # shifted (strided) slices times the band's weights: fused by XLA
            sl = jax.lax.slice_in_dim(zp, l, l + stride * (n_out - 1) + 1, stride=int(stride), axis=ax)
            acc = acc + sl[..., None] * jnp.asarray(kern[:, l], z.dtype)
        shape_inv = [1] * (z.ndim + 1)
        shape_inv[ax], shape_inv[-1] = n_out, K
        acc = acc * jnp.asarray(inv.T, z.dtype).reshape(shape_inv)
        z = acc.reshape(acc.shape[:-2] + (C * K,))
    taps = "stu"[:d]
    z = z.reshape(z.shape[:-1] + (x.shape[-1],) + tuple(kernel.shape[:d]))
    return jnp.einsum(f"...i{taps},{taps}io->...o", z, kernel.astype(x.dtype))


def coarsened_size(n: int, stride: int, periodic: bool) -> int | None:
    """Points of the grid with ``stride`` times the spacing of an ``n``-point grid (periodic:
    ``n / stride``; node grid: ``(n - 1) / stride + 1``), or None when the stride does not
    divide it."""
    cells = n if periodic else n - 1
    if cells < stride or cells % stride:
        return None
    return cells // stride if periodic else cells // stride + 1


class DiscoConv(nnx.Module):
    """Local integral kernel ``c_in -> c_out`` of fixed physical support, any grid.

    ``kernel_size`` ``K`` (odd) basis functions per axis on the lattice of spacing
    ``h0 = 1 / base_resolution``: on the grid with ``base_resolution`` cells per axis (node grid:
    ``base_resolution + 1`` points, periodic: ``base_resolution``) it is the ordinary ``K^d``
    convolution (zeros / wrap / reflect padding), on any other grid the quadrature of the same
    continuous kernel, whose support is the box of half-width ``radius = (K // 2 + 1) h0``.
    ``stride``: the output lives on the input grid coarsened ``stride`` times (periodic
    ``n / stride`` points, node grid ``(n - 1) / stride + 1``); ValueError when it does not divide.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, stride: int = 1, padding: str = "zeros", use_bias: bool = True,
                 rngs: nnx.Rngs):
        dimension_numbers(dim)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DiscoConv needs an odd kernel_size (taps centred on the output point), got {kernel_size}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if not base_resolution or base_resolution <= 0:
            raise ValueError(f"base_resolution (cells of the reference grid) must be positive, got {base_resolution}")
        self.dim, self.kernel_size, self.stride = dim, int(kernel_size), int(stride)
        self.base_resolution = float(base_resolution)
        self.padding = check_padding(padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias)

    @property
    def radius(self) -> float:
        """Half-width of the kernel's support, in physical units."""
        return (self.kernel_size // 2 + 1) / self.base_resolution

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        periodic = self.padding == "wrap"
        out = tuple(coarsened_size(int(n), self.stride, periodic) for n in shape)
        if None in out:
            layout = "periodic grids need a multiple of the stride" if periodic else \
                "node grids need (points - 1) divisible by the stride"
            raise ValueError(f"DiscoConv with stride {self.stride} cannot coarsen a grid of shape {tuple(shape)} "
                             f"({layout})")
        return out

    def __call__(self, x):
        if x.ndim != self.dim + 2 or x.shape[-1] != self.in_channels:
            raise ValueError(f"DiscoConv expects (batch, {', '.join(['s'] * self.dim)}, {self.in_channels}), "
                             f"got shape {tuple(x.shape)}")
        periodic = self.padding == "wrap"
        shape = x.shape[1:-1]
        offsets = tuple(float(t - self.kernel_size // 2) for t in range(self.kernel_size))
        geoms = [(n_out, spacing(n, periodic) * self.base_resolution, self.stride, offsets, self.padding)
                 for n, n_out in zip(shape, self.output_shape(shape))]
        y = apply_strided_taps(x, geoms, self.kernel[...])
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y
