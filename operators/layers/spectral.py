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

__all__ = ["DFT_MAX_FREQUENCIES", "TRANSFORMS", "SpectralConv", "as_modes"]

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
    for block, (w, s_in, _) in enumerate(_blocks(n_in, n_out, m, last)):
        idx = np.arange(size)[w]
        # the second block holds the negative frequencies (n_in/2 of an even grid included, as
        # the FFT path places it: at -n_in/2 on the output grid)
        freq[idx] = np.arange(n_in)[s_in] - (n_in if block == 1 else 0)
        kept[idx] = True
    return freq, kept


def _analysis(n: int, freq: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, modes)`` cos and sin parts of ``exp(-2 pi i f x / n) / n`` (unkept modes zero)."""
    angle = 2 * np.pi * np.outer(np.arange(n), freq) / n
    return np.cos(angle) * kept / n, -np.sin(angle) * kept / n


def _synthesis(n: int, freq: np.ndarray, kept: np.ndarray, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(modes, n)`` cos and sin parts of ``exp(+2 pi i f x / n)``; on the last (real) axis
    weighted as a real inverse FFT: twice the interior frequencies, once 0 and n/2."""
    angle = 2 * np.pi * np.outer(freq, np.arange(n)) / n
    weight = np.where((freq == 0) | (2 * freq == n), 1.0, 2.0) if last else np.ones(len(freq))
    weight = (weight * kept)[:, None]
    return np.cos(angle) * weight, np.sin(angle) * weight


