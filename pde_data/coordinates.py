"""Grid coordinates on the unit cube and resampling between resolutions of the same grid.

Two grid layouts (docs/design.md): a *node* grid has ``s`` points per axis with spacing ``1/(s-1)``,
both ends included (Dirichlet problems: Darcy, Poisson, Helmholtz); a *periodic* grid has ``s``
points with spacing ``1/s`` and no right end (Burgers, Navier-Stokes).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = [
    "add_coordinates",
    "grid_axis",
    "infer_periodic",
    "resample",
    "resample_matrix",
    "subsampled_size",
]


def grid_axis(size: int, periodic: bool) -> np.ndarray:
    """Points of one axis of the unit-cube grid: ``linspace(0, 1, s)`` (node) or ``arange(s)/s``."""
    if size < 1:
        raise ValueError(f"grid size must be >= 1, got {size}")
    if periodic:
        return np.arange(size, dtype=np.float64) / size
    if size == 1:
        return np.zeros(1)
    return np.linspace(0.0, 1.0, size)


def add_coordinates(x, periodic: bool):
    """Append one coordinate channel per spatial axis to channel-last ``x`` of shape
    ``(batch, *spatial, c)`` -> ``(batch, *spatial, c + d)`` (axis order x, y, z).

    Works on numpy arrays (returns numpy) and jax arrays / tracers (returns jax); the grid is
    the node or periodic grid of docs/design.md, built at the resolution of ``x``.
    """
    if x.ndim < 3:
        raise ValueError(
            f"add_coordinates expects (batch, *spatial, channels) with >= 1 spatial axis, got shape {tuple(x.shape)}"
        )
    spatial = tuple(int(s) for s in x.shape[1:-1])
    grid = coordinate_grid(spatial, periodic)  # (*spatial, d) float64 numpy
    if isinstance(x, np.ndarray):
        g = np.broadcast_to(grid.astype(x.dtype), (x.shape[0], *grid.shape))
        return np.concatenate([x, g], axis=-1)
    import jax.numpy as jnp

    g = jnp.broadcast_to(jnp.asarray(grid, dtype=x.dtype), (x.shape[0], *grid.shape))
    return jnp.concatenate([x, g], axis=-1)


def coordinate_grid(spatial: Sequence[int], periodic: bool, axes: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Coordinates of every grid point, shape ``(*spatial, d)``; ``axes`` overrides the 1-D
    points per axis (e.g. the coordinate values stored in a dataset)."""
    if axes is None:
        axes = [grid_axis(s, periodic) for s in spatial]
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes], indexing="ij")
    return np.stack(mesh, axis=-1)


def infer_periodic(values: np.ndarray, rtol: float = 1e-6) -> bool | None:
    """Which layout 1-D coordinate ``values`` follow: True (periodic, last = 1 - 1/s), False
    (node, last = 1), or None when they are neither (e.g. a non-unit domain)."""
    v = np.asarray(values, dtype=np.float64)
    s = v.size
    if s < 2 or not np.all(np.isfinite(v)):
        return None
    lo, hi = v[0], v[-1]
    span = hi - lo
    if span <= 0:
        return None
    # uniform spacing h: node grid covers [lo, lo + (s-1)h] = whole domain; periodic misses one h.
    h = span / (s - 1)
    if not np.allclose(np.diff(v), h, rtol=1e-4, atol=1e-12):
        return None
    if abs(lo) <= rtol and abs(hi - 1.0) <= 1e-6:
        return False
    if abs(lo) <= rtol and abs(hi - (1.0 - 1.0 / s)) <= 1e-6:
        return True
    return None


