"""Navier-Stokes at nu = 1e-5 (the FNO / MgNO data): the recipe's defaults and the enstrophy
balance dZ/dt = -2 nu P of the nearly inviscid solver."""

import numpy as np
import xarray as xr

from pde_data import grf
from pde_data import navier_stokes as ns
from pde_data.__main__ import main


def test_defaults_are_the_fno_recipe_at_nu_1e5():
    p = ns.params(64, nu=1e-5)
    assert p["times"] == [float(t) for t in range(1, 21)]  # T = 20, a snapshot per unit time
    assert p["solve_resolution"] == 256 and p["dt"] == 1e-4
    assert p["forcing_amplitude"] == 0.1 and (p["grf_alpha"], p["grf_tau"]) == (2.5, 7.0)
    x = np.arange(8) / 8
    z = 2 * np.pi * (x[:, None] + x[None, :])
    np.testing.assert_allclose(ns.forcing(8), 0.1 * (np.sin(z) + np.cos(z)))


def test_enstrophy_decays_at_twice_nu_times_palinstrophy():
    s, nu = 64, 1e-5
    k = np.fft.fftfreq(s, 1 / s)
    band = (np.abs(k)[:, None] <= 21) & (np.abs(k)[None, :] <= 21)  # inside the 2/3 rule
    w0 = np.asarray(grf.sample(2, 1, s, alpha=2.5, tau=7.0, dtype=np.float64))
    w0 = np.real(np.fft.ifft2(np.fft.fft2(w0) * band))
    times = np.linspace(0.0, 0.5, 11)
    w = ns.solve(w0, nu, times[1:], dt=1e-3, forcing_amplitude=0.0)[0]
    w = np.concatenate([w0[0][..., None], w], axis=-1)
    wh = np.fft.fft2(w, axes=(0, 1))
    lap = 4 * np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2)
    z = (np.abs(wh) ** 2).sum(axis=(0, 1))
    p = (lap[..., None] * np.abs(wh) ** 2).sum(axis=(0, 1))
    decay = z[0] - z[-1]
    predicted = 2 * nu * np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(times))
    assert decay > 1e-3 * z[0]  # measurable at nu = 1e-5 ...
    np.testing.assert_allclose(decay, predicted, rtol=0.02)  # ... and only viscous


def test_cli_navier_stokes_at_nu_1e5(tmp_path):
    out = tmp_path / "ns.nc"
    assert main(["generate", "navier_stokes", "--nu", "1e-5", "--n", "1", "--resolution", "8",
                 "--times", "0.01", "--dt", "1e-3", "--out", str(out), "--no-progress"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["nu"] == 1e-5 and ds.attrs["solve_resolution"] == 32
        assert ds["w"].shape == (1, 8, 8, 1)
