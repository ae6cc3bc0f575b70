"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit torus (FNO data).

    w_t + u . grad w = nu Laplacian w + f,   u = (psi_y, -psi_x),   -Laplacian psi = w,

with the FNO forcing f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)). Pseudo-spectral on ``s``
points per axis (spacing 1/s), 2/3-rule dealiasing of the advection term, Crank-Nicolson for the
diffusion and Heun's predictor-corrector for advection and forcing (second order; the FNO
generator used forward Euler with the same Crank-Nicolson step):

    w* = [(1 - h nu K/2) w + h (f - N(w))] / (1 + h nu K/2)
    w' = [(1 - h nu K/2) w + h (f - (N(w) + N(w*))/2)] / (1 + h nu K/2),   K = 4 pi^2 |k|^2.

JAX, float64 inside, jit-compiled and vmapped over the batch. Initial vorticity of the FNO data:
GRF alpha=2.5, tau=7, sigma = tau^(alpha - 1) (``grf`` default), mean zero; simulated at 256
and stored at 64 by striding, snapshots every unit of time, dt = 1e-4.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Float64, Real

from .checks import batched_field, finite_solution, increasing_times, step_count
from .schema import with_cf_metadata

PDE = "navier_stokes"
VERSION = "1"
#: CF-style metadata of the stored variables (non-dimensional, hence units "1").
VARIABLES = {
    "w0": {"long_name": "initial vorticity w(x, y, t=0)", "units": "1"},
    "w": {"long_name": "vorticity w(x, y, t) of incompressible Navier-Stokes", "units": "1"},
}
GRF_ALPHA, GRF_TAU = 2.5, 7.0
DEFAULT_DT = 1e-4
FORCING_AMPLITUDE = 0.1
#: FNO horizons per viscosity (their files ns_V1e-3_T50, ns_V1e-4_T30, ns_V1e-5_T20).
DEFAULT_T = {1e-3: 50, 1e-4: 30, 1e-5: 20}


def forcing(resolution: int, amplitude: float = FORCING_AMPLITUDE
            ) -> Float64[np.ndarray, "{resolution} {resolution}"]:
    """amplitude * (sin 2 pi (x + y) + cos 2 pi (x + y)) on the periodic grid, (s, s)."""
    x = np.arange(resolution) / resolution
    z = 2 * np.pi * (x[:, None] + x[None, :])
    return amplitude * (np.sin(z) + np.cos(z))


