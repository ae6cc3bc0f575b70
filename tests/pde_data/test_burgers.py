"""Burgers ETDRK4 against the Cole-Hopf exact solution; time order; conservation; generation."""

import numpy as np
import pytest

from pde_data import burgers
from pde_data.schema import validate

# phi(x, t) = 1 + sum_k e^{-nu (2 pi k)^2 t} (a_k cos 2 pi k x + b_k sin 2 pi k x) solves the heat
# equation, stays >= 0.2 > 0, and u = -2 nu phi_x / phi solves Burgers (Cole-Hopf).
MODES = ((1, 0.6, 0.0), (2, 0.0, 0.2))


def cole_hopf(x, t, nu):
    phi, dphi = np.ones_like(x), np.zeros_like(x)
    for k, a, b in MODES:
        w, d = 2 * np.pi * k, np.exp(-nu * (2 * np.pi * k) ** 2 * t)
        phi = phi + d * (a * np.cos(w * x) + b * np.sin(w * x))
        dphi = dphi + d * w * (-a * np.sin(w * x) + b * np.cos(w * x))
    return -2 * nu * dphi / phi


@pytest.mark.parametrize("nu", [0.1, 0.02])
def test_matches_cole_hopf_exact_solution(nu):
    s = 128
    x = np.arange(s) / s
    times = [0.05, 0.3, 1.0]
    u = burgers.solve(cole_hopf(x, 0.0, nu)[None], nu, times)
    assert u.shape == (1, s, 3)
    for i, t in enumerate(times):
        exact = cole_hopf(x, t, nu)
        assert np.abs(u[0, :, i] - exact).max() < 1e-7 * np.abs(exact).max() + 1e-12
    # the data are not trivial: u0 is O(1) with a steep front for nu = 0.1
    assert np.abs(cole_hopf(x, 0.0, 0.1)).max() > 1.5


def test_time_error_is_fourth_order():
    nu, s, t = 0.02, 128, 0.2
    x = np.arange(s) / s
    u0, exact = cole_hopf(x, 0.0, nu), cole_hopf(x, t, nu)
    errs = [np.abs(burgers.solve(u0, nu, t, dt=dt) - exact).max() for dt in (1e-2, 5e-3)]
    order = np.log2(errs[0] / errs[1])
    assert 3.5 < order < 4.6, (errs, order)


def test_grf_data_conserve_mass_lose_energy_and_are_converged_in_dt():
    u0 = burgers.initial_condition(0, 2, 1024).astype(np.float64) + np.array([[0.3], [-0.2]])
    u = burgers.solve(u0, 0.1, [0.5, 1.0])
    assert np.all(np.isfinite(u))
    np.testing.assert_allclose(u.mean(axis=1), np.repeat(u0.mean(axis=1)[:, None], 2, axis=1),
                               rtol=1e-12)
    energy = (u**2).mean(axis=1)
    assert np.all(energy[:, 1] < energy[:, 0]) and np.all(energy[:, 0] < (u0**2).mean(axis=1))
    fine = burgers.solve(u0, 0.1, 1.0, dt=2.5e-4)
    assert np.abs(u[..., 1] - fine).max() < 1e-8 * np.abs(fine).max()


def test_generate_schema_subsampling_and_reproducibility():
    ds = burgers.generate(3, 3, 64, times=[0.5, 1.0], solve_resolution=256)
    validate(ds)
    assert ds["u0"].shape == (3, 64) and ds["u"].shape == (3, 64, 2)
    assert ds["u"].dims == ("sample", "x", "t") and ds["u"].dtype == np.float32
    np.testing.assert_allclose(ds["t"].values, [0.5, 1.0])
    np.testing.assert_allclose(ds["x"].values, np.arange(64) / 64)
    assert ds.attrs["nu"] == 0.1 and ds.attrs["solve_resolution"] == 256
    # the stored u is the fine solution at every 4th point, from the stored u0's fine field
    fine_u0 = burgers.initial_condition(__import__("pde_data").grf.sample_keys(3, 0, 3), 3, 256)
    np.testing.assert_array_equal(ds["u0"].values, fine_u0[:, ::4].astype(np.float32))
    ref = burgers.solve(fine_u0, 0.1, 1.0)[:, ::4]
    np.testing.assert_allclose(ds["u"].values[..., 1], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(burgers.generate(3, 3, 64, times=[0.5, 1.0],
                                                   solve_resolution=256)["u"].values,
                                  ds["u"].values)


def test_fno_initial_condition_amplitude():
    # 625 (-Laplacian + 25)^-2 without the mean: pointwise variance sum_{k != 0} 625 / (4 pi^2 k^2 + 25)^2
    k = np.fft.fftfreq(256, 1 / 256)[1:]
    expected = np.sum(625.0 / (4 * np.pi**2 * k**2 + 25) ** 2)
    u0 = burgers.initial_condition(1, 4000, 256)
    assert u0.var() == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize(
    "u0, kwargs, match",
    [(np.zeros((2, 7)), {}, "even"), (np.zeros((2, 2, 8)), {}, "shape"),
     (np.full((1, 8), np.nan), {}, "NaN"), (np.zeros((1, 8)), {"nu": -1.0}, "nu"),
     (np.zeros((1, 8)), {"t": [1.0, 0.5]}, "increasing"), (np.zeros((1, 8)), {"dt": 0.0}, "dt")])
def test_bad_input_is_named(u0, kwargs, match):
    with pytest.raises(ValueError, match=match):
        burgers.solve(u0, **kwargs)
