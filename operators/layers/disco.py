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
taps and channels with the stencil (dense, ``O(n^2)`` per axis; :func:`apply_strided_taps` is
its banded form). Both build a ``c_in K^d`` intermediate per grid point. The fast form,
:func:`apply_lattice_taps` (plans from :func:`lattice_plan`), serves every grid that refines the
reference grid an integer number of times: there all taps read one smoothed field (the hat
filter applied to the input channels, normalised) at shifted points, so the stencil is one
ordinary strided, dilated convolution of it, as cheap as the plain network's.
:func:`apply_quadrature_taps` picks the fastest form that applies; the other two stay as the
reference the fast one is tested against. :class:`DiscoConv` is the layer (stride 1 or more,
output on the input grid coarsened by the stride); :mod:`operators.convert` builds converted
``nnx.Conv`` and ``nnx.ConvTranspose`` layers from the same functions.

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

from .conv import as_dtype, dimension_numbers, stencil_params
from .grid import check_padding, spacing

__all__ = ["DiscoConv", "apply_lattice_taps", "apply_quadrature_taps", "apply_strided_taps", "apply_taps",
           "axis_operator", "coarsened_size", "hat", "lattice_plan"]


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

#: whether :func:`apply_quadrature_taps` may take the fast lattice form (tests set it to False
#: to run whole models through the banded / dense reference forms)
USE_LATTICE = True


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