def subsampled_size(size: int, k: int, periodic: bool | None) -> int:
    """Points left after taking every ``k``-th one; raises when ``k`` does not divide the grid:
    node grids need ``(s-1) % k == 0`` (keeps both ends), periodic grids ``s % k == 0``;
    an unknown layout (None) accepts either."""
    if k < 1 or int(k) != k:
        raise ValueError(f"subsample must be a positive integer, got {k!r}")
    if k == 1:
        return size
    node_ok = (size - 1) % k == 0
    per_ok = size % k == 0
    if periodic is False and not node_ok:
        raise ValueError(
            f"subsample={k} does not divide the node grid of {size} points: (s-1)={size - 1} "
            f"is not divisible by {k}, so the right boundary would be lost"
        )
    if periodic is True and not per_ok:
        raise ValueError(
            f"subsample={k} does not divide the periodic grid of {size} points ({size} % {k} != 0)"
        )
    if periodic is None and not (node_ok or per_ok):
        raise ValueError(
            f"subsample={k} divides neither a node grid of {size} points ((s-1) % k != 0) nor a "
            f"periodic one (s % k != 0)"
        )
    return len(range(0, size, k))


@functools.lru_cache(maxsize=64)
def resample_matrix(n: int, m: int, periodic: bool, method: str = "auto") -> np.ndarray:
    """Matrix ``(m, n)`` mapping values on an ``n``-point grid to the ``m``-point grid of the
    same layout. Node grids: piecewise-linear interpolation (exact for affine fields, keeps
    the boundary values). Periodic grids: ``method="fourier"`` (default; trigonometric
    interpolation, exact for band-limited fields, the Nyquist mode split evenly) or
    ``"linear"`` (periodic piecewise-linear)."""
    if method == "auto":
        method = "fourier" if periodic else "linear"
    if method not in ("linear", "fourier"):
        raise ValueError(f"unknown resampling method {method!r}; use 'linear' or 'fourier'")
    if method == "fourier" and not periodic:
        raise ValueError("Fourier resampling needs a periodic grid; use method='linear' on node grids")
    if n == m:
        return np.eye(n)
    eye = np.eye(n)
    if method == "linear":
        src = grid_axis(n, periodic)
        dst = grid_axis(m, periodic)
        if periodic:
            src_ext = np.append(src, 1.0)
            eye_ext = np.concatenate([eye, eye[:1]], axis=0)
            return np.stack([np.interp(dst, src_ext, eye_ext[:, j]) for j in range(n)], axis=1)
        return np.stack([np.interp(dst, src, eye[:, j]) for j in range(n)], axis=1)
    src = grid_axis(n, True)
    dst = grid_axis(m, True)
    return _dirichlet_kernel(dst[:, None] - src[None, :], n)


def _dirichlet_kernel(t: np.ndarray, n: int) -> np.ndarray:
    """Cardinal function of trigonometric interpolation on ``n`` periodic points (period 1):
    ``sin(n pi t) / (n sin(pi t))`` for odd ``n``, ``sin(n pi t) / (n tan(pi t))`` for even ``n``
    (the Nyquist mode split evenly between +-n/2 so the interpolant is real); 1 at ``t = 0``."""
    t = t - np.round(t)  # the kernel has period 1
    near0 = np.abs(t) < 1e-12
    ts = np.where(near0, 0.5, t)  # dummy value where the limit applies
    if n % 2:
        k = np.sin(n * np.pi * ts) / (n * np.sin(np.pi * ts))
    else:
        k = np.sin(n * np.pi * ts) / (n * np.tan(np.pi * ts))
    return np.where(near0, 1.0, k)


def resample(a, shape: Sequence[int], periodic: bool, method: str = "auto", first_axis: int = 0):
    """Resample the grid axes ``first_axis .. first_axis+len(shape)-1`` of ``a`` to ``shape``
    (separable, one :func:`resample_matrix` per axis); numpy in -> numpy out, jax in -> jax out."""
    is_np = isinstance(a, np.ndarray)
    if not is_np:
        import jax.numpy as jnp
    for i, m in enumerate(shape):
        ax = first_axis + i
        n = int(a.shape[ax])
        if n == int(m):
            continue
        mat = resample_matrix(n, int(m), bool(periodic), method)
        if is_np:
            a = np.moveaxis(np.tensordot(mat.astype(a.dtype), a, axes=([1], [ax])), 0, ax)
        else:
            a = jnp.moveaxis(jnp.tensordot(jnp.asarray(mat, dtype=a.dtype), a, axes=([1], [ax])), 0, ax)
    return a
