"""A plain CNN of ordinary flax layers (``cnn``), and the same network turned into a neural
operator by :func:`operators.convert` (``cnn-no``; Berner et al. 2025, Sec. 3: a convolution
read as a local integral kernel of fixed physical support).

:class:`CNN` is the network people already use: a pointwise lifting (1x1 ``nnx.Conv``), ``depth``
residual blocks ``u + act(Conv_k(u))`` of ``k^d`` convolutions whose kernels are counted in grid
points (``SAME`` padding: zeros, ``CIRCULAR`` on periodic grids), and a pointwise two-layer
projection. Applied to a finer grid it still reads ``k`` neighbouring points, so its receptive
field shrinks in physical units: the operator it computes changes with the grid.

:class:`CNNNO` builds the same network and converts it on the reference grid of
``base_resolution`` cells (node grid ``base_resolution + 1`` points, periodic
``base_resolution``), which should be the training grid: there it *is* the CNN (same
parameters, same outputs); on refined grids every ``k^d`` stencil becomes the quadrature of one
continuous kernel of physical radius ``(k // 2) / base_resolution``, so outputs on nested grids
converge (:mod:`operators.convert`).

``param_dtype`` (float32) / ``dtype`` (None: the input's, promoted with the parameters') set the
parameter and computation dtypes of every layer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ..convert import convert
from ..layers.grid import check_field, check_padding
from ..layers.pointwise import activation as get_activation

__all__ = ["CNN", "CNNNO", "CNN_DEFAULTS", "CNN_NO_DEFAULTS"]

CNN_DEFAULTS = {
    "width": 64,
    "depth": 8,
    "kernel_size": 3,
    "projection_hidden": 128,
    "padding": "zeros",
    "activation": "gelu",
}
CNN_NO_DEFAULTS = {**CNN_DEFAULTS, "base_resolution": 64}

_FLAX_PADDING = {"zeros": "SAME", "wrap": "CIRCULAR", "reflect": "REFLECT"}
#: PyTorch's default convolution initialisation, U(+-1/sqrt(fan_in)), as the U-Net
_INIT = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class CNN(nnx.Module):
    """Plain residual CNN ``(b, *n, in_channels) -> (b, *n, out_channels)`` (kernel ``kernel_size``
    grid points, odd)."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 64, depth: int = 8,
                 kernel_size: int = 3, projection_hidden: int = 128, padding: str = "zeros",
                 activation: str = "gelu", dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        get_activation(activation)
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a stencil with a centre tap), got {kernel_size}")
        if int(depth) < 1 or int(width) < 1 or int(projection_hidden) < 1:
            raise ValueError(f"depth, width and projection_hidden must be >= 1, got {depth}, {width}, "
                             f"{projection_hidden}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.padding, self.act = check_padding(padding), activation
        one, k = (1,) * dim, (int(kernel_size),) * dim
        kw = {"kernel_init": _INIT, "dtype": dtype, "param_dtype": jnp.dtype(param_dtype), "rngs": rngs}
        self.lift = nnx.Conv(in_channels, width, one, **kw)
        self.convs = nnx.List([nnx.Conv(width, width, k, padding=_FLAX_PADDING[self.padding], **kw)
                               for _ in range(int(depth))])
        self.project1 = nnx.Conv(width, projection_hidden, one, **kw)
        self.project2 = nnx.Conv(projection_hidden, out_channels, one, **kw)

    def __call__(self, x):
        act = get_activation(self.act)
        u = self.lift(x)
        for conv in self.convs:
            u = u + act(conv(u))
        return self.project2(act(self.project1(u)))


class CNNNO(nnx.Module):
    """``cnn-no``: a :class:`CNN` converted to a neural operator on the reference grid of
    ``base_resolution`` cells per axis (serves any grid that refines or coarsens it)."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 64, depth: int = 8,
                 kernel_size: int = 3, projection_hidden: int = 128, base_resolution: int = 64,
                 padding: str = "zeros", activation: str = "gelu", dtype=None, param_dtype="float32",
                 rngs: nnx.Rngs):
        if int(base_resolution) < 2:
            raise ValueError(f"base_resolution (cells per axis of the training grid) must be >= 2, got {base_resolution}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.base_resolution = int(base_resolution)
        periodic = check_padding(padding) == "wrap"
        net = CNN(in_channels, out_channels, dim=dim, width=width, depth=depth, kernel_size=kernel_size,
                  projection_hidden=projection_hidden, padding=padding, activation=activation, dtype=dtype,
                  param_dtype=param_dtype, rngs=rngs)
        n = self.base_resolution if periodic else self.base_resolution + 1
        example = jax.ShapeDtypeStruct((1,) + (n,) * dim + (in_channels,), jnp.float32)
        self.net = convert(net, example, periodic, check=False)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        return self.net(x)
