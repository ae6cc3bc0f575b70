"""Resolution-convergent MgNO ("mgno-conv"): MgNO's layers ``u <- GELU(W^Mg u + W u + b)`` and
bias-free 1x1 head, with the V-cycle of :class:`~operators.layers.PhysicalMgConv` (fixed
physical hierarchy, local integral kernels on the input grid) in place of index-space stencils.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding
from ..layers.multigrid import normalise_smoothing
from ..layers.physical_multigrid import PhysicalMgConv
from ..layers.pointwise import Pointwise
from ..layers.pointwise import activation as get_activation

__all__ = ["MGNO_CONV_DEFAULTS", "MgNOConv"]

MGNO_CONV_DEFAULTS = {
    "width": 24,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 4 + [[2, 0]],
    "base_resolution": 64,
    "padding": "zeros",
    "activation": "gelu",
}


class MgNOConv(nnx.Module):
    """Resolution-convergent multigrid neural operator ``(b, *n, c_in) -> (b, *n, c_out)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 n_layers: int = 4, smoothing=MGNO_CONV_DEFAULTS["smoothing"], base_resolution: int = 64,
                 padding: str = "zeros", activation: str = "gelu", rngs: nnx.Rngs):
        if n_layers < 1 or width < 1:
            raise ValueError(f"MgNOConv needs n_layers >= 1 and width >= 1, got {n_layers}, {width}")
        get_activation(activation)
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act = activation
        smoothing = normalise_smoothing(smoothing)
        kw = {"dim": dim, "padding": check_padding(padding), "base_resolution": int(base_resolution), "rngs": rngs}
        self.mg = nnx.List([PhysicalMgConv(in_channels if i == 0 else width, width, smoothing, **kw)
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
