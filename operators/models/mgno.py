"""MgNO (He, Liu, Xu, ICLR 2024): layers ``u <- GELU(W^Mg u + W u + b)`` and a bias-free 1x1 head.

No lifting or projection MLPs: the first V-cycle maps the input channels (``c_f``) to ``width``
channels (``c_u``).

Prolongation kernels: the reference code uses a transposed convolution with kernel 4 where the
finer level has an even number of points and kernel 3 where it is odd, so the parameter count
depends on the grid the model is built for. ``prolongation_kernel="auto"`` (the default) derives
the kernels from ``grid_size`` (points per axis of the training grid, an int or one per axis) with
:func:`~operators.layers.multigrid.reference_prolongation_kernels`; an int or a per-level list
overrides it. The model still runs on any grid at call time. Reference configurations (1 input
channel, 24 channels, 6 levels, smoothing ``[(1, 0)] * 5 + [(2, 0)]``, zero padding):

* Darcy rough, ``grid_size=256`` (the default), 4 layers: 572,661 parameters;
* Darcy smooth, ``grid_size=211``, 5 layers: 678,093 parameters.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding
from ..layers.multigrid import MgConv, normalise_smoothing, reference_prolongation_kernels
from ..layers.pointwise import Pointwise
from ..layers.pointwise import activation as get_activation

__all__ = ["MGNO_DEFAULTS", "MgNO", "MgNOStack", "prolongation_kernels"]

MGNO_DEFAULTS = {
    "width": 24,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 5 + [[2, 0]],
    "padding": "zeros",
    "grid_size": 256,
    "prolongation_kernel": "auto",
    "activation": "gelu",
}


def prolongation_kernels(prolongation_kernel, grid_size, levels: int) -> list[int]:
    """Per-level prolongation kernels (finest first): derived from ``grid_size`` when
    ``prolongation_kernel`` is ``"auto"`` (or None), else the given int (all levels) or list."""
    if prolongation_kernel is None or (isinstance(prolongation_kernel, str)
                                       and prolongation_kernel.lower() == "auto"):
        if grid_size is None:
            raise ValueError("prolongation_kernel='auto' needs grid_size (points per axis of the training grid)")
        sizes = [int(grid_size)] if isinstance(grid_size, (int, float)) else [int(g) for g in grid_size]
        if any(g < 2 for g in sizes):
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        per_axis = [reference_prolongation_kernels(g, levels) for g in sizes]
        # one k^d kernel per level: where the axes of a non-square grid disagree, kernel 4 (the
        # transposed convolution is cropped to the fine grid, so it fits either parity)
        return [max(ks) for ks in zip(*per_axis)]
    if isinstance(prolongation_kernel, str):
        raise ValueError(f"prolongation_kernel must be 'auto', an int or a list, got {prolongation_kernel!r}")
    if isinstance(prolongation_kernel, (int, float)):
        return [int(prolongation_kernel)] * (levels - 1)
    return [int(k) for k in prolongation_kernel]


class MgNOStack(nnx.Module):
    """The layers ``u <- act(W^Mg_i u + W_i u + b_i)``, i = 1..n_layers, and the bias-free 1x1
    head, for any multigrid convolution ``W^Mg`` (MgNO's and mgno-conv's)."""

    def _build_stack(self, make_mg, in_channels: int, out_channels: int, dim: int, width: int,
                     n_layers: int, activation: str, rngs: nnx.Rngs):
        """``make_mg(c_in, c_out)``: one multigrid convolution."""
        if n_layers < 1 or width < 1:
            raise ValueError(f"{type(self).__name__} needs n_layers >= 1 and width >= 1, got {n_layers}, {width}")
        get_activation(activation)
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act = activation
        self.mg = nnx.List([make_mg(in_channels if i == 0 else width, width) for i in range(n_layers)])
        self.linear = nnx.List([Pointwise(in_channels if i == 0 else width, width, rngs=rngs)
                                for i in range(n_layers)])
        self.head = Pointwise(width, out_channels, use_bias=False, rngs=rngs)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        act = get_activation(self.act)
        u = x
        for mg, lin in zip(self.mg, self.linear):
            u = act(mg(u) + lin(u))
        return self.head(u)


class MgNO(MgNOStack):
    """Multigrid neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``, 1-D or 2-D."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 n_layers: int = 4, smoothing=MGNO_DEFAULTS["smoothing"], padding: str = "zeros",
                 grid_size: int | None = 256, prolongation_kernel="auto", activation: str = "gelu",
                 rngs: nnx.Rngs):
        smoothing = normalise_smoothing(smoothing)
        self.grid_size = grid_size
        kernels = prolongation_kernels(prolongation_kernel, grid_size, len(smoothing))
        kw = {"dim": dim, "padding": check_padding(padding), "prolongation_kernel": kernels, "rngs": rngs}
        self._build_stack(lambda ci, co: MgConv(ci, co, smoothing, **kw), in_channels, out_channels, dim,
                          width, n_layers, activation, rngs)
