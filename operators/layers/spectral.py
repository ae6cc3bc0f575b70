"""Spectral convolution (the Fourier layer of FNO, Li et al. 2021, Eq. (4)).

``K u = irfft(R_k . rfft(u))`` on a fixed set of low Fourier modes per axis, independent of the
grid: ``modes[i]`` non-negative and ``modes[i]`` negative frequencies on every axis but the last,
``modes[-1]`` non-negative ones on the last (real FFT). ``R_k`` is a complex ``c_in x c_out``
matrix per mode (stored as real and imaginary parts). The transforms use the ``forward``
normalisation, so mode ``k`` carries the Fourier coefficient of the function, not of the
samples: the layer approximates one continuous operator on every grid, and may return its
result on another grid (``out_shape``, used by U-NO).

Two exact ways to compute the same thing (``transform``):

- ``"fft"``: full FFTs, keep the low modes, inverse FFT of the zero-padded spectrum;
- ``"dft"``: only the kept modes, as matrix products with truncated DFT matrices, one axis at a
  time. With few modes this costs ``O(n * modes)`` per axis in dense matrix products, which on CPU
  run several times faster than FFTs (and their gradients) of the whole grid.

``"auto"`` (default) takes ``"dft"`` on CPU when every axis keeps at most
:data:`DFT_MAX_FREQUENCIES` frequencies, ``"fft"`` otherwise (on GPU the FFT is fast and float32
matrix products may run in reduced precision, TF32).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["DFT_MAX_FREQUENCIES", "SpectralConv", "TRANSFORMS", "as_modes"]

TRANSFORMS = ("auto", "dft", "fft")
DFT_MAX_FREQUENCIES = 64  # per axis: the DFT gradient is still as fast as the FFT one at 64 on a 128 grid


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


def _frequencies(n_in: int, n_out: int, m: int, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer frequency of each weight index of one axis and whether it is kept (the same
    modes as :func:`_blocks`: representable on both the input and the output grid)."""
    size = m if last else 2 * m
    freq, kept = np.zeros(size, np.int64), np.zeros(size, bool)
    for w, s_in, _ in _blocks(n_in, n_out, m, last):
        idx = np.arange(size)[w]
        freq[idx] = np.arange(n_in)[s_in]
        kept[idx] = True
    freq = np.where(freq > n_in // 2, freq - n_in, freq) if not last else freq
    return freq, kept


def _analysis(n: int, freq: np.ndarray, kept: np.ndarray, dtype) -> jax.Array:
    """``(n, 2, modes)``: cos and sin parts of ``exp(-2 pi i f x / n) / n`` (unkept modes zero)."""
    angle = 2 * np.pi * np.outer(np.arange(n), freq) / n
    mat = np.stack([np.cos(angle), -np.sin(angle)], axis=1) * kept / n
    return jnp.asarray(mat, dtype)


def _synthesis(n: int, freq: np.ndarray, kept: np.ndarray, dtype, last: bool) -> jax.Array:
    """``(modes, 2, n)``: cos and sin parts of ``exp(+2 pi i f x / n)``; on the last (real) axis
    weighted as a real inverse FFT (twice the interior frequencies, once 0 and n/2), with the sin
    part negated so that the real output is ``re . cos_part + im . sin_part``."""
    angle = 2 * np.pi * np.outer(freq, np.arange(n)) / n
    if last:
        weight = np.where((freq == 0) | (2 * freq == n), 1.0, 2.0)[:, None] * kept[:, None]
        mat = np.stack([np.cos(angle), -np.sin(angle)], axis=1) * weight[:, :, None]
    else:
        mat = np.stack([np.cos(angle), np.sin(angle)], axis=1) * kept[:, None, None]
    return jnp.asarray(mat, dtype)


def _complex_contract(z, mat, axis: int):
    """Contract axis ``axis`` of the complex array ``z = (re, im)`` stacked on axis 0 with the
    complex matrix ``mat = (n, 2 = cos/sin, m)``; the new axis goes last."""
    n, _, m = mat.shape
    t = jnp.tensordot(z, mat.reshape(n, 2 * m), axes=([axis + 1], [0]))  # (2, ..., 2m)
    t = t.reshape(*t.shape[:-1], 2, m)
    re = t[0, ..., 0, :] - t[1, ..., 1, :]
    im = t[0, ..., 1, :] + t[1, ..., 0, :]
    return jnp.stack([re, im])


class SpectralConv(nnx.Module):
    """Fourier layer ``(b, *n, c_in) -> (b, *n_out, c_out)`` on ``dim`` = 1, 2 or 3 axes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int], *, dim: int = 2,
                 transform: str = "auto", rngs: nnx.Rngs):
        if dim not in (1, 2, 3):
            raise ValueError(f"SpectralConv supports 1-, 2- and 3-D grids, got dim={dim}")
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {TRANSFORMS}")
        self.dim, self.modes, self.transform = dim, as_modes(modes, dim), transform
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
        if self._use_dft(n_in, n_out):
            return self._dft(x, n_in, n_out)
        return self._fft(x, n_in, n_out)

    def _use_dft(self, n_in, n_out) -> bool:
        if self.transform != "auto":
            return self.transform == "dft"
        if jax.default_backend() != "cpu":
            return False
        kept = [int(_frequencies(a, b, m, i == self.dim - 1)[1].sum())
                for i, (a, b, m) in enumerate(zip(n_in, n_out, self.modes))]
        return max(kept) <= DFT_MAX_FREQUENCIES

    def _fft(self, x, n_in, n_out):
        d = self.dim
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

    def _dft(self, x, n_in, n_out):
        """Truncated DFTs as matrix products: the last axis first (real to complex), then the
        others in order, each contraction appending its mode axis, so the modes end up ordered
        (last, first, ..., second-to-last); the inverse walks the same way back."""
        d, b, dtype = self.dim, x.shape[0], x.dtype
        freqs = [_frequencies(n_in[i], n_out[i], self.modes[i], i == d - 1) for i in range(d)]
        x = jnp.moveaxis(x, -1, 1)  # (b, c, *n)
        a = _analysis(n_in[-1], *freqs[-1], dtype)
        t = jnp.tensordot(x, a.reshape(n_in[-1], -1), axes=([d + 1], [0]))  # (b, c, *n[:-1], 2 k)
        z = jnp.moveaxis(t.reshape(*t.shape[:-1], 2, -1), -2, 0)  # (2, b, c, *n[:-1], k)
        for i in range(d - 1):  # each contraction takes the spatial axis at position 2
            z = _complex_contract(z, _analysis(n_in[i], *freqs[i], dtype), 2)
        modes = z.shape[3:]  # (k_last, m_1, ..., m_{d-1})
        c_in, c_out = self.in_channels, self.out_channels
        wr = jnp.moveaxis(self.weight_real[...].astype(dtype), d - 1, 0)  # (*modes, c_in, c_out)
        wi = jnp.moveaxis(self.weight_imag[...].astype(dtype), d - 1, 0)
        w = jnp.concatenate([jnp.concatenate([wr, wi], -1), jnp.concatenate([-wi, wr], -1)], -2)
        p = int(np.prod(modes))
        zm = jnp.moveaxis(z.reshape(2, b, c_in, p), (3, 1), (0, 1)).reshape(p, b, 2 * c_in)  # (p, b, [re|im] c)
        y = jnp.matmul(zm, w.reshape(p, 2 * c_in, 2 * c_out))  # (p, b, [re|im] o): complex R_k . z
        y = jnp.moveaxis(y.reshape(*modes, b, 2, c_out), (d + 1, d, d + 2), (0, 1, 2))  # (2, b, o, *modes)
        for i in range(d - 1):  # each contraction takes the mode axis at position 3
            y = _complex_contract(y, _synthesis(n_out[i], *freqs[i], dtype, last=False), 3)
        s = _synthesis(n_out[-1], *freqs[-1], dtype, last=True)  # (k, 2, n_last)
        out = jnp.tensordot(y, s, axes=([0, 3], [1, 0]))  # (b, o, *n_out)
        return jnp.moveaxis(out, 1, -1)
