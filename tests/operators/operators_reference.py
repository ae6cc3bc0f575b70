"""Independent numpy references for the operator layers (explicit sums and loops)."""

from __future__ import annotations

import itertools

import numpy as np

NP_MODE = {"zeros": "constant", "wrap": "wrap", "reflect": "reflect"}


def conv(x, w, stride=1, mode="zeros"):
    """Index-space cross-correlation, channel-last ``x (b, *n, ci)``, ``w (*k, ci, co)``, padding k//2."""
    d = x.ndim - 2
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, [(0, 0)] + [(p, k - 1 - p)] * d + [(0, 0)], mode=NP_MODE[mode])
    n_out = [-(-n // stride) for n in x.shape[1:-1]]
    out = np.zeros((x.shape[0], *n_out, w.shape[-1]))
    for taps in itertools.product(range(k), repeat=d):
        sl = tuple(slice(t, t + stride * (no - 1) + 1, stride) for t, no in zip(taps, n_out))
        out += xp[(slice(None), *sl)] @ w[taps]
    return out


def conv_transpose(x, w, shape, periodic=False):
    """Stride-2 transposed conv by explicit scatter: coarse j -> fine 2j - 1 + t (torch layout)."""
    d = x.ndim - 2
    k = w.shape[0]
    out = np.zeros((x.shape[0], *shape, w.shape[-1]))
    for J in itertools.product(*[range(n) for n in x.shape[1:-1]]):
        v = x[(slice(None), *J)]
        for taps in itertools.product(range(k), repeat=d):
            idx = [2 * j - 1 + t for j, t in zip(J, taps)]
            if periodic:
                idx = [i % n for i, n in zip(idx, shape)]
            elif any(i < 0 or i >= n for i, n in zip(idx, shape)):
                continue
            out[(slice(None), *idx)] += v @ w[taps]
    return out


def interpolate_2x(v, shape, periodic=False):
    """Linear interpolation from a grid onto the nested grid of twice as many cells, axis by
    axis: even fine points copy the coarse values, odd ones average their two neighbours."""
    for a in range(1, v.ndim - 1):
        n_f = shape[a - 1]
        out = np.zeros(v.shape[:a] + (n_f,) + v.shape[a + 1:])
        nc = v.shape[a]
        for i in range(n_f):
            lo, hi = (i // 2) % nc, ((i + 1) // 2) % nc
            out[(slice(None),) * a + (i,)] = 0.5 * (np.take(v, lo, axis=a) + np.take(v, hi, axis=a))
        v = out
    return v


def resize_conv(x, w, shape, periodic=False):
    """Kernel-3 convolution on the coarse grid (the flipped stencil, zero or periodic padding),
    then linear interpolation onto the nested 2x grid ``shape``."""
    d = x.ndim - 2
    v = conv(x, np.flip(w, axis=tuple(range(d))), 1, "wrap" if periodic else "zeros")
    return interpolate_2x(v, shape, periodic)


def vcycle(f, weights, mode="zeros", resize_first=False, periodic_prolongation=None):
    """The MgNO V-cycle from extracted weights: dict with lists ``pre[l] = [(A|None, S), ...]``,
    ``post[l]``, ``Pi[l]``, ``R[l]``, ``P[l]``. ``resize_first``: the prolongation into level 0
    is :func:`resize_conv` instead of the transposed convolution. ``periodic_prolongation``:
    whether the prolongation wraps (default: where ``mode`` is ``wrap``)."""
    wrap_up = mode == "wrap" if periodic_prolongation is None else periodic_prolongation
    L = len(weights["pre"])
    us, fs, u = [], [], None
    for l in range(L):
        if l:
            u, f = conv(u, weights["Pi"][l - 1], 2, mode), conv(f, weights["R"][l - 1], 2, mode)
        for A, S in weights["pre"][l]:
            u = conv(f, S, 1, mode) if A is None else u + conv(f - conv(u, A, 1, mode), S, 1, mode)
        us.append(u)
        fs.append(f)
    u = us[-1]
    for l in range(L - 2, -1, -1):
        up = resize_conv if (resize_first and l == 0) else conv_transpose
        u = us[l] + up(u, weights["P"][l], us[l].shape[1:-1], wrap_up)
        for A, S in weights["post"][l]:
            u = u + conv(fs[l] - conv(u, A, 1, mode), S, 1, mode)
    return u


def dft_spectral_conv(x, wr, wi, modes, out_shape=None):
    """FNO Fourier layer by explicit DFT sums: forward-normalised coefficients of the kept modes
    (``modes[i]`` non-negative and negative on leading axes, non-negative on the last), a complex
    matrix per mode, then the real inverse sum evaluated on ``out_shape``."""
    d = x.ndim - 2
    n_in = x.shape[1:-1]
    n_out = out_shape or n_in
    w = wr + 1j * wi
    grids_in = np.meshgrid(*[np.arange(n) / n for n in n_in], indexing="ij")
    grids_out = np.meshgrid(*[np.arange(n) / n for n in n_out], indexing="ij")
    out = np.zeros((x.shape[0], *n_out, w.shape[-1]))
    ranges = [list(range(m)) + list(range(-m, 0)) for m in modes[:-1]] + [list(range(modes[-1]))]
    for k in itertools.product(*ranges):
        phase_in = np.exp(-2j * np.pi * sum(ki * g for ki, g in zip(k, grids_in)))
        sp = "xyz"[:d]
        coef = np.einsum(f"{sp},b{sp}i->bi", phase_in, x) / np.prod(n_in)  # (b, ci)
        widx = tuple(ki if (a == d - 1 or ki >= 0) else 2 * modes[a] + ki for a, ki in enumerate(k))
        y = coef @ w[widx]  # (b, co)
        phase_out = np.exp(2j * np.pi * sum(ki * g for ki, g in zip(k, grids_out)))
        c = 1.0 if k[-1] == 0 or 2 * k[-1] == n_out[-1] else 2.0  # irfft: DC and Nyquist once
        out += c * np.real(np.einsum(f"{sp},bo->b{sp}o", phase_out, y))
    return out


def node_field(n):
    """A smooth non-periodic test input on the ``n``-point node grid of [0, 1]^2, (1, n, n, 1)."""
    x = np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    return (np.exp(-((X - 0.4) ** 2 + (Y - 0.6) ** 2) / 0.05) + X * Y)[None, ..., None]


def periodic_field(n):
    """A smooth periodic test input on the ``n``-point periodic grid, (1, n, n, 1)."""
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    return (np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y) + 0.5 * np.exp(np.cos(2 * np.pi * X)))[None, ..., None]


def cauchy_differences(model, sizes, periodic):
    """Relative RMS differences of the outputs at consecutive resolutions, on the coarsest grid's
    points (the grids are nested: node sizes 2^k m + 1, periodic sizes 2^k m)."""
    import jax.numpy as jnp

    field = periodic_field if periodic else node_field
    outs = [np.asarray(model(jnp.asarray(field(n), jnp.float32)))[0, ..., 0] for n in sizes]
    n0 = sizes[0]

    def on_coarse(y):
        step = y.shape[0] // n0 if periodic else (y.shape[0] - 1) // (n0 - 1)
        return y[::step, ::step]

    return [float(np.sqrt(np.mean((on_coarse(a) - on_coarse(b)) ** 2) / np.mean(on_coarse(b) ** 2)))
            for a, b in itertools.pairwise(outs)]


def far_field_influence(model, n):
    """RMS change of the output on x >= 0.5 when a bump (radius 0.08) is added at (0.2, 0.5):
    how much a model sees at a physical distance of >= 0.3."""
    import jax.numpy as jnp

    x = np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    base = np.sin(np.pi * X) * np.sin(np.pi * Y)
    d2 = ((X - 0.2) ** 2 + (Y - 0.5) ** 2) / 0.08**2
    bump = np.where(d2 < 1, np.exp(-1 / (1 - np.minimum(d2, 0.999999))), 0.0)
    ya = np.asarray(model(jnp.asarray(base[None, ..., None], jnp.float32)))[0, ..., 0]
    yb = np.asarray(model(jnp.asarray((base + bump)[None, ..., None], jnp.float32)))[0, ..., 0]
    return float(np.sqrt(np.mean((ya - yb)[X >= 0.5] ** 2)))
