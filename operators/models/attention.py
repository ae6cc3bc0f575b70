"""``attention-no``: a transformer neural operator whose attention is an integral over the
domain with quadrature weights (:class:`~operators.layers.attention.IntegralAttention`).

Pointwise lifting of the input and its physical coordinates (``x`` on node grids; ``cos 2 pi x``,
``sin 2 pi x`` on periodic ones, so that every integrand stays smooth across the wrap and the
rectangle rule keeps its spectral accuracy), ``n_layers`` pre-norm blocks
``u + A(LN u)``, ``u + MLP(LN u)`` (layer norm and MLP act per point), and a pointwise projection
MLP. Every operation is pointwise or a quadrature of an integral over the domain, so the output
converges as the grid is refined, on any grid. ``param_dtype`` (float32) / ``dtype`` (None: the
input's) set the parameter and computation dtypes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..layers.attention import IntegralAttention
from ..layers.conv import as_dtype
from ..layers.grid import check_field, check_padding, grid_points
from ..layers.pointwise import ChannelMLP, Pointwise
from ..layers.pointwise import activation as get_activation

__all__ = ["ATTENTION_NO_DEFAULTS", "AttentionNO"]

ATTENTION_NO_DEFAULTS = {
    "width": 96,
    "n_layers": 4,
    "heads": 4,
    "mlp_hidden": 192,
    "projection_hidden": 128,
    "attention": "linear",
    "padding": "zeros",
    "activation": "gelu",
}


class AttentionNO(nnx.Module):
    """Attention neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 96, n_layers: int = 4,
                 heads: int = 4, mlp_hidden: int = 192, projection_hidden: int = 128, attention: str = "linear",
                 padding: str = "zeros", activation: str = "gelu", dtype=None, param_dtype="float32",
                 rngs: nnx.Rngs):
        get_activation(activation)
        periodic = check_padding(padding) == "wrap"
        self.dim, self.in_channels, self.out_channels, self.dtype = dim, in_channels, out_channels, dtype
        self.periodic = periodic
        kw = {"dtype": dtype, "param_dtype": jnp.dtype(param_dtype), "rngs": rngs}
        self.lift = Pointwise(in_channels + (2 * dim if periodic else dim), width, **kw)
        self.norms1 = nnx.List([nnx.LayerNorm(width, **kw) for _ in range(n_layers)])
        self.attn = nnx.List([IntegralAttention(width, heads, periodic=periodic, kind=attention, **kw)
                              for _ in range(n_layers)])
        self.norms2 = nnx.List([nnx.LayerNorm(width, **kw) for _ in range(n_layers)])
        self.mlps = nnx.List([ChannelMLP(width, width, mlp_hidden, act=activation, **kw) for _ in range(n_layers)])
        self.project = ChannelMLP(width, out_channels, projection_hidden, act=activation, **kw)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        x = as_dtype(x, self.dtype)
        u = self.lift(jnp.concatenate([x, self.coordinates(x.shape[1:-1], x.dtype, x.shape[0])], axis=-1))
        for n1, a, n2, m in zip(self.norms1, self.attn, self.norms2, self.mlps):
            u = u + a(n1(u))
            u = u + m(n2(u))
        return self.project(u)

    def coordinates(self, shape, dtype, batch):
        """``(batch, *shape, 2d or d)``: the physical coordinates as channels (periodic: their
        cosine and sine)."""
        axes = [grid_points(int(n), self.periodic) for n in shape]
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        if self.periodic:
            mesh = np.concatenate([np.cos(2 * np.pi * mesh), np.sin(2 * np.pi * mesh)], axis=-1)
        return jnp.broadcast_to(jnp.asarray(mesh, dtype), (batch, *mesh.shape))

