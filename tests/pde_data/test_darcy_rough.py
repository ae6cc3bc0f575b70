"""Darcy rough (MgNO data): the thresholded field's interface density against Sheppard's formula
for the sign of a Gaussian pair, its value set, and the generator's grid and solver sharing."""

import numpy as np
import xarray as xr

from pde_data import darcy, grf
from pde_data import darcy_rough as rough
from pde_data.__main__ import main
from pde_data.schema import validate


def _expected_flip_fraction(s, tau):
    """Mean over x-neighbour pairs of P(sign differs) = arccos(rho) / pi (Sheppard), with rho
    from the cosine-series covariance sum_k lambda_k phi_k(p) phi_k(q) of the Neumann GRF."""
    lam = grf.eigenvalues(s, 2, 2.0, tau, boundary="neumann")  # (s, s), constant mode dropped
    phi = grf.basis(s, "neumann")
    var = np.einsum("ik,kl,jl->ij", phi**2, lam, phi**2)
    cov = np.einsum("ik,kl,jl->ij", phi[:-1] * phi[1:], lam, phi**2)  # (i, j) with (i+1, j)
    rho = cov / np.sqrt(var[:-1] * var[1:])
    return float(np.mean(np.arccos(np.clip(rho, -1, 1)) / np.pi))


def _flip_fraction(a):
    return float(np.mean(a[:, 1:, :] != a[:, :-1, :]))


def test_interfaces_follow_sheppards_formula_and_the_value_set():
    s, n = 48, 96
    keys = grf.sample_keys(7, 0, n)
    a = darcy.coefficient(keys, n, s, tau=rough.GRF_TAU, high=rough.A_HIGH, low=rough.A_LOW)
    assert set(np.unique(a)) == {4.0, 12.0}
    np.testing.assert_allclose(_flip_fraction(a), _expected_flip_fraction(s, 5.0), rtol=0.06)
    smooth = darcy.coefficient(keys, n, s)
    np.testing.assert_allclose(_flip_fraction(smooth), _expected_flip_fraction(s, 3.0), rtol=0.06)
    # the rough set has markedly more interfaces than the FNO smooth set
    assert _flip_fraction(a) > 1.25 * _flip_fraction(smooth)
    assert abs(np.mean(a == 12.0) - 0.5) < 0.05  # symmetric field: half the area on each side


def test_generate_solves_on_the_doubled_grid_with_the_shared_solver():
    ds = rough.generate(2, 2, 9)
    validate(ds)
    assert ds.attrs["pde"] == "darcy-rough" and ds.attrs["solve_resolution"] == 17
    assert ds.attrs["grf_tau"] == 5.0 and ds.attrs["a_low"] == 4.0 and ds.attrs["a_high"] == 12.0
    keys = grf.sample_keys(2, 0, 2)
    a = darcy.coefficient(keys, 2, 17, tau=5.0, high=12.0, low=4.0)
    np.testing.assert_array_equal(ds["a"].values, a[:, ::2, ::2].astype(np.float32))
    np.testing.assert_allclose(ds["u"].values, darcy.solve(a)[:, ::2, ::2], rtol=1e-5, atol=1e-8)
    other = rough.params(256, a_low=1.2, grf_tau=15.0)
    assert other["solve_resolution"] == 511 and other["a_low"] == 1.2


def test_cli_generates_darcy_rough(tmp_path):
    out = tmp_path / "rough.nc"
    assert main(["generate", "darcy-rough", "--n", "1", "--resolution", "9", "--out", str(out),
                 "--no-progress"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["pde"] == "darcy-rough" and ds["a"].shape == (1, 9, 9)
