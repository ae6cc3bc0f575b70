"""Darcy multiscale (MgNO / HANO data): one octave per scale, the coefficient's bounds and the
analytic mean of log a, and the generator's grid and solver sharing."""

import numpy as np
import xarray as xr

from pde_data import darcy, grf
from pde_data import darcy_multiscale as ms
from pde_data.__main__ import main
from pde_data.schema import validate


def test_each_scale_draws_its_frequency_in_its_own_octave():
    freq = ms.frequencies(grf.sample_keys(0, 0, 500))
    lo = 2.0 ** np.arange(6)
    assert freq.shape == (500, 6)
    assert np.all((freq >= lo) & (freq <= 2 * lo))
    # uniform within the octave: mean at 1.5 x its lower end, spread over the whole octave
    np.testing.assert_allclose(freq.mean(axis=0) / lo, 1.5, atol=0.05)
    assert np.all((freq.max(axis=0) - freq.min(axis=0)) / lo > 0.9)


def test_bounds_and_the_analytic_mean_of_log_a():
    # With even integer frequencies every factor runs over whole periods of the unit square, so
    # the mean of log a is 2K (1/2 pi) int log(1 + cos(t) / 2) dt = 2K log((1 + sqrt(3/4)) / 2),
    # and the trapezoid rule on the node grid is exact to rounding for these periodic integrands.
    freq = 2.0 ** np.arange(1, 7)[None]
    s = 513
    a = ms.coefficient_from_frequencies(freq, s)[0]
    w = np.ones(s)
    w[0] = w[-1] = 0.5
    mean = w @ np.log(a) @ w / (s - 1) ** 2
    np.testing.assert_allclose(mean, 12 * np.log((1 + np.sqrt(0.75)) / 2), rtol=1e-9)
    rand = ms.coefficient(grf.sample_keys(1, 0, 4), 65)
    assert np.all(rand >= 0.5**12) and np.all(rand <= 1.5**12)
    assert rand.max() / rand.min() > 100  # high contrast, as in the reference


def test_generate_solves_on_the_quadrupled_grid_with_the_shared_solver():
    ds = ms.generate(4, 2, 9)
    validate(ds)
    assert ds.attrs["pde"] == "darcy-multiscale" and ds.attrs["solve_resolution"] == 33
    keys = grf.sample_keys(4, 0, 2)
    a = ms.coefficient(keys, 33)
    np.testing.assert_array_equal(ds["a"].values, a[:, ::4, ::4].astype(np.float32))
    np.testing.assert_allclose(ds["u"].values, darcy.solve(a)[:, ::4, ::4], rtol=1e-5, atol=1e-8)
    assert ms.params(256)["solve_resolution"] == 1021


def test_cli_generates_darcy_multiscale(tmp_path):
    out = tmp_path / "multiscale.nc"
    assert main(["generate", "darcy-multiscale", "--n", "1", "--resolution", "9",
                 "--solve-resolution", "17", "--out", str(out), "--no-progress"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["pde"] == "darcy-multiscale" and ds.attrs["solve_resolution"] == 17
