"""Local integral kernels of fixed physical size: the NN-to-NO conversion of a 3x3 stencil
(Berner et al. 2025, rule 4: receptive fields in physical units, sums with quadrature weights).

A stencil ``w[t]`` (``t`` in ``{0, 1, 2}^d``) learned for a reference spacing ``h0`` is read as
the continuous kernel ``k(y) = sum_t w[t] prod_a phi(y_a / h0 - (t_a - 1))`` with the hat
function ``phi(s) = max(0, 1 - |s|)`` (support ``|y_a| < 2 h0``). On a grid of spacing ``h`` it
acts as the quadrature ``sum_j k(x_j - x_i) v_j (h/h0)^d``, which equals the stencil when
``h = h0`` and converges to ``h0^-d * integral k(y - x) v(y) dy`` as ``h -> 0``.

Normalised taps: per axis, each tap's quadrature weights at an output point are divided by their
sum (its "mass"), so every tap is a weighted mean of the input around its centre
``x + (t - 1) h0``. In the interior of a grid with ``h0 / h`` an integer the masses are exactly 1
(nothing changes); at a Dirichlet end (zero padding) a tap centred on the end point has only half
of its hat inside the domain, and without the normalisation its weight would drift from 1 (the
reference grid) to 3/4 (``h0/2``), 5/8, ... -> 1/2 under refinement: an O(1) change of the
output along the boundary that no smoothness of the input removes. A tap centred outside the
domain reads the zero padding (weight 0), as the stencil does. Three forms:

* :class:`LocalKernelConv`: same grid in and out (a convolution with the sampled kernel);
* :class:`KernelRestriction`: from a grid onto a coarser grid (stride-2 conv when ``h = h0``);
* :class:`KernelProlongation`: from a coarse grid onto a grid, by evaluating the kernel sum at
  the fine points (no quadrature). With ``h0`` the fine spacing and a coarse grid of spacing
  ``2 h0`` it is the transposed stride-2 conv with kernel 3; with ``h0`` the coarse spacing it is
  the 3^d conv on the coarse grid followed by (multi)linear interpolation.

Boundaries as the padding modes: ``zeros`` (nothing outside), ``wrap`` (periodic distances),
``reflect`` (mirror images about the ends, excluding the end points themselves).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .conv import as_dtype, dimension_numbers, torch_uniform
from .grid import check_padding, grid_points, pad, spacing

__all__ = ["KernelProlongation", "KernelRestriction", "LocalKernelConv", "hat", "tap_matrix"]


def hat(s):
    """The hat function ``max(0, 1 - |s|)``."""
    return np.maximum(0.0, 1.0 - np.abs(s))


@functools.lru_cache(maxsize=512)
def _tap_matrix(n_out: int, n_in: int, h0: float, mode: str, quadrature: bool) -> np.ndarray:
    periodic = mode == "wrap"
    x_out, x_in = grid_points(n_out, periodic), grid_points(n_in, periodic)
    delta = x_in[None, :] - x_out[:, None]  # (n_out, n_in): y - x
    images = []
    if periodic:
        delta = (delta + 0.5) % 1.0 - 0.5
    elif mode == "reflect" and n_in > 1:
        interior = np.ones(n_in, bool)
        interior[[0, -1]] = False
        images = [(-x_in[None, :] - x_out[:, None]) * interior, (2.0 - x_in[None, :] - x_out[:, None]) * interior]
        images = [np.where(interior[None, :], im, np.inf) for im in images]
    taps = np.arange(3)[:, None, None] - 1.0
    m = hat(delta[None] / h0 - taps)
    for im in images:
        m = m + hat(im[None] / h0 - taps)
    if quadrature:
        m = m * (spacing(n_in, periodic) / h0)
        m = m * _inverse_mass(m, x_out, h0, mode)[:, :, None]
    return m


def _inverse_mass(m, x_out, h0, mode):
    """``(3, n_out)``: per tap and output point, 1 / (sum of the tap's quadrature weights), or 0
    where the tap's centre ``x + (t - 1) h0`` lies outside [0, 1] with zero padding.

    The normalisation makes each tap a weighted mean of the input around its centre (weights
    summing to 1 on every grid), so the operator applied on any grid is the same continuous one
    as on the reference grid: without it a tap centred on a Dirichlet end has only half of its
    hat inside the domain, and its weight drifts from 1 (reference grid) to 3/4 (h0/2), 5/8
    (h0/4), ... -> 1/2, an O(1) change of the output at the boundary under refinement. A tap
    centred outside reads the zero padding, as the index-space stencil does."""
    mass = m.sum(axis=2)
    inv = np.where(mass > 1e-12, 1.0 / np.where(mass > 1e-12, mass, 1.0), 0.0)
    if mode == "zeros":
        centre = x_out[None, :] + (np.arange(3)[:, None] - 1.0) * h0
        eps = 1e-9 * max(h0, 1.0)
        inv = np.where((centre >= -eps) & (centre <= 1.0 + eps), inv, 0.0)
    return inv


def tap_matrix(n_out: int, n_in: int, h0: float, mode: str, quadrature: bool) -> np.ndarray:
    """``(3, n_out, n_in)``: per tap ``t``, the weight of input point ``j`` for output point ``i``
    along one axis, ``phi((y_j - x_i)/h0 - (t - 1))`` (times ``h/h0`` for a quadrature)."""
    return _tap_matrix(int(n_out), int(n_in), float(h0), check_padding(mode), bool(quadrature)).copy()


class _Taps(nnx.Module):
    def __init__(self, in_channels, out_channels, dim, padding, h0, fan_in_channels, rngs, dtype=None,
                 param_dtype=jnp.float32):
        dimension_numbers(dim)
        self.dtype = dtype  # computation dtype (None: the input's); parameters in param_dtype
        if not h0 > 0:
            raise ValueError(f"reference spacing h0 must be positive, got {h0}")
        self.dim, self.h0, self.padding = dim, float(h0), check_padding(padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel = nnx.Param(torch_uniform(rngs, (3,) * dim + (in_channels, out_channels),
                                              fan_in_channels * 3**dim, param_dtype))


class LocalKernelConv(_Taps):
    """Same-grid local integral kernel ``c_in -> c_out`` with reference spacing ``h0``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, padding: str = "zeros",
                 h0: float, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(in_channels, out_channels, dim, padding, h0, in_channels, rngs, dtype, param_dtype)

    def tap_weights(self, n):
        """``(phi, inv_mass, r)`` of one axis of ``n`` points: the quadrature weights ``(2r+1, 3)``
        of each tap on the offsets ``-r..r`` and the per-point normalisation ``(n, 3)``
        (:func:`_inverse_mass`)."""
        return _axis_weights(int(n), self.h0, self.padding)

    def __call__(self, x):
        x = as_dtype(x, self.dtype)
        # per axis: the three tap means (normalised quadrature of the hat around each tap's
        # centre), then the stencil weights over the taps and channels
        z = x  # (b, *n, c * 3^a): channels with the taps of the axes done so far, flattened
        for a, n in enumerate(x.shape[1:-1]):
            phi, inv, r = self.tap_weights(n)
            zp = pad(z, [(r, r) if b == a else (0, 0) for b in range(self.dim)], self.padding)
            acc = 0.0
            for o in range(2 * r + 1):
                sl = jax.lax.slice_in_dim(zp, o, o + n, axis=1 + a)
                acc = acc + sl[..., None] * jnp.asarray(phi[o], x.dtype)
            shape = [1] * acc.ndim
            shape[1 + a], shape[-1] = n, 3
            acc = acc * jnp.asarray(inv, x.dtype).reshape(shape)
            z = acc.reshape(z.shape[:-1] + (-1,))
        taps = "stu"[:self.dim]
        z = z.reshape(x.shape + (3,) * self.dim)
        return jnp.einsum(f"...i{taps},{taps}io->...o", z, self.kernel[...].astype(x.dtype))


@functools.lru_cache(maxsize=512)
def _axis_weights(n: int, h0: float, mode: str):
    periodic = mode == "wrap"
    h = spacing(n, periodic)
    r = max(int(np.ceil(2 * h0 / h)) - 1, 0)
    offs = np.arange(-r, r + 1) * h / h0
    phi = hat(offs[:, None] - (np.arange(3)[None, :] - 1.0)) * (h / h0)  # (2r+1, 3)
    # the masses: the same weights applied to a field of ones, padded like the input
    if mode == "zeros":
        ones = np.pad(np.ones(n), r, mode="constant")
    elif mode == "wrap":
        ones = np.ones(n + 2 * r)
    else:
        if r >= n:
            raise ValueError(f"reflect padding {r} needs a grid of more than that many points, got {n}")
        ones = np.ones(n + 2 * r)
    mass = np.stack([ones[o:o + n] for o in range(2 * r + 1)], axis=1) @ phi  # (n, 3)
    inv = np.where(mass > 1e-12, 1.0 / np.where(mass > 1e-12, mass, 1.0), 0.0)
    if mode == "zeros":
        centre = grid_points(n, False)[:, None] + (np.arange(3)[None, :] - 1.0) * h0
        eps = 1e-9 * max(h0, 1.0)
        inv = np.where((centre >= -eps) & (centre <= 1.0 + eps), inv, 0.0)
    return phi, inv, r


class KernelRestriction(_Taps):
    """Local integral kernel from a grid onto another (coarser) grid of shape ``out_shape``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, padding: str = "zeros",
                 h0: float, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(in_channels, out_channels, dim, padding, h0, in_channels, rngs, dtype, param_dtype)

    def __call__(self, x, out_shape):
        x = as_dtype(x, self.dtype)
        mats = [_tap_matrix(int(no), int(ni), self.h0, self.padding, True)
                for no, ni in zip(out_shape, x.shape[1:-1])]
        return _apply(x, mats, self.kernel[...].astype(x.dtype), self.dim)


class KernelProlongation(_Taps):
    """Kernel sum ``y(x) = sum_J sum_t w_t u_J phi((x - X_J)/h0 - (t - 1))`` of a coarse field
    evaluated on a grid of shape ``out_shape`` (values beyond the ends are zero except on periodic
    grids). ``h0`` = coarse spacing: 3^d conv on the coarse grid, then linear interpolation;
    ``h0`` = half of it: the kernel-3 stride-2 transposed conv."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, padding: str = "zeros",
                 h0: float, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        # PyTorch's ConvTranspose initialisation (fan_in = out_channels * k^d)
        super().__init__(in_channels, out_channels, dim, padding, h0, out_channels, rngs, dtype, param_dtype)

    def __call__(self, x, out_shape):
        x = as_dtype(x, self.dtype)
        mode = "wrap" if self.padding == "wrap" else "zeros"
        # prolongation: input point J on the coarse grid spreads to fine i at offset x_i - X_J = (t-1) h0
        # tap t carries coarse point X_J to the fine points at offset x_i - X_J = (t - 1) h0:
        # _tap_matrix(coarse, fine)[t, J, i] = phi((x_i - X_J)/h0 - (t - 1)), transposed
        mats = [np.swapaxes(_tap_matrix(int(n_c), int(n_f), self.h0, mode, False), 1, 2)
                for n_f, n_c in zip(out_shape, x.shape[1:-1])]
        return _apply(x, mats, self.kernel[...].astype(x.dtype), self.dim)


def _apply(x, mats, w, d):
    """``y[b, I, o] = sum_{t, J, i} prod_a mats[a][t_a, I_a, J_a] x[b, J, i] w[t, i, o]``."""
    z = x  # (b, N_1..N_d, c)
    for a, m in enumerate(mats):
        m = jnp.asarray(np.ascontiguousarray(m), x.dtype)  # (3, n_out, n_in)
        ax = 1 + 2 * a  # spatial axis a, after the a (tap, out) pairs already in place
        z = jnp.tensordot(z, m, axes=[[ax], [2]])  # appends (3, n_out)
        z = jnp.moveaxis(z, (-2, -1), (ax, ax + 1))
    # z: (b, t_1, N_1, t_2, N_2, ..., c)
    taps, sp = "stu"[:d], "ABC"[:d]
    inter = "".join(t + s for t, s in zip(taps, sp))
    return jnp.einsum(f"b{inter}i,{taps}io->b{sp}o", z, w)
