"""The multigrid convolution W^Mg of MgNO (He, Liu, Xu, ICLR 2024, Sec. 3 / Alg. 1).

One multi-channel V-cycle per layer, all stencils 3x3 in index space:

* level 1: ``u = S(f)``, then ``u <- u + S(f - A u)`` for the remaining pre-smoothing steps;
* down to level l+1: ``u <- Pi(u)``, ``f <- R(f)`` (stride-2 3x3 convolutions), then
  ``u <- u + S(f - A u)`` for each pre-smoothing step of that level;
* up: ``u_l <- u_l + P(u_{l+1})`` (transposed convolution, kernel 4 or 3), then the level's
  post-smoothing steps; the output is the finest ``u``.

``A: c_u -> c_f`` and ``S: c_f -> c_u`` are bias-free; boundary conditions enter only through
the padding mode (zeros: Dirichlet, wrap: periodic, reflect). The prolongation zero-pads the
coarse field whatever the smoothers' mode (the reference's ``ConvTranspose2d`` cannot wrap);
``prolongation_padding="wrap"`` makes it periodic too.

The reference's other V-cycles are options of the same layer: ``bias=True`` (biases on ``A``
and ``S``), ``norm_grid`` (its Navier-Stokes model: ``u_l <- LayerNorm(u_l + P u_{l+1})`` on the
grid levels of ``norm_grid``), and ``restriction="valid"`` with ``growth=True`` (its Helmholtz
model: unpadded restrictions ``n -> (n - 3) // 2 + 1``, e.g. 101 -> 50 -> 24 -> 11 -> 5, unpadded
prolongations, and ``(l + 1) c`` channels on level ``l``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from .conv import Conv, ConvTranspose
from .grid import check_padding
from .norm import GridLayerNorm

__all__ = ["RESTRICTIONS", "MgConv", "Smoother", "coarser", "level_grids", "normalise_smoothing",
           "reference_prolongation_kernels", "smoothers", "v_cycle"]

#: restriction layouts: ``same`` pads by one (``n -> ceil(n/2)``, prolongation ``2j - 1 + t``),
#: ``valid`` does not (``n -> (n - 3) // 2 + 1``, prolongation ``2j + t``)
RESTRICTIONS = ("same", "valid")


def coarser(n: int, restriction: str = "same") -> int:
    """Points per axis after one stride-2, 3-point restriction of an axis of ``n`` points."""
    return (int(n) - 3) // 2 + 1 if restriction == "valid" else (int(n) + 1) // 2


def level_grids(grid, levels: int, restriction: str = "same") -> list[tuple[int, ...]]:
    """The grid of every level (finest first) of a V-cycle on ``grid`` (an int or one per axis)."""
    shape = (int(grid),) if isinstance(grid, (int, float)) else tuple(int(n) for n in grid)
    out = [shape]
    for _ in range(levels - 1):
        shape = tuple(coarser(n, restriction) for n in shape)
        if min(shape) < 1:
            raise ValueError(f"a grid of {out[0]} points has no {levels} levels with {restriction!r} restrictions")
        out.append(shape)
    return out


def normalise_smoothing(smoothing) -> list[tuple[int, int]]:
    """``[(pre, post), ...]`` per level from a list of pairs (or of ints: pre only)."""
    out = []
    for i, s in enumerate(smoothing):
        pre, post = (s, 0) if isinstance(s, int) else tuple(s)
        if int(pre) < (1 if i == 0 else 0) or int(post) < 0:
            raise ValueError(f"smoothing steps must be >= 0 (>= 1 on the finest level), got {smoothing}")
        out.append((int(pre), int(post)))
    if not out:
        raise ValueError("the V-cycle needs at least one level")
    if out[-1][1]:
        raise ValueError(f"the coarsest level has no post-smoothing (it would never run); put its "
                         f"{out[-1][1]} step(s) into pre-smoothing: {smoothing}")
    return out


def reference_prolongation_kernels(size: int, levels: int, restriction: str = "same") -> list[int]:
    """Per-level prolongation kernels of the reference code for a grid of ``size`` points: 3
    where the finer level has an odd size, else 4 (e.g. 211: [3, 4, 3, 3, 4]; 101 with
    ``valid`` restrictions: [3, 4, 4, 3]), so that the prolongation lands on the finer grid."""
    return [3 if n % 2 else 4 for (n,) in level_grids(size, levels, restriction)[:-1]]


class Smoother(nnx.Module):
    """One smoothing step ``u <- u + S(f - A u)`` (or ``u = S(f)`` when ``first``), with
    ``A: c_u -> c_f`` and ``S: c_f -> c_u`` built by ``make(c_in, c_out)``."""

    def __init__(self, make, c_u: int, c_f: int, first: bool):
        self.A = None if first else make(c_u, c_f)
        self.S = make(c_f, c_u)

    def __call__(self, u, f):
        if self.A is None:
            return self.S(f)
        return u + self.S(f - self.A(u))


def smoothers(make, c_u, c_f, smoothing) -> tuple[nnx.List, nnx.List]:
    """Per level, the pre- and post-smoothing steps (finest first; the very first step of the
    finest level is ``u = S(f)``), with the stencils of level ``l`` built by
    ``make(l, c_in, c_out)``; ``c_u``, ``c_f``: channels of every level, or one per level."""
    pre, post = [], []
    for level, (n_pre, n_post) in enumerate(smoothing):
        mk = functools.partial(make, level)
        cu = c_u if isinstance(c_u, int) else c_u[level]
        cf = c_f if isinstance(c_f, int) else c_f[level]
        pre.append(nnx.List([Smoother(mk, cu, cf, level == 0 and i == 0) for i in range(n_pre)]))
        post.append(nnx.List([Smoother(mk, cu, cf, False) for _ in range(n_post)]))
    return nnx.List(pre), nnx.List(post)


def v_cycle(f, pre, post, down, up, join=None):
    """The V-cycle of Alg. 1: smooth on each level on the way down, ``down(level, u, f)`` moving
    ``(u, f)`` onto ``level`` (>= 1); on the way up ``u_l <- u_l + up(level, u_{l+1}, shape_l)``
    (then ``u_l <- join(level, u_l)`` when given, e.g. a layer norm), then the level's
    post-smoothing. Returns the finest ``u``."""
    us, fs, u = [], [], None
    for level in range(len(pre)):
        if level > 0:
            u, f = down(level, u, f)
        for step in pre[level]:
            u = step(u, f)
        us.append(u)
        fs.append(f)
    u = us[-1]
    for level in range(len(pre) - 2, -1, -1):
        u = us[level] + up(level, u, us[level].shape[1:-1])
        if join is not None:
            u = join(level, u)
        for step in post[level]:
            u = step(u, fs[level])
    return u


class MgConv(nnx.Module):
    """V-cycle ``f (b, *n, c_f) -> u (b, *n, c_u)`` (the W^Mg of MgNO), any grid size.

    ``smoothing``: per level ``(pre, post)`` steps, finest first (the reference Darcy setting:
    ``[(1, 0)] * 5 + [(2, 0)]``). ``prolongation_kernel``: 4 or 3 for all levels, or one per
    level transition (finest first); kernel 4 is the reference for even sizes, 3 for odd.
    ``prolongation_padding``: ``zeros`` (the reference, default) or ``wrap`` (periodic coarse
    field). ``bias``: biases on the smoothers ``A``, ``S``. ``norm_grid``: the finest grid (int
    or one per axis) of a layer norm after every prolongation (the field must then be on that
    grid). ``restriction``: ``same`` or ``valid`` (see :data:`RESTRICTIONS`); ``growth``: level
    ``l`` has ``(l + 1)`` times the channels. ``param_dtype`` / ``dtype``: parameter and compute
    dtypes.
    """

    def __init__(self, in_channels: int, out_channels: int, smoothing=((1, 0),) * 5 + ((2, 0),), *,
                 dim: int = 2, padding: str = "zeros", prolongation_kernel: int | Sequence[int] = 4,
                 prolongation_padding: str = "zeros", bias: bool = False, norm_grid=None,
                 restriction: str = "same", growth: bool = False, dtype=None, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if dim not in (1, 2):
            raise ValueError(f"MgConv supports 1-D and 2-D grids, got dim={dim}")
        if restriction not in RESTRICTIONS:
            raise ValueError(f"restriction must be one of {RESTRICTIONS}, got {restriction!r}")
        prolongation_padding = check_padding(prolongation_padding)
        if prolongation_padding == "reflect":
            raise ValueError("prolongation_padding must be 'zeros' (the reference) or 'wrap' (periodic)")
        self.smoothing = normalise_smoothing(smoothing)
        self.levels = len(self.smoothing)
        self.dim, self.padding = dim, check_padding(padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        kernels = ([int(prolongation_kernel)] * (self.levels - 1) if isinstance(prolongation_kernel, int)
                   else [int(k) for k in prolongation_kernel])
        if len(kernels) != self.levels - 1:
            raise ValueError(f"need {self.levels - 1} prolongation kernels for {self.levels} levels, got {kernels}")
        self.prolongation_kernels = kernels
        grow = [(level + 1) if growth else 1 for level in range(self.levels)]
        c_u, c_f = [out_channels * g for g in grow], [in_channels * g for g in grow]
        dt = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        kw = {"dim": dim, "padding": self.padding, **dt}
        self.pre, self.post = smoothers(lambda level, ci, co: Conv(ci, co, 3, use_bias=bias, **kw),
                                        c_u, c_f, self.smoothing)
        valid = restriction == "valid"
        Pi, R, P = [], [], []
        for level, k in enumerate(kernels):
            Pi.append(Conv(c_u[level], c_u[level + 1], 3, stride=2, valid=valid, **kw))
            R.append(Conv(c_f[level], c_f[level + 1], 3, stride=2, valid=valid, **kw))
            P.append(ConvTranspose(c_u[level + 1], c_u[level], k, dim=dim, padding=prolongation_padding,
                                   crop=0 if valid else 1, **dt))
        self.Pi, self.R, self.P = nnx.List(Pi), nnx.List(R), nnx.List(P)
        norms = None
        if norm_grid is not None:
            grids = level_grids(norm_grid if not isinstance(norm_grid, int) or dim == 1 else (norm_grid,) * dim,
                                self.levels, restriction)
            if len(grids[0]) != dim:
                raise ValueError(f"norm_grid needs one size per axis ({dim}), got {norm_grid}")
            norms = nnx.List([GridLayerNorm(c_u[level], grids[level], **dt) for level in range(self.levels - 1)])
        self.norms = norms

    def __call__(self, f):
        join = None if self.norms is None else (lambda level, u: self.norms[level](u))
        return v_cycle(f, self.pre, self.post,
                       lambda level, u, f: (self.Pi[level - 1](u), self.R[level - 1](f)),
                       lambda level, u, shape: self.P[level](u, shape), join)
