"""U-Net (Ronneberger et al. 2015) as an ordinary network of flax layers, and ``unet-no``: the
same network turned into a neural operator by :func:`operators.convert` (Berner et al. 2025).

:class:`UNet` is built from ``nnx.Conv`` (3x3 convolutions, stride-2 convolutions for the
down-sampling), ``nnx.ConvTranspose`` (stride-2 up-sampling, cropped to the skip connection's
grid), ``nnx.GroupNorm`` and pointwise 1x1 convolutions for the lifting and projection: an index-
space network tied to the pixel grid. :class:`UNetNO` builds it and converts it on the
reference grid of ``base_resolution`` cells (node grid ``base_resolution + 1`` points, periodic
``base_resolution``), which should be the training grid: on that grid it is the U-Net, on grids
refined by ``r`` (nested or not, as long as every level's grid refines by the same ``r``: e.g.
with 64 cells and 3 levels, node grids of ``16 k + 1`` points, periodic ``16 k``) every kernel is
the quadrature of the same continuous kernel; other grids get a ValueError naming the layer. ``param_dtype``
(float32) / ``dtype`` (None: the input's, promoted with the parameters') set the parameter and
computation dtypes of every layer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ..convert import convert
from ..layers.grid import check_field, check_padding
from ..layers.pointwise import activation as get_activation

__all__ = ["UNET_DEFAULTS", "UNET_NO_DEFAULTS", "UNet", "UNetNO"]

UNET_NO_DEFAULTS = {
    "width": 24,
    "channel_mult": [1, 2, 4],
    "kernel_size": 3,
    "groups": 4,
    "base_resolution": 64,
    "padding": "zeros",
    "activation": "gelu",
}
#: ``unet``: the plain U-Net (works on any grid its strides handle, in index space)
UNET_DEFAULTS = {k: v for k, v in UNET_NO_DEFAULTS.items() if k != "base_resolution"}

_FLAX_PADDING = {"zeros": "SAME", "wrap": "CIRCULAR", "reflect": "REFLECT"}

#: PyTorch's default convolution initialisation, U(+-1/sqrt(fan_in)) (cheaper to compile than
#: flax's truncated normal, and the scheme of the reference U-Nets)
_INIT = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class _Block(nnx.Module):
    def __init__(self, c_in, c_out, kernel, pad, groups, act, rngs, dt):
        self.conv1 = nnx.Conv(c_in, c_out, kernel, padding=pad, kernel_init=_INIT, rngs=rngs, **dt)
        self.norm1 = nnx.GroupNorm(c_out, num_groups=groups, rngs=rngs, **dt) if groups else None
        self.conv2 = nnx.Conv(c_out, c_out, kernel, padding=pad, kernel_init=_INIT, rngs=rngs, **dt)
        self.norm2 = nnx.GroupNorm(c_out, num_groups=groups, rngs=rngs, **dt) if groups else None
        self.act = act

    def __call__(self, x):
        act = get_activation(self.act)
        u = self.conv1(x)
        u = act(self.norm1(u) if self.norm1 is not None else u)
        u = self.conv2(u)
        return act(self.norm2(u) if self.norm2 is not None else u)


class UNet(nnx.Module):
    """Plain U-Net ``(b, *n, in_channels) -> (b, *n, out_channels)`` of flax layers.

    Level ``l`` has ``width * channel_mult[l]`` channels; between levels a stride-2 ``k^d``
    convolution (down) and a stride-2 transposed convolution (up, kernel ``k``) whose output is
    cropped to the skip connection's grid before concatenation. ``groups``: groups of the
    GroupNorm after each convolution (0: none). ``padding``: ``zeros`` (SAME), ``wrap``
    (CIRCULAR) or ``reflect`` (REFLECT; the transposed convolutions pad with zeros).
    """

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 channel_mult=(1, 2, 4), kernel_size: int = 3, groups: int = 4, padding: str = "zeros",
                 activation: str = "gelu", dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        get_activation(activation)
        mult = [int(m) for m in channel_mult]
        if not mult:
            raise ValueError("channel_mult needs at least one level")
        ch = [width * m for m in mult]
        if groups and any(c % groups for c in ch):
            raise ValueError(f"groups {groups} must divide every level's channels {ch}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.padding = check_padding(padding)
        pad = _FLAX_PADDING[self.padding]
        up_pad = "CIRCULAR" if self.padding == "wrap" else "SAME"
        k = (kernel_size,) * dim
        dt = {"dtype": dtype, "param_dtype": jnp.dtype(param_dtype)}
        self.lift = nnx.Conv(in_channels, width, (1,) * dim, kernel_init=_INIT, rngs=rngs, **dt)
        self.enc = nnx.List([_Block(width if l == 0 else ch[l - 1], ch[l], k, pad, groups, activation, rngs, dt)
                             for l in range(len(ch))])
        self.down = nnx.List([nnx.Conv(ch[l], ch[l], k, strides=2, padding=pad, kernel_init=_INIT, rngs=rngs, **dt)
                              for l in range(len(ch) - 1)])
        self.up = nnx.List([nnx.ConvTranspose(ch[l + 1], ch[l], k, strides=2, padding=up_pad, kernel_init=_INIT,
                                              rngs=rngs, **dt)
                            for l in range(len(ch) - 1)])
        self.dec = nnx.List([_Block(2 * ch[l], ch[l], k, pad, groups, activation, rngs, dt)
                             for l in range(len(ch) - 1)])
        self.project = nnx.Conv(ch[0], out_channels, (1,) * dim, kernel_init=_INIT, rngs=rngs, **dt)

    def __call__(self, x):
        u = self.lift(x)
        skips = []
        levels = len(self.enc)
        for l in range(levels):
            u = self.enc[l](u)
            if l < levels - 1:
                skips.append(u)
                u = self.down[l](u)
        for l in reversed(range(levels - 1)):
            s = skips[l]
            u = self.up[l](u)
            u = u[(slice(None), *[slice(0, n) for n in s.shape[1:-1]])]
            u = self.dec[l](jnp.concatenate([u, s], axis=-1))
        return self.project(u)


class UNetNO(nnx.Module):
    """``unet-no``: a :class:`UNet` converted to a neural operator on the reference grid of
    ``base_resolution`` cells per axis (any grid the strides divide)."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 channel_mult=(1, 2, 4), kernel_size: int = 3, groups: int = 4, base_resolution: int = 64,
                 padding: str = "zeros", activation: str = "gelu", dtype=None, param_dtype="float32",
                 rngs: nnx.Rngs):
        if int(base_resolution) < 2:
            raise ValueError(f"base_resolution (cells per axis of the training grid) must be >= 2, got {base_resolution}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.base_resolution = int(base_resolution)
        periodic = check_padding(padding) == "wrap"
        net = UNet(in_channels, out_channels, dim=dim, width=width, channel_mult=channel_mult,
                   kernel_size=kernel_size, groups=groups, padding=padding, activation=activation, dtype=dtype,
                   param_dtype=param_dtype, rngs=rngs)
        n = base_resolution if periodic else base_resolution + 1
        example = jax.ShapeDtypeStruct((1,) + (n,) * dim + (in_channels,), jnp.float32)
        self.net = convert(net, example, periodic, check=False)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        return self.net(x)
