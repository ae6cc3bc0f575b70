"""Resolution-convergent MgNO ("mgno-conv"): MgNO's layers ``u <- GELU(W^Mg u + W u + b)`` and
bias-free 1x1 head, with the V-cycle of :class:`~operators.layers.PhysicalMgConv` (fixed
physical hierarchy, local integral kernels on the input grid) in place of index-space stencils.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_padding
from ..layers.multigrid import normalise_smoothing
from ..layers.physical_multigrid import PhysicalMgConv
from .mgno import MgNOStack

__all__ = ["LEGACY_PROLONGATION", "MGNO_CONV_DEFAULTS", "MgNOConv"]

MGNO_CONV_DEFAULTS = {
    "width": 24,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 4 + [[2, 0]],
    "base_resolution": 64,
    "padding": "zeros",
    "activation": "gelu",
    "prolongation": "resize",
}

#: the prolongation of mgno-conv runs whose config predates the option (trained before 2026-11-28)
LEGACY_PROLONGATION = "transpose"


class MgNOConv(MgNOStack):
    """Resolution-convergent multigrid neural operator ``(b, *n, c_in) -> (b, *n, c_out)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 n_layers: int = 4, smoothing=MGNO_CONV_DEFAULTS["smoothing"], base_resolution: int = 64,
                 padding: str = "zeros", activation: str = "gelu", prolongation: str = "resize",
                 dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        smoothing = normalise_smoothing(smoothing)
        kw = {"dim": dim, "padding": check_padding(padding), "base_resolution": int(base_resolution),
              "prolongation": prolongation, "dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self._build_stack(lambda ci, co: PhysicalMgConv(ci, co, smoothing, **kw), in_channels, out_channels,
                          dim, width, n_layers, activation, rngs, dtype=dtype, param_dtype=param_dtype)