@functools.lru_cache(maxsize=1024)
def _lattice_plan(n_out, n_in, in_step, out_step, offsets, mode, phase):
    r = 1.0 / in_step
    ri = round(r)
    if ri < 1 or abs(r - ri) > 1e-9 * r:
        return None  # not an integer refinement of the reference grid
    if out_step < in_step:  # output finer than the input: a lattice of P points per input spacing
        ratio, big = in_step / out_step, True
    else:
        ratio, big = out_step / in_step, False
    k = round(ratio)
    if k < 1 or abs(ratio - k) > 1e-9 * ratio:
        return None
    P, S = (k, 1) if big else (1, k)
    R = P * ri  # the hat's half-width (one reference spacing) in lattice units
    E = [o * R for o in offsets]  # tap centres relative to the output point, lattice units
    if any(abs(e - round(e)) > 1e-6 for e in E):
        return None
    E = [round(e) for e in E]
    K = len(E)
    step = E[1] - E[0] if K > 1 else R
    if step == 0 or any(E[t] - E[0] != t * step for t in range(K)):
        return None  # not a regular stencil
    flip = step < 0
    c0, c1 = min(E), S * (n_out - 1) + max(E)  # the lattice points the taps read
    need_lo = -(c0 - (R - 1))  # lattice points left of input 0 the hats reach
    need_hi = c1 + R - 1 - P * (n_in - 1)
    a_lo = max(0, -(-need_lo // P))  # padding in input points
    a_hi = max(0, -(-need_hi // P))
    if mode in ("wrap", "reflect") and max(a_lo, a_hi) > n_in - 1:
        return None  # a hat wider than the grid: the dense form (nearest periodic image) applies
    q = np.full(n_in, in_step)
    if mode == "zeros" and n_in > 1 and ri > 1:
        q[[0, -1]] = 0.5 * in_step  # trapezoid weights at the ends
    kern = hat(np.arange(-(R - 1), R) / R)  # (2R - 1,)
    base = c0 + P * a_lo - (R - 1)  # padded-lattice index read by lattice point c0 at l = -(R - 1)
    n_c = c1 - c0 + 1
    qp = np.pad(q, (a_lo, a_hi), mode=_PADS[mode])
    qs = np.zeros(P * (len(qp) - 1) + 1)
    qs[::P] = qp
    mass = sum(kern[j] * qs[base + j:base + j + n_c] for j in range(2 * R - 1))
    g = np.where(mass > 1e-12 * in_step, 1.0 / np.where(mass > 1e-12 * in_step, mass, 1.0), 0.0)
    c = np.arange(c0, c1 + 1)
    if mode == "zeros":
        g = np.where((c >= 0) & (c <= P * (n_in - 1)), g, 0.0)  # a tap centred outside reads the zero padding
    if phase is not None:
        frac = np.mod(c, P * ri) / (P * ri)  # the centre's position between reference input points
        g = g * (hat(frac / phase) + hat((1.0 - frac) / phase))
    for a in (q, kern, g):
        a.setflags(write=False)
    return {"P": P, "S": S, "n_out": int(n_out), "dilation": abs(step) if K > 1 else 1, "flip": flip, "a_lo": a_lo, "a_hi": a_hi,
            "base": base, "n_c": n_c, "q": q, "kern": kern, "g": g, "mode": mode,
            "uniform_q": bool(np.all(q == in_step))}


def lattice_plan(n_out: int, n_in: int, in_step: float, out_step: float, offsets: Sequence[float],
                 mode: str = "zeros", phase: float | None = None) -> dict | None:
    """The fast form of :func:`axis_operator` (``width=1``, ``out_origin=0``) along one axis, or
    None where it does not apply (then use the dense or banded form).

    Where the grid refines the reference grid ``r`` times (``r`` an integer) and the taps form a
    regular stencil (offsets ``e_0 + D t``), every tap reads the *same* smoothed field ``V``
    at a shifted point: ``V = g * H(q u)``, the hat of half-width ``h0`` (``H``, a short
    depthwise filter) applied to the input times its quadrature weights ``q``, times the
    per-point normalisation ``g`` (1 / the hat's mass, 0 for centres beyond a zero-padded end,
    times the phase indicator of transposed layers; it depends only on the centre, not on the
    tap). ``V`` lives on a lattice of ``P`` points per input spacing (``P > 1`` when the output
    is finer than the input, e.g. transposed convolutions), and tap ``t`` of output ``o`` reads
    ``V[S o + E_t]`` (``S`` the stride in lattice points, ``E_t = r P e_t``): the stencil is an
    ordinary strided, dilated (by ``r P D``) convolution of ``V``. Cost: the plain network's
    convolution on the fine grid plus a ``(2 r P - 1)``-tap filter per axis and input channel,
    instead of a ``c_in K^d`` intermediate per grid point."""
    return _lattice_plan(int(n_out), int(n_in), float(in_step), float(out_step), tuple(float(o) for o in offsets),
                         check_padding(mode), None if phase is None else float(phase))


def _smooth(z, ax: int, plan: dict):
    """``V`` of :func:`lattice_plan` along axis ``ax`` of ``z`` (per channel)."""
    if not plan["uniform_q"]:
        shape = [1] * z.ndim
        shape[ax] = z.shape[ax]
        z = z * jnp.asarray(plan["q"], z.dtype).reshape(shape)
    else:
        z = z * jnp.asarray(plan["q"][0], z.dtype)
    if plan["a_lo"] or plan["a_hi"]:
        widths = [(0, 0)] * z.ndim
        widths[ax] = (plan["a_lo"], plan["a_hi"])
        z = jnp.pad(z, widths, mode=_PADS[plan["mode"]])
    P = plan["P"]
    if P > 1:  # the input on the lattice: P - 1 zeros between points
        cfg = [(0, 0, 0)] * z.ndim
        cfg[ax] = (0, 0, P - 1)
        z = jax.lax.pad(z, jnp.zeros((), z.dtype), cfg)
    base, n_c, kern = plan["base"], plan["n_c"], plan["kern"]
    acc = None
    for j, w in enumerate(kern):  # shifted slices times the hat's weights: fused by XLA
        sl = jax.lax.slice_in_dim(z, base + j, base + j + n_c, axis=ax) * jnp.asarray(w, z.dtype)
        acc = sl if acc is None else acc + sl
    shape = [1] * z.ndim
    shape[ax] = n_c
    return acc * jnp.asarray(plan["g"], z.dtype).reshape(shape)


def apply_lattice_taps(x, plans: Sequence[dict], kernel):
    """:func:`apply_taps` with the per-axis :func:`lattice_plan` s: the smoothed field of every
    axis, then one strided, dilated ``lax.conv_general_dilated`` with the stencil ``kernel
    (*K, c_in, c_out)`` (``x (b, *n_in, c_in)``)."""
    d = len(plans)
    lead = x.shape[:x.ndim - 1 - d]
    z = x.reshape((-1,) + x.shape[x.ndim - 1 - d:])
    for a, plan in enumerate(plans):
        z = _smooth(z, 1 + a, plan)
    w = kernel.astype(z.dtype)
    flips = tuple(a for a, plan in enumerate(plans) if plan["flip"])
    if flips:
        w = jnp.flip(w, axis=flips)
    # one padded point past the end, cropped again: XLA's CPU backend runs unpadded ("VALID")
    # stride-1 convolutions on a path 3-8x slower than padded ones (measured, jax 0.7)
    y = jax.lax.conv_general_dilated(z, w, tuple(p["S"] for p in plans), [(0, 1)] * d,
                                     rhs_dilation=tuple(p["dilation"] for p in plans),
                                     dimension_numbers=dimension_numbers(d))
    y = y[(slice(None), *[slice(0, p["n_out"]) for p in plans])]
    return y.reshape(lead + y.shape[1:])


def apply_quadrature_taps(x, geoms: Sequence[tuple], kernel):
    """The quadrature of a stencil's continuous kernel between grids, by the fastest form that
    applies: :func:`apply_lattice_taps` where every axis has a :func:`lattice_plan`, else the
    banded :func:`apply_strided_taps` (output on the input grid coarsened by an integer stride)
    or the dense :func:`apply_taps`; all three compute the same sums.

    ``geoms``: per axis ``(n_out, in_step, out_step, offsets, mode, phase)`` in units of the
    reference spacing, as :func:`axis_operator` (hats of half-width 1, or the grid's spacing on
    grids coarser than the reference)."""
    d = len(geoms)
    shape = x.shape[x.ndim - 1 - d:-1]
    plans = [lattice_plan(m, n, i, o, off, mode, ph) if USE_LATTICE else None
             for n, (m, i, o, off, mode, ph) in zip(shape, geoms)]
    if all(p is not None for p in plans):
        return apply_lattice_taps(x, plans, kernel)
    strides = [o / i for (m, i, o, off, mode, ph) in geoms]
    if all(ph is None and s >= 1 - 1e-9 and abs(s - round(s)) < 1e-9 for s, (*_, ph) in zip(strides, geoms)):
        return apply_strided_taps(x, [(m, i, round(s), off, mode) for s, (m, i, o, off, mode, ph) in zip(strides, geoms)],
                                  kernel)
    mats = [_axis_operator(int(m), int(n), float(i), float(o), tuple(float(t) for t in off), 1.0, check_padding(mode),
                           None if ph is None else float(ph), 0.0)
            for n, (m, i, o, off, mode, ph) in zip(shape, geoms)]
    return apply_taps(x, mats, kernel)


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
    ``param_dtype`` / ``dtype``: the dtype of the parameters and of the computation (None: the
    input's).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dim: int = 2,
                 base_resolution: int, stride: int = 1, padding: str = "zeros", use_bias: bool = True,
                 dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
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
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, dtype
        self.kernel, self.bias = stencil_params(rngs, dim, kernel_size, in_channels, out_channels,
                                                use_bias, param_dtype)

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
        x = as_dtype(x, self.dtype)
        periodic = self.padding == "wrap"
        shape = x.shape[1:-1]
        offsets = tuple(float(t - self.kernel_size // 2) for t in range(self.kernel_size))
        steps = [spacing(n, periodic) * self.base_resolution for n in shape]
        geoms = [(n_out, h, self.stride * h, offsets, self.padding, None)
                 for h, n_out in zip(steps, self.output_shape(shape))]
        y = apply_quadrature_taps(x, geoms, self.kernel[...])
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y
