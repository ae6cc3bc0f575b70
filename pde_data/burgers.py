"""Viscous Burgers u_t + u u_x = nu u_xx on the periodic unit interval (FNO benchmark data).

Pseudo-spectral in x (``s`` points, spacing 1/s, 2/3-rule dealiasing of the nonlinear term
-(u^2/2)_x) and the exponential time differencing Runge-Kutta scheme ETDRK4 of Cox & Matthews,
its phi-function coefficients evaluated by contour integrals (Kassam & Trefethen 2005, eq. 2.5
with M = 32 points on the unit circle around h*L). The stiff diffusion is integrated exactly, so
the step is limited by the advection only. JAX, float64 inside, jit-compiled and vmapped over the
batch. Initial data of the FNO set: u0 ~ N(0, 625 (-Laplacian + 25 I)^(-2)) (``grf`` with
alpha=2, tau=5, sigma=25), nu = 0.1, T = 1.
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

PDE = "burgers"
VERSION = "1"
#: CF-style metadata of the stored variables (non-dimensional, hence units "1").
VARIABLES = {
    "u0": {"long_name": "initial velocity u(x, t=0)", "units": "1"},
    "u": {"long_name": "velocity u(x, t) of u_t + u u_x = nu u_xx", "units": "1"},
}
GRF_ALPHA, GRF_TAU, GRF_SIGMA = 2.0, 5.0, 25.0
DEFAULT_DT = 1e-3
CONTOUR_POINTS = 32


def etdrk4_coefficients(lin: np.ndarray, h: float, m: int = CONTOUR_POINTS) -> dict:
    """E, E2, Q, f1, f2, f3 of ETDRK4 for the diagonal linear operator ``lin`` and step ``h``.

    The phi-functions are averaged over m points of the circle |z - hL| = 1 (Kassam-Trefethen),
    which avoids the cancellation of the direct formulas for small |hL|.
    """
    hl = h * np.asarray(lin, dtype=np.float64)
    r = np.exp(1j * np.pi * (np.arange(1, m + 1) - 0.5) / m)
    lr = hl[:, None] + r[None, :]
    e = np.exp(lr)
    return {
        "E": np.exp(hl), "E2": np.exp(hl / 2),
        "Q": h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1)),
        "f1": h * np.real(np.mean((-4 - lr + e * (4 - 3 * lr + lr**2)) / lr**3, axis=1)),
        "f2": h * np.real(np.mean((2 + lr + e * (lr - 2)) / lr**3, axis=1)),
        "f3": h * np.real(np.mean((-4 - 3 * lr - lr**2 + e * (4 - lr)) / lr**3, axis=1)),
    }


def _nonlinear(v, g, mask, s):
    """Fourier transform of -(u^2/2)_x, 2/3-dealiased; v: rfft of u."""
    u = jnp.fft.irfft(v, n=s)
    return g * mask * jnp.fft.rfft(u * u)


def _advance_one(v, steps, c, g, mask, s):
    def step(_, v):
        nv = _nonlinear(v, g, mask, s)
        a = c["E2"] * v + c["Q"] * nv
        na = _nonlinear(a, g, mask, s)
        b = c["E2"] * v + c["Q"] * na
        nb = _nonlinear(b, g, mask, s)
        cc = c["E2"] * a + c["Q"] * (2 * nb - nv)
        nc = _nonlinear(cc, g, mask, s)
        return c["E"] * v + nv * c["f1"] + 2 * (na + nb) * c["f2"] + nc * c["f3"]

    return jax.lax.fori_loop(0, steps, step, v)


@jax.jit
def _advance(v, steps, c, g, mask):
    s = 2 * (v.shape[-1] - 1)
    return jax.vmap(_advance_one, in_axes=(0, None, None, None, None, None))(
        v, steps, c, g, mask, s)


def solve(u0: Real[np.ndarray, "*batch s"], nu: float = 0.1,
          t: float | Sequence[float] | Real[np.ndarray, " nt"] = 1.0, dt: float = DEFAULT_DT
          ) -> Float64[np.ndarray, "*batch s"] | Float64[np.ndarray, "*batch s nt"]:
    """u(., t) of Burgers from u0 (batch, s) on the periodic grid x_j = j/s, float64 numpy.

    ``t`` a scalar gives (batch, s); a sequence of increasing times gives (batch, s, len(t)).
    The step is the largest h <= ``dt`` that divides each interval between requested times.
    """
    u0, single = batched_field(u0, "u0", 1, even=True)
    times, scalar = increasing_times(t)
    if not (math.isfinite(nu) and nu > 0):
        raise ValueError(f"nu must be finite and > 0, got {nu!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt!r}")
    s = u0.shape[1]
    k = np.fft.rfftfreq(s, 1.0 / s)
    lin = -nu * (2 * np.pi * k) ** 2
    out = np.empty(u0.shape + (times.size,))
    with jax.enable_x64(True):
        g = jnp.asarray(-0.5j * 2 * np.pi * k)
        mask = jnp.asarray((k < s / 3).astype(np.float64))
        v = jnp.fft.rfft(jnp.asarray(u0))
        now = 0.0
        for i, ti in enumerate(times):
            span = ti - now
            if span > 0:
                steps = step_count(span, dt)
                c = {n: jnp.asarray(x) for n, x in etdrk4_coefficients(lin, span / steps).items()}
                v = _advance(v, steps, c, g, mask)
            out[..., i] = np.asarray(jnp.fft.irfft(v, n=s))
            now = ti
    finite_solution(out, "burgers", f"max |u0| = {np.abs(u0).max():.3g}, nu = {nu:.3g}: lower dt "
                    f"(now {dt:.3g}) or the amplitude of u0")
    if scalar:
        out = out[..., 0]
    return out[0] if single else out


def initial_condition(key, n: int, resolution: int) -> Float[np.ndarray, "{n} {resolution}"]:
    """FNO initial data u0 ~ N(0, 625 (-Laplacian + 25 I)^(-2)) on the periodic grid, (n, s)."""
    from pde_data import grf

    return np.asarray(grf.sample(key, n, resolution, dim=1, alpha=GRF_ALPHA, tau=GRF_TAU,
                                 sigma=GRF_SIGMA, boundary="periodic"))


def _times(times) -> list[float]:
    t, _ = increasing_times(1.0 if times is None else times)
    if t[0] <= 0:
        raise ValueError(f"snapshot times must be > 0 (u0 is stored separately), got {t.tolist()}")
    return [float(x) for x in t]


def params(resolution: int, nu: float = 0.1, times=None, solve_resolution: int | None = None,
           dt: float = DEFAULT_DT) -> dict:
    """Every parameter of a generated dataset (stored as attrs), validated and with defaults."""
    resolution = int(resolution)
    solve_resolution = resolution if solve_resolution is None else int(solve_resolution)
    if resolution < 4 or resolution % 2 or solve_resolution % resolution:
        raise ValueError(f"resolution {resolution} must be even and divide solve_resolution "
                         f"{solve_resolution} (e.g. 8192 -> 1024)")
    if not (math.isfinite(nu) and nu > 0):
        raise ValueError(f"nu must be finite and > 0, got {nu!r}")
    return {"resolution": resolution, "solve_resolution": solve_resolution, "nu": float(nu),
            "times": _times(times), "dt": float(dt), "grf_alpha": GRF_ALPHA, "grf_tau": GRF_TAU,
            "grf_sigma": GRF_SIGMA, "scheme": "pseudo-spectral ETDRK4, 2/3 dealiasing"}


def generate_arrays(keys, resolution: int, solve_resolution: int, nu: float, times, dt: float,
                    **_) -> dict:
    """float32 ``u0`` (n, s) and ``u`` (n, s, len(times)) for per-sample keys: ``generate``'s worker."""
    stride = solve_resolution // resolution
    u0 = initial_condition(keys, len(keys), solve_resolution)
    u = solve(u0, nu, list(times), dt=dt)
    return {"u0": u0[:, ::stride].astype(np.float32), "u": u[:, ::stride].astype(np.float32)}


