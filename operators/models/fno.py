"""FNO (Li et al. 2021), the neural-operator form of a CNN (Berner et al. 2025, "conv -> spectral
conv"): pointwise lifting, Fourier layers ``u <- act(K u + W u + b)``, pointwise projection MLP.

Resolution independence follows the NN-to-NO rules: a fixed number of Fourier modes (weights are
functions of the frequency), pointwise maps, optional quadrature-weighted instance norm, and
domain padding given as a fraction of the domain (physical units), not in pixels.
``param_dtype`` (float32) / ``dtype`` (None: the input's) set the parameter and compute dtypes.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding, is_periodic
from ..layers.pointwise import ChannelMLP, GridEmbedding, Pointwise, QuadratureNorm
from ..layers.pointwise import activation as get_activation
from ..layers.spectral import SpectralConv, as_modes

__all__ = ["FNO", "FNO_DEFAULTS", "domain_pad", "domain_unpad"]

FNO_DEFAULTS = {
    "width": 32,
    "modes": 12,
    "n_layers": 4,
    "lifting_hidden": 0,
    "projection_hidden": 128,
    "domain_padding": 0.0,
    "padding": "zeros",
    "norm": None,
    "positional_embedding": False,
    "activation": "gelu",
}


def domain_pad(x, fraction: float):
    """Zero-extend every spatial axis at its end by ``round(fraction * n)`` points (the FNO
    padding for non-periodic data, in physical units so it scales with the grid)."""
    import jax.numpy as jnp

    if not fraction:
        return x
    pads = [(0, round(fraction * n)) for n in x.shape[1:-1]]
    return jnp.pad(x, [(0, 0), *pads, (0, 0)])


def domain_unpad(x, shape):
    """Crop the spatial axes back to ``shape``."""
    return x[(slice(None), *[slice(0, n) for n in shape])]


class FNO(nnx.Module):
    """Fourier neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``, 1-, 2- or 3-D."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 32, modes=12,
                 n_layers: int = 4, lifting_hidden: int = 0, projection_hidden: int = 128,
                 domain_padding: float = 0.0, padding: str = "zeros", norm: str | None = None,
                 positional_embedding: bool = False, activation: str = "gelu", dtype=None,
                 param_dtype="float32", rngs: nnx.Rngs):
        get_activation(activation)
        if norm not in (None, "instance"):
            raise ValueError(f"unknown norm {norm!r}; choose None or 'instance'")
        if not 0.0 <= domain_padding <= 1.0:
            raise ValueError(f"domain_padding is a fraction of the domain in [0, 1], got {domain_padding}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act, self.domain_padding = activation, float(domain_padding)
        periodic = is_periodic(check_padding(padding))
        modes = as_modes(modes, dim)
        self.embed = GridEmbedding(dim, periodic) if positional_embedding else None
        c_in = in_channels + (dim if positional_embedding else 0)
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.lift = (ChannelMLP(c_in, width, lifting_hidden, act=activation, **kw) if lifting_hidden
                     else Pointwise(c_in, width, **kw))
        self.spectral = nnx.List([SpectralConv(width, width, modes, dim=dim, **kw) for _ in range(n_layers)])
        self.linear = nnx.List([Pointwise(width, width, **kw) for _ in range(n_layers)])
        self.norms = (nnx.List([QuadratureNorm(width, periodic=periodic, **kw) for _ in range(n_layers)])
                      if norm else None)
        self.project = ChannelMLP(width, out_channels, projection_hidden, act=activation, **kw)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        act = get_activation(self.act)
        shape = x.shape[1:-1]
        if self.embed is not None:
            x = self.embed(x)
        u = domain_pad(self.lift(x), self.domain_padding)
        n = len(self.spectral)
        for i in range(n):
            v = self.spectral[i](u) + self.linear[i](u)
            if self.norms is not None:
                v = self.norms[i](v)
            u = act(v) if i < n - 1 else v
        return self.project(domain_unpad(u, shape))
