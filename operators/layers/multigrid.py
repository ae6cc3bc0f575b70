"""The multigrid convolution W^Mg of MgNO (He, Liu, Xu, ICLR 2024, Sec. 3 / Alg. 1).

One multi-channel V-cycle per layer, all stencils 3x3 in index space:

* level 1: ``u = S(f)``, then ``u <- u + S(f - A u)`` for the remaining pre-smoothing steps;
* down to level l+1: ``u <- Pi(u)``, ``f <- R(f)`` (stride-2 3x3 convolutions), then
  ``u <- u + S(f - A u)`` for each pre-smoothing step of that level;
* up: ``u_l <- u_l + P(u_{l+1})`` (transposed convolution, kernel 4 or 3), then the level's
  post-smoothing steps; the output is the finest ``u``.

``A: c_u -> c_f`` and ``S: c_f -> c_u`` are bias-free; boundary conditions enter only through
the padding mode (zeros: Dirichlet, wrap: periodic, reflect).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from flax import nnx

from .conv import Conv, ConvTranspose
from .grid import check_padding

__all__ = ["MgConv", "Smoother", "normalise_smoothing", "reference_prolongation_kernels", "smoothers",
           "v_cycle"]


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


def reference_prolongation_kernels(size: int, levels: int) -> list[int]:
    """Per-level prolongation kernels of the reference code for a grid of ``size`` points: 3
    where the finer level has an odd size, else 4 (e.g. 211: [3, 4, 3, 3, 4])."""
    out, n = [], int(size)
    for _ in range(levels - 1):
        out.append(3 if n % 2 else 4)
        n = (n + 1) // 2
    return out


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


def smoothers(make, c_u: int, c_f: int, smoothing) -> tuple[nnx.List, nnx.List]:
    """Per level, the pre- and post-smoothing steps (finest first; the very first step of the
    finest level is ``u = S(f)``), with the stencils of level ``l`` built by
    ``make(l, c_in, c_out)``."""
    pre, post = [], []
    for level, (n_pre, n_post) in enumerate(smoothing):
        mk = functools.partial(make, level)
        pre.append(nnx.List([Smoother(mk, c_u, c_f, level == 0 and i == 0) for i in range(n_pre)]))
        post.append(nnx.List([Smoother(mk, c_u, c_f, False) for _ in range(n_post)]))
    return nnx.List(pre), nnx.List(post)


def v_cycle(f, pre, post, down, up):
    """The V-cycle of Alg. 1: smooth on each level on the way down, ``down(level, u, f)`` moving
    ``(u, f)`` onto ``level`` (>= 1); on the way up ``u_l <- u_l + up(level, u_{l+1}, shape_l)``
    then the level's post-smoothing. Returns the finest ``u``."""
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
        for step in post[level]:
            u = step(u, fs[level])
    return u


class MgConv(nnx.Module):
    """V-cycle ``f (b, *n, c_f) -> u (b, *n, c_u)`` (the W^Mg of MgNO), any grid size.

    ``smoothing``: per level ``(pre, post)`` steps, finest first (the reference Darcy setting:
    ``[(1, 0)] * 5 + [(2, 0)]``). ``prolongation_kernel``: 4 or 3 for all levels, or one per
    level transition (finest first); kernel 4 is the reference for even sizes, 3 for odd.
    """

    def __init__(self, in_channels: int, out_channels: int, smoothing=((1, 0),) * 5 + ((2, 0),), *,
                 dim: int = 2, padding: str = "zeros", prolongation_kernel: int | Sequence[int] = 4,
                 rngs: nnx.Rngs):
        if dim not in (1, 2):
            raise ValueError(f"MgConv supports 1-D and 2-D grids, got dim={dim}")
        self.smoothing = normalise_smoothing(smoothing)
        self.levels = len(self.smoothing)
        self.dim, self.padding = dim, check_padding(padding)
        c_u, c_f = out_channels, in_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        kernels = ([int(prolongation_kernel)] * (self.levels - 1) if isinstance(prolongation_kernel, int)
                   else [int(k) for k in prolongation_kernel])
        if len(kernels) != self.levels - 1:
            raise ValueError(f"need {self.levels - 1} prolongation kernels for {self.levels} levels, got {kernels}")
        self.prolongation_kernels = kernels
        kw = {"dim": dim, "padding": self.padding, "rngs": rngs}
        self.pre, self.post = smoothers(lambda level, ci, co: Conv(ci, co, 3, **kw), c_u, c_f, self.smoothing)
        Pi, R, P = [], [], []
        for k in kernels:
            Pi.append(Conv(c_u, c_u, 3, stride=2, **kw))
            R.append(Conv(c_f, c_f, 3, stride=2, **kw))
            P.append(ConvTranspose(c_u, c_u, k, **kw))
        self.Pi, self.R, self.P = nnx.List(Pi), nnx.List(R), nnx.List(P)

    def __call__(self, f):
        return v_cycle(f, self.pre, self.post,
                       lambda level, u, f: (self.Pi[level - 1](u), self.R[level - 1](f)),
                       lambda level, u, shape: self.P[level](u, shape))
