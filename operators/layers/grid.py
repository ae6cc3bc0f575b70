"""Grid helpers shared by the layers and losses: padding modes, quadrature weights, resampling.

Grids follow docs/design.md: a *node* grid (Dirichlet problems) has ``s`` points with spacing
``1/(s-1)``, both ends included; a *periodic* grid has ``s`` points with spacing ``1/s``.
The padding mode of a layer says which: ``"wrap"`` means periodic, ``"zeros"`` and
``"reflect"`` mean a node grid.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

__all__ = [
    "PADDING_MODES",
    "check_field",
    "check_padding",
    "coarse_size",
    "grid_points",
    "is_periodic",
    "linear_resample_matrix",
    "pad",
    "quadrature_weights",
    "resample_linear",
    "spacing",
]

#: padding mode -> jnp.pad mode
PADDING_MODES = {"zeros": "constant", "wrap": "wrap", "reflect": "reflect"}
_ALIASES = {"zero": "zeros", "constant": "zeros", "circular": "wrap", "periodic": "wrap"}


def check_padding(mode: str) -> str:
    """Canonical padding mode (``zeros``, ``wrap`` or ``reflect``); ValueError naming the options."""
    if not isinstance(mode, str):
        raise TypeError(f"padding mode must be a string, got {type(mode).__name__}")
    m = _ALIASES.get(mode.lower(), mode.lower())
    if m not in PADDING_MODES:
        raise ValueError(f"unknown padding mode {mode!r}; choose from {sorted(PADDING_MODES)} "
                         "(zeros: Dirichlet, wrap: periodic, reflect: Neumann-like)")
    return m


def is_periodic(mode: str) -> bool:
    """Whether a padding mode describes a periodic grid."""
    return check_padding(mode) == "wrap"


def pad(x, widths: Sequence[tuple[int, int]], mode: str):
    """Pad the spatial axes of channel-last ``x (batch, *spatial, c)`` by ``widths`` per axis."""
    m = PADDING_MODES[check_padding(mode)]
    full = [(0, 0), *[(int(a), int(b)) for a, b in widths], (0, 0)]
    if m == "reflect":
        # numpy reflect needs pad < size; fall back to symmetric-by-repeat for tiny grids
        for (a, b), n in zip(widths, x.shape[1:-1]):
            if max(a, b) >= n:
                raise ValueError(f"reflect padding {max(a, b)} needs a grid of more than that many points, got {n}")
    return jnp.pad(x, full, mode=m)


def spacing(n: int, periodic: bool) -> float:
    """Grid spacing of an axis of ``n`` points on the unit interval."""
    if periodic:
        return 1.0 / n
    return 1.0 / max(n - 1, 1)


@functools.lru_cache(maxsize=256)
def _quad(n: int, periodic: bool) -> np.ndarray:
    h = spacing(n, periodic)
    w = np.full(n, h)
    if not periodic and n > 1:
        w[0] = w[-1] = h / 2  # trapezoid rule on the node grid
    if n == 1:
        w[:] = 1.0
    return w


def quadrature_weights(n: int, periodic: bool) -> np.ndarray:
    """Per-axis quadrature weights on [0, 1]: rectangle rule (periodic) or trapezoid (node grid);
    they sum to 1, so weighted sums converge to integrals as the grid is refined."""
    return _quad(int(n), bool(periodic)).copy()


def grid_points(n: int, periodic: bool) -> np.ndarray:
    """Positions of the ``n`` points of an axis on [0, 1]."""
    if periodic:
        return np.arange(n) / n
    if n == 1:
        return np.zeros(1)
    return np.linspace(0.0, 1.0, n)


@functools.lru_cache(maxsize=256)
def _lin(n_out: int, n_in: int, periodic: bool) -> np.ndarray:
    x = grid_points(n_out, periodic)
    m = np.zeros((n_out, n_in))
    if n_in == 1:
        m[:, 0] = 1.0
        return m
    t = x * n_in if periodic else x * (n_in - 1)
    i0 = np.floor(t).astype(int)
    frac = t - i0
    if periodic:
        i1 = (i0 + 1) % n_in
        i0 = i0 % n_in
    else:
        i0 = np.clip(i0, 0, n_in - 2)
        frac = t - i0
        i1 = i0 + 1
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def linear_resample_matrix(n_out: int, n_in: int, periodic: bool) -> np.ndarray:
    """``(n_out, n_in)`` matrix of linear interpolation between two grids of the unit interval."""
    return _lin(int(n_out), int(n_in), bool(periodic)).copy()


def resample_linear(x, shape: Sequence[int], periodic: bool):
    """Multilinear interpolation of channel-last ``x (batch, *spatial, c)`` onto the grid ``shape``
    (physical positions, so it is consistent across resolutions)."""
    d = x.ndim - 2
    if len(shape) != d:
        raise ValueError(f"target shape {tuple(shape)} has {len(shape)} axes, the field has {d}")
    for ax, (n_out, n_in) in enumerate(zip(shape, x.shape[1:-1])):
        if n_out == n_in:
            continue
        m = jnp.asarray(_lin(int(n_out), int(n_in), bool(periodic)), dtype=x.dtype)
        x = jnp.moveaxis(jnp.tensordot(m, jnp.moveaxis(x, ax + 1, 0), axes=1), 0, ax + 1)
    return x


def coarse_size(n: int, factor: float, periodic: bool) -> int:
    """Number of points of the grid whose spacing is ``1/factor`` times that of an ``n``-point
    grid (e.g. ``factor=0.5``: half as many cells), at least 1 (2 on a node grid)."""
    if periodic:
        return max(1, round(n * factor))
    return max(2, round((n - 1) * factor) + 1)


def check_field(x, dim: int, channels: int, name: str = "input"):
    """ValueError naming the problem unless ``x`` is ``(batch, *spatial[dim], channels)``."""
    if x.ndim != dim + 2:
        raise ValueError(f"{name} must have shape (batch, {', '.join(['s'] * dim)}, channels) for a "
                         f"{dim}-D model, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} holds 0 samples (shape {tuple(x.shape)}): give at least one")
    if x.shape[-1] != channels:
        raise ValueError(f"{name} has {x.shape[-1]} channels, the model expects {channels} "
                         f"(shape {tuple(x.shape)}; channels are the last axis)")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating array, got dtype {x.dtype}")
