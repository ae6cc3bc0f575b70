"""U-NO (Rahman et al. 2023), the neural-operator form of a U-Net (Berner et al. 2025, "U-Net ->
resampled kernels"): pointwise lifting, an encoder of Fourier layers that map to grids of half
the *physical* resolution, a decoder back up with skip connections concatenated, and a pointwise
projection MLP.

A layer is ``u <- act(resample(K u + W u + b))`` on the target grid: on periodic grids the
spectral path is evaluated on the target grid directly (Fourier interpolation); on node grids
both paths are evaluated on the input grid and linearly interpolated in physical coordinates.
Grid sizes of the levels are fractions of the input's (``grid.coarse_size``), and the modes of
each level are fixed, so the same continuous operator is approximated at every resolution.
``param_dtype`` (float32) / ``dtype`` (None: the input's) set the parameter and compute dtypes.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding, coarse_size, is_periodic, resample_linear
from ..layers.pointwise import ChannelMLP, GridEmbedding, Pointwise, QuadratureNorm
from ..layers.pointwise import activation as get_activation
from ..layers.spectral import SpectralConv

__all__ = ["UNO", "UNO_DEFAULTS", "UNOLayer"]

UNO_DEFAULTS = {
    "width": 32,
    "modes": [12, 8, 6],
    "channel_mult": [1, 2, 4],
    "projection_hidden": 128,
    "padding": "zeros",
    "norm": None,
    "positional_embedding": False,
    "activation": "gelu",
}


class UNOLayer(nnx.Module):
    """``u (b, *n, c_in) -> act(K u + W u + b)`` on the grid ``out_shape`` (default: ``n``)."""

    def __init__(self, in_channels: int, out_channels: int, modes, *, dim: int, periodic: bool,
                 norm: bool, dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        self.periodic = periodic
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.spectral = SpectralConv(in_channels, out_channels, modes, dim=dim, **kw)
        self.linear = Pointwise(in_channels, out_channels, **kw)
        self.norm = QuadratureNorm(out_channels, periodic=periodic, **kw) if norm else None

    def __call__(self, u, out_shape, act):
        out_shape = tuple(out_shape)
        if self.periodic:
            v = self.spectral(u, out_shape) + self.linear(resample_linear(u, out_shape, True))
        else:
            v = resample_linear(self.spectral(u) + self.linear(u), out_shape, False)
        if self.norm is not None:
            v = self.norm(v)
        return act(v)


class UNO(nnx.Module):
    """U-shaped neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``, 1-, 2- or 3-D.

    ``modes[l]`` and ``channel_mult[l]`` per level ``l``; level ``l`` has ``2^-l`` times the
    input's grid resolution. Encoder levels 0..L-1, decoder L-2..0 (each concatenating the
    encoder output of its level), then one more layer at level 0.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 32,
                 modes=(12, 8, 6), channel_mult=(1, 2, 4), projection_hidden: int = 128,
                 padding: str = "zeros", norm: str | None = None, positional_embedding: bool = False,
                 activation: str = "gelu", dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        get_activation(activation)
        modes, mult = list(modes), list(channel_mult)
        if len(modes) != len(mult) or not modes:
            raise ValueError(f"modes and channel_mult need one entry per level, got {modes} and {mult}")
        if norm not in (None, "instance"):
            raise ValueError(f"unknown norm {norm!r}; choose None or 'instance'")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act, self.levels = activation, len(modes)
        self.periodic = is_periodic(check_padding(padding))
        ch = [width * m for m in mult]
        dt = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        kw = {"dim": dim, "periodic": self.periodic, "norm": norm is not None, **dt}
        self.embed = GridEmbedding(dim, self.periodic) if positional_embedding else None
        c_in = in_channels + (dim if positional_embedding else 0)
        self.lift = Pointwise(c_in, width, **dt)
        self.down = nnx.List([UNOLayer(width if l == 0 else ch[l - 1], ch[l], modes[l], **kw)
                              for l in range(self.levels)])
        # decoder layer l maps level l+1 -> level l; its input is the level-(l+1) features
        # (concatenated with the encoder skip except at the bottleneck)
        up = []
        for l in range(self.levels - 2, -1, -1):
            c = ch[l + 1] if l == self.levels - 2 else 2 * ch[l + 1]
            up.append(UNOLayer(c, ch[l], modes[l], **kw))
        self.up = nnx.List(up)
        self.out = UNOLayer(2 * ch[0], width, modes[0], **kw)
        self.project = ChannelMLP(width, out_channels, projection_hidden, act=activation, **dt)

    def __call__(self, x):
        import jax.numpy as jnp

        check_field(x, self.dim, self.in_channels)
        act = get_activation(self.act)
        shape = tuple(x.shape[1:-1])
        shapes = [tuple(coarse_size(n, 0.5**l, self.periodic) for n in shape) for l in range(self.levels)]
        if self.embed is not None:
            x = self.embed(x)
        u = self.lift(x)
        skips = []
        for l, layer in enumerate(self.down):
            u = layer(u, shapes[l], act)
            skips.append(u)
        for i, layer in enumerate(self.up):
            l = self.levels - 2 - i
            if i > 0:
                u = jnp.concatenate([u, skips[l + 1]], axis=-1)
            u = layer(u, shapes[l], act)
        u = self.out(jnp.concatenate([u, skips[0]], axis=-1), shape, act)
        return self.project(u)