def _complex_block(cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``(2 m, 2 n)`` real form of the complex map ``(cos + i sin)^T``: rows (re/im, m), columns
    (re/im, n), acting on a stacked ``(re, im)`` vector."""
    return np.block([[cos.T, -sin.T], [sin.T, cos.T]])


def _left_matmul(mat: np.ndarray, t, dtype):
    """``(B, k, r) -> (B, m, r)``: ``mat (m, k)`` times every ``t[i]``, as one batched matrix
    product on the array as it lies (no transpose of ``t``, which is the large operand)."""
    lhs = jnp.broadcast_to(jnp.asarray(mat, dtype), (t.shape[0], *mat.shape))
    return jax.lax.dot_general(lhs, t, (((2,), (1,)), ((0,), (0,))))


class SpectralConv(nnx.Module):
    """Fourier layer ``(b, *n, c_in) -> (b, *n_out, c_out)`` on ``dim`` = 1, 2 or 3 axes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int], *, dim: int = 2,
                 transform: str = "auto", dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        if dim not in (1, 2, 3):
            raise ValueError(f"SpectralConv supports 1-, 2- and 3-D grids, got dim={dim}")
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {TRANSFORMS}")
        self.dim, self.modes, self.transform = dim, as_modes(modes, dim), transform
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, dtype
        shape = tuple(2 * m for m in self.modes[:-1]) + (self.modes[-1], in_channels, out_channels)
        scale = 1.0 / (in_channels * out_channels)  # FNO's initialisation: scale * U[0, 1)
        self.weight_real = nnx.Param(scale * jax.random.uniform(rngs.params(), shape, param_dtype))
        self.weight_imag = nnx.Param(scale * jax.random.uniform(rngs.params(), shape, param_dtype))

    def __call__(self, x, out_shape: Sequence[int] | None = None):
        d = self.dim
        if x.ndim != d + 2 or x.shape[-1] != self.in_channels:
            raise ValueError(f"SpectralConv expects (batch, *{d} spatial, {self.in_channels}), got {tuple(x.shape)}")
        if self.dtype is not None:
            x = x.astype(self.dtype)
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
        """Truncated DFTs as batched matrix products on channel-last arrays.

        The first axis goes first (real to complex, on the full grid) and last on the way back
        (complex to real), both straight on the array as it lies; the other axes, on arrays
        already shrunk to the kept modes of the first axis, one at a time with real and imaginary
        parts stacked next to the axis being transformed. The real part taken at the end is the
        real inverse FFT (its last-axis weights are in :func:`_synthesis`).
        """
        d, b, dtype = self.dim, x.shape[0], x.dtype
        c_in, c_out = self.in_channels, self.out_channels
        freqs = [_frequencies(n_in[i], n_out[i], self.modes[i], i == d - 1) for i in range(d)]
        sizes = [len(f[0]) for f in freqs]  # weight entries per axis (2 m, or m on the last)
        # first axis, real -> complex: (b, n_1, rest) -> (b, m_1, 2, rest)
        cos, sin = _analysis(n_in[0], *freqs[0])
        first = np.stack([cos.T, sin.T], axis=1).reshape(2 * sizes[0], n_in[0])
        z = _left_matmul(first, x.reshape(b, n_in[0], -1), dtype)
        z = z.reshape(b, sizes[0], 2, *n_in[1:], c_in)
        for i in range(1, d):  # axis i: (..., 2, n_i, rest) -> (..., 2, m_i, rest)
            lead = (b, *sizes[:i])
            block = _complex_block(*_analysis(n_in[i], *freqs[i]))
            z = _left_matmul(block, z.reshape(int(np.prod(lead)), 2 * n_in[i], -1), dtype)
            z = z.reshape(*lead, 2, sizes[i], *n_in[i + 1:], c_in)
            if i < d - 1:  # move re/im next to the next axis
                z = jnp.moveaxis(z, i + 1, i + 2)
        # z: (b, m_1, ..., m_{d-1}, 2, m_d, c_in) (d = 1: (b, m_1, 2, c_in)). Mode mixing
        # R_k . z as two real batched products per mode on (re; im) stacked over the batch.
        p = int(np.prod(sizes))
        mode_axes, part = (list(range(1, d)) + [d + 1], d) if d > 1 else ([1], 2)
        zz = jnp.transpose(z, (*mode_axes, part, 0, d + 2)).reshape(p, 2 * b, c_in)
        wr = self.weight_real[...].astype(dtype).reshape(p, c_in, c_out)
        wi = self.weight_imag[...].astype(dtype).reshape(p, c_in, c_out)
        z_wr, z_wi = jnp.matmul(zz, wr), jnp.matmul(zz, wi)  # (p, [re; im] b, o) each
        y = jnp.stack([z_wr[:, :b] - z_wi[:, b:], z_wi[:, :b] + z_wr[:, b:]], axis=1)
        y = y.reshape(*sizes, 2, b, c_out)
        order = (d + 1, *range(d - 1), d, d - 1, d + 2) if d > 1 else (2, 0, 1, 3)
        y = jnp.transpose(y, order)  # (b, m_1, ..., m_{d-1}, 2, m_d, o) (d = 1: (b, m_1, 2, o))
        for i in range(d - 1, 0, -1):  # axis i back: (..., 2, m_i, rest) -> (..., 2, n_i, rest)
            lead = (b, *sizes[:i])
            block = _complex_block(*_synthesis(n_out[i], *freqs[i], last=i == d - 1))
            y = _left_matmul(block, y.reshape(int(np.prod(lead)), 2 * sizes[i], -1), dtype)
            y = y.reshape(*lead, 2, *n_out[i:], c_out)
            if i > 1:
                y = jnp.moveaxis(y, i + 1, i)  # re/im in front of the previous axis
        # first axis, complex -> real: (b, m_1, 2, rest) -> (b, n_1, rest), Re(sum) = re.cos - im.sin
        cos, sin = _synthesis(n_out[0], *freqs[0], last=d == 1)
        last = np.stack([cos.T, -sin.T], axis=2).reshape(n_out[0], 2 * sizes[0])
        out = _left_matmul(last, y.reshape(b, 2 * sizes[0], -1), dtype)
        return out.reshape(b, *n_out, c_out)
