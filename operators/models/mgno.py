"""MgNO (He, Liu, Xu, ICLR 2024): layers ``u <- GELU(W^Mg u + W u + b)`` and a bias-free 1x1 head.

No lifting or projection MLPs: the first V-cycle maps the input channels (``c_f``) to ``width``
channels (``c_u``). With the reference Darcy-rough configuration (1 input channel, 4 layers of
24 channels, 6 levels, smoothing ``[(1, 0)] * 5 + [(2, 0)]``, zero padding) it has the
reference implementation's 572,661 parameters.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding
from ..layers.multigrid import MgConv, normalise_smoothing
from ..layers.pointwise import Pointwise
from ..layers.pointwise import activation as get_activation

__all__ = ["MGNO_DEFAULTS", "MgNO"]

MGNO_DEFAULTS = {
    "width": 24,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 5 + [[2, 0]],
    "padding": "zeros",
    "prolongation_kernel": 4,
    "activation": "gelu",
}


class MgNO(nnx.Module):
    """Multigrid neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``, 1-D or 2-D."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 n_layers: int = 4, smoothing=MGNO_DEFAULTS["smoothing"], padding: str = "zeros",
                 prolongation_kernel=4, activation: str = "gelu", rngs: nnx.Rngs):
        if n_layers < 1 or width < 1:
            raise ValueError(f"MgNO needs n_layers >= 1 and width >= 1, got {n_layers}, {width}")
        get_activation(activation)
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act = activation
        smoothing = normalise_smoothing(smoothing)
        padding = check_padding(padding)
        kw = {"dim": dim, "padding": padding, "prolongation_kernel": prolongation_kernel, "rngs": rngs}
        self.mg = nnx.List([MgConv(in_channels if i == 0 else width, width, smoothing, **kw)
                            for i in range(n_layers)])
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
