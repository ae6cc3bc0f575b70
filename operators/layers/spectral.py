"""Spectral convolution (the Fourier layer of FNO, Li et al. 2021, Eq. (4)).

``K u = irfft(R_k . rfft(u))`` on a fixed set of low Fourier modes per axis, independent of the
grid: ``modes[i]`` non-negative and ``modes[i]`` negative frequencies on every axis but the last,
``modes[-1]`` non-negative ones on the last (real FFT). ``R_k`` is a complex ``c_in x c_out``
matrix per mode (stored as real and imaginary parts). The FFTs use the ``forward``
normalisation, so mode ``k`` carries the Fourier coefficient of the function, not of the
samples: the layer approximates one continuous operator on every grid, and may return its
result on another grid (``out_shape``, used by U-NO).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["SpectralConv", "as_modes"]


def as_modes(modes, dim: int) -> tuple[int, ...]:
    """Modes per axis from an int or a sequence of ``dim`` ints."""
    m = (int(modes),) * dim if isinstance(modes, int) else tuple(int(v) for v in modes)
    if len(m) != dim or min(m) < 1:
        raise ValueError(f"modes must be a positive int or {dim} positive ints, got {modes!r}")
    return m


def _blocks(n_in: int, n_out: int, m: int, last: bool):
    """(weight slice, spectrum slice in, spectrum slice out) of the kept modes of one axis."""
    if last:
        k = min(m, n_in // 2 + 1, n_out // 2 + 1)
        return [(slice(0, k), slice(0, k), slice(0, k))]
    pos = min(m, (n_in + 1) // 2, (n_out + 1) // 2)
    neg = min(m, n_in // 2, n_out // 2)
    out = [(slice(0, pos), slice(0, pos), slice(0, pos))]
    if neg:
        out.append((slice(2 * m - neg, 2 * m), slice(n_in - neg, n_in), slice(n_out - neg, n_out)))
    return out


class SpectralConv(nnx.Module):
    """Fourier layer ``(b, *n, c_in) -> (b, *n_out, c_out)`` on ``dim`` = 1, 2 or 3 axes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int], *, dim: int = 2,
                 rngs: nnx.Rngs):
        if dim not in (1, 2, 3):
            raise ValueError(f"SpectralConv supports 1-, 2- and 3-D grids, got dim={dim}")
        self.dim, self.modes = dim, as_modes(modes, dim)
        self.in_channels, self.out_channels = in_channels, out_channels
        shape = tuple(2 * m for m in self.modes[:-1]) + (self.modes[-1], in_channels, out_channels)
        scale = 1.0 / (in_channels * out_channels)  # FNO's initialisation: scale * U[0, 1)
        self.weight_real = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))
        self.weight_imag = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))

    def __call__(self, x, out_shape: Sequence[int] | None = None):
        d = self.dim
        if x.ndim != d + 2 or x.shape[-1] != self.in_channels:
            raise ValueError(f"SpectralConv expects (batch, *{d} spatial, {self.in_channels}), got {tuple(x.shape)}")
        n_in = tuple(x.shape[1:-1])
        n_out = tuple(int(s) for s in out_shape) if out_shape is not None else n_in
        axes = tuple(range(1, d + 1))
        xf = jnp.fft.rfftn(x, axes=axes, norm="forward")
        w = (self.weight_real[...] + 1j * self.weight_imag[...]).astype(xf.dtype)
        spec_out = n_out[:-1] + (n_out[-1] // 2 + 1,)
        y = jnp.zeros((x.shape[0], *spec_out, self.out_channels), xf.dtype)
        per_axis = [_blocks(n_in[i], n_out[i], self.modes[i], i == d - 1) for i in range(d)]
        for combo in itertools.product(*per_axis):
            ws = tuple(c[0] for c in combo)
            xs = (slice(None),) + tuple(c[1] for c in combo)
            ys = (slice(None),) + tuple(c[2] for c in combo)
            y = y.at[ys].set(jnp.einsum("b...i,...io->b...o", xf[xs], w[ws]))
        return jnp.fft.irfftn(y, s=n_out, axes=axes, norm="forward").astype(x.dtype)
