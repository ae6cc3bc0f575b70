"""Helmholtz (MgNO data): Q1 elements against a manufactured solution (measured order 2), the
reference's KL wave speed against its covariance, and the generator's schema and defaults."""

import numpy as np
import pytest
import xarray as xr

from pde_data import grf
from pde_data import helmholtz as hz
from pde_data.__main__ import main
from pde_data.schema import validate


def _manufactured_error(s, omega=12.0):
    """u = sin(2x + .3) cos(3y - .2) + xy, c = 1 + .3 sin(pi x) cos(2 pi y); f and du/dn exact."""
    x = np.linspace(0, 1, s)
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = np.sin(2 * X + 0.3) * np.cos(3 * Y - 0.2) + X * Y
    c = 1.0 + 0.3 * np.sin(np.pi * X) * np.cos(2 * np.pi * Y)
    f = 13.0 * np.sin(2 * X + 0.3) * np.cos(3 * Y - 0.2) - (omega / c) ** 2 * u

    def ux(x, y):
        return 2 * np.cos(2 * x + 0.3) * np.cos(3 * y - 0.2) + y

    def uy(x, y):
        return -3 * np.sin(2 * x + 0.3) * np.sin(3 * y - 0.2) + x

    zero, one = np.zeros(s), np.ones(s)
    g = np.stack([-ux(zero, x), ux(one, x), -uy(x, zero), uy(x, one)])  # outward normals
    return np.abs(hz.solve(c, omega, f, g) - u).max()


def test_manufactured_solution_converges_at_second_order():
    errs = [_manufactured_error(s) for s in (17, 33, 65)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert errs[-1] < 5e-3 and 1.75 < orders[-1] < 2.3, (errs, orders)


def test_constant_speed_plane_wave_is_reproduced_at_the_reference_wavenumber_scale():
    # u = cos(k x) solves -u'' - k^2 u = 0 with du/dn = k sin(k) on x = 1 and 0 elsewhere.
    s, k = 201, 20.0
    g = np.zeros((4, s))
    g[1] = -k * np.sin(k)
    u = hz.solve(np.ones((s, s)), k, neumann=g)
    exact = np.cos(k * np.linspace(0, 1, s))[:, None] * np.ones((1, s))
    # second-order phase error k^3 h^2 / 24 over the unit length: 2e-2 at kh = 0.1
    assert np.abs(u - exact).max() < 0.05


def test_kl_modes_follow_the_reference_order():
    modes = hz.kl_modes()
    assert modes.shape == (100, 2) and not (modes == 0).all(axis=1).any()
    norms = (modes**2).sum(axis=1)
    assert np.all(np.diff(norms) >= 0)
    assert modes[:4].tolist() == [[0, 1], [1, 0], [1, 1], [0, 2]]
    # every mode below the cut-off is included
    assert np.sum((np.arange(20)[:, None] ** 2 + np.arange(20)[None] ** 2) < norms[-1]) - 1 < 100


def test_wave_speed_has_the_kl_covariance():
    # a = artanh(c - 20) is Gaussian with Var a(x, y) = sum_m lambda_m phi_m(x)^2 phi_m(y)^2.
    keys = grf.sample_keys(3, 0, 3000)
    pts = np.array([0.0, 0.3, 1.0])
    a = np.arctanh(hz.wave_speed_at(keys, pts) - hz.C_MEAN)
    phi, sqrt_lam = hz.kl_basis(pts)
    var = np.einsum("im,jm,m->ij", phi[..., 0] ** 2, phi[..., 1] ** 2, sqrt_lam**2)
    np.testing.assert_allclose(a.var(axis=0), var, rtol=0.1)
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=4 * np.sqrt(var.max() / 3000))
    c = hz.wave_speed(keys[:8], 11)
    assert c.shape == (8, 11, 11) and np.all((c > 19) & (c < 21))


def test_generate_schema_defaults_and_chunk_independence():
    ds = hz.generate(5, 3, 12, chunk_size=2)
    validate(ds)
    assert ds["c"].shape == ds["u"].shape == (3, 12, 12)
    assert ds.attrs["omega"] == 1000.0 and ds.attrs["solve_resolution"] == 12
    assert ds.attrs["input_vars"] == ["c"] and ds.attrs["output_vars"] == ["u"]
    again = hz.generate(5, 3, 12, chunk_size=3)
    np.testing.assert_array_equal(ds["u"].values, again["u"].values)
    # the stored c is the series at the nodes; u solves with c at the Gauss points
    keys = grf.sample_keys(5, 0, 3)
    np.testing.assert_allclose(ds["c"].values, hz.wave_speed(keys, 12), rtol=1e-6)
    nodal = hz.solve(hz.wave_speed(keys, 12))
    assert np.abs(nodal - ds["u"].values).max() < 0.5 * np.abs(nodal).max()


def test_cli_generates_helmholtz(tmp_path):
    out = tmp_path / "helm.nc"
    assert main(["generate", "helmholtz", "--n", "2", "--resolution", "12", "--out", str(out),
                 "--no-progress"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.attrs["pde"] == "helmholtz" and ds["u"].shape == (2, 12, 12)


@pytest.mark.parametrize("kwargs, match", [
    ({"c": -np.ones((5, 5))}, "positive"),
    ({"c": np.ones((5, 5)), "neumann": np.zeros((3, 5))}, "neumann"),
    ({"c": np.ones((5, 5)), "omega": float("nan")}, "omega"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hz.solve(**kwargs)