def _operators(s: int) -> dict:
    kx = np.fft.fftfreq(s, 1.0 / s)[:, None] * np.ones((1, s // 2 + 1))
    ky = np.fft.rfftfreq(s, 1.0 / s)[None, :] * np.ones((s, 1))
    lap = 4 * np.pi**2 * (kx**2 + ky**2)
    inv_lap = np.where(lap > 0, 1.0 / np.where(lap > 0, lap, 1.0), 0.0)
    kmax = s // 2
    mask = (np.abs(kx) <= 2.0 / 3.0 * kmax) & (np.abs(ky) <= 2.0 / 3.0 * kmax)
    return {"dx": 2j * np.pi * kx, "dy": 2j * np.pi * ky, "lap": lap, "inv_lap": inv_lap,
            "mask": mask.astype(np.float64)}


def _advection(wh, op, s):
    """Fourier transform of u . grad w (2/3-dealiased); wh: rfft2 of w."""
    psi = wh * op["inv_lap"]
    ux = jnp.fft.irfft2(op["dy"] * psi, s=(s, s))
    uy = jnp.fft.irfft2(-op["dx"] * psi, s=(s, s))
    wx = jnp.fft.irfft2(op["dx"] * wh, s=(s, s))
    wy = jnp.fft.irfft2(op["dy"] * wh, s=(s, s))
    return op["mask"] * jnp.fft.rfft2(ux * wx + uy * wy)


def _advance_one(wh, fh, steps, h, nu, op, s):
    half = 0.5 * h * nu * op["lap"]
    explicit, implicit = 1.0 - half, 1.0 / (1.0 + half)

    def step(_, wh):
        n0 = _advection(wh, op, s)
        pred = (explicit * wh + h * (fh - n0)) * implicit
        n1 = _advection(pred, op, s)
        return (explicit * wh + h * (fh - 0.5 * (n0 + n1))) * implicit

    return jax.lax.fori_loop(0, steps, step, wh)


@jax.jit
def _advance(wh, fh, steps, h, nu, op):
    s = wh.shape[-2]
    return jax.vmap(_advance_one, in_axes=(0, None, None, None, None, None, None))(
        wh, fh, steps, h, nu, op, s)


def solve(w0: Real[np.ndarray, "*batch s s"], nu: float = 1e-3,
          t: float | Sequence[float] | Real[np.ndarray, " nt"] = 1.0, dt: float = DEFAULT_DT,
          forcing_amplitude: float = FORCING_AMPLITUDE
          ) -> Float64[np.ndarray, "*batch s s"] | Float64[np.ndarray, "*batch s s nt"]:
    """Vorticity w(., t) from w0 (batch, s, s) on the periodic grid x_j = j/s, float64 numpy.

    ``t`` a scalar gives (batch, s, s); a sequence of increasing times (batch, s, s, len(t)).
    The step is the largest h <= ``dt`` dividing each interval between requested times.
    ``forcing_amplitude=0`` switches the forcing off (``nu=0`` gives the Euler equations).
    """
    w0, single = batched_field(w0, "w0", 2, even=True)
    times, scalar = increasing_times(t)
    if not (math.isfinite(nu) and nu >= 0):
        raise ValueError(f"nu must be finite and >= 0, got {nu!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt!r}")
    if not math.isfinite(forcing_amplitude):
        raise ValueError(f"forcing_amplitude must be finite, got {forcing_amplitude!r}")
    s = w0.shape[1]
    out = np.empty(w0.shape + (times.size,))
    with jax.enable_x64(True):
        op = {k: jnp.asarray(v) for k, v in _operators(s).items()}
        fh = jnp.fft.rfft2(jnp.asarray(forcing(s, forcing_amplitude)))
        wh = jnp.fft.rfft2(jnp.asarray(w0))
        now = 0.0
        for i, ti in enumerate(times):
            span = ti - now
            if span > 0:
                steps = step_count(span, dt)
                wh = _advance(wh, fh, steps, span / steps, float(nu), op)
            out[..., i] = np.asarray(jnp.fft.irfft2(wh, s=(s, s)))
            now = ti
    finite_solution(out, "navier_stokes", f"max |w0| = {np.abs(w0).max():.3g}, nu = {nu:.3g}: lower dt "
                    f"(now {dt:.3g}) or the amplitude of w0")
    if scalar:
        out = out[..., 0]
    return out[0] if single else out


def initial_condition(key, n: int, resolution: int
                      ) -> Float[np.ndarray, "{n} {resolution} {resolution}"]:
    """FNO initial vorticity: GRF alpha=2.5, tau=7, sigma=7^1.5, mean zero, periodic; (n, s, s)."""
    from pde_data import grf

    return np.asarray(grf.sample(key, n, resolution, dim=2, alpha=GRF_ALPHA, tau=GRF_TAU,
                                 boundary="periodic"))


def params(resolution: int = 64, nu: float = 1e-3, times=None, solve_resolution: int | None = None,
           dt: float = DEFAULT_DT, forcing_amplitude: float = FORCING_AMPLITUDE) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults.

    Defaults follow the FNO data: solve at 4 x resolution (256 for 64), snapshots at t = 1, 2, ...,
    T with T = 50 / 30 / 20 for nu = 1e-3 / 1e-4 / 1e-5 (10 otherwise).
    """
    resolution = int(resolution)
    solve_resolution = 4 * resolution if solve_resolution is None else int(solve_resolution)
    if resolution < 4 or resolution % 2 or solve_resolution % resolution:
        raise ValueError(f"resolution {resolution} must be even and divide solve_resolution "
                         f"{solve_resolution} (e.g. 256 -> 64)")
    if not (math.isfinite(nu) and nu > 0):
        raise ValueError(f"nu must be finite and > 0, got {nu!r}")
    if times is None:
        horizon = next((v for k, v in DEFAULT_T.items() if math.isclose(k, nu)), 10)
        times = np.arange(1, horizon + 1)
    t, _ = increasing_times(times)
    if t[0] <= 0:
        raise ValueError(f"snapshot times must be > 0 (w0 is stored separately), got {t.tolist()}")
    return {"resolution": resolution, "solve_resolution": solve_resolution, "nu": float(nu),
            "times": [float(x) for x in t], "dt": float(dt),
            "forcing_amplitude": float(forcing_amplitude), "grf_alpha": GRF_ALPHA,
            "grf_tau": GRF_TAU, "grf_sigma": GRF_TAU ** (GRF_ALPHA - 1.0),
            "scheme": "pseudo-spectral, Crank-Nicolson diffusion + Heun advection, 2/3 dealiasing"}


def generate_arrays(keys, resolution: int, solve_resolution: int, nu: float, times, dt: float,
                    forcing_amplitude: float, **_) -> dict:
    """float32 ``w0`` (n, s, s), ``w`` (n, s, s, len(times)) for per-sample keys."""
    stride = solve_resolution // resolution
    w0 = initial_condition(keys, len(keys), solve_resolution)
    w = solve(w0, nu, list(times), dt=dt, forcing_amplitude=forcing_amplitude)
    return {"w0": w0[:, ::stride, ::stride].astype(np.float32),
            "w": w[:, ::stride, ::stride].astype(np.float32)}


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, times, **_) -> int:
    """Estimated peak working memory of ``generate_arrays`` for ``chunk`` samples (the memory
    bound of ``generate``): the float64 snapshots and ~30 complex spectral work arrays per
    sample, plus the float32 outputs."""
    nt = len(times) + 1
    nodes = solve_resolution ** 2
    return int(chunk * (8 * nodes * nt + 480 * nodes + 4 * resolution ** 2 * nt))


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset (``w0`` (sample, x, y), ``w`` (sample, x, y, t)) in the docs/design.md
    schema."""
    import xarray as xr

    n, s = arrays["w0"].shape[0], arrays["w0"].shape[-1]
    x = np.arange(s) / s
    ds = xr.Dataset(
        {"w0": (("sample", "x", "y"), arrays["w0"]), "w": (("sample", "x", "y", "t"), arrays["w"])},
        coords={"sample": np.arange(n), "x": x, "y": x,
                "t": np.asarray(attrs["times"], dtype=np.float64)},
        attrs={"pde": PDE, "generator_version": VERSION, "input_vars": ["w0"],
               "output_vars": ["w"], **attrs})
    return with_cf_metadata(ds, VARIABLES)


def generate(key_or_seed, n: int, resolution: int = 64, nu: float = 1e-3, times=None,
             solve_resolution: int | None = None, dt: float = DEFAULT_DT, chunk_size: int = 32,
             progress: bool = False):
    """Dataset of ``n`` Navier-Stokes samples at ``resolution`` (solved at 4x unless given)."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution, nu=nu,
                            times=times, solve_resolution=solve_resolution, dt=dt,
                            chunk_size=chunk_size, progress=progress)