def memory_bytes(chunk: int, resolution: int, solve_resolution: int, times, **_) -> int:
    """Estimated peak working memory of ``generate_arrays`` for ``chunk`` samples (the memory
    bound of ``generate``): the float64 snapshots and ~30 complex spectral work arrays per
    sample, plus the float32 outputs."""
    nt = len(times) + 1
    return int(chunk * (8 * solve_resolution * nt + 480 * solve_resolution + 4 * resolution * nt))


def to_dataset(arrays: dict, attrs: dict):
    """xarray Dataset (vars ``u0`` (sample, x), ``u`` (sample, x, t)) in the docs/design.md
    schema."""
    import xarray as xr

    n, s = arrays["u0"].shape
    ds = xr.Dataset(
        {"u0": (("sample", "x"), arrays["u0"]), "u": (("sample", "x", "t"), arrays["u"])},
        coords={"sample": np.arange(n), "x": np.arange(s) / s,
                "t": np.asarray(attrs["times"], dtype=np.float64)},
        attrs={"pde": PDE, "generator_version": VERSION, "input_vars": ["u0"],
               "output_vars": ["u"], **attrs})
    return with_cf_metadata(ds, VARIABLES)


def generate(key_or_seed, n: int, resolution: int, nu: float = 0.1, times=None,
             solve_resolution: int | None = None, dt: float = DEFAULT_DT, chunk_size: int = 32,
             progress: bool = False):
    """Dataset of ``n`` Burgers samples at ``resolution`` (snapshots at ``times``, default T=1)."""
    from pde_data import chunked

    return chunked.generate(sys.modules[__name__], key_or_seed, n, resolution=resolution, nu=nu,
                            times=times, solve_resolution=solve_resolution, dt=dt,
                            chunk_size=chunk_size, progress=progress)
