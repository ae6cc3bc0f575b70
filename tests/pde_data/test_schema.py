"""The on-disk schema read back through plain xarray: ``input_vars`` / ``output_vars`` as lists,
CF-style attributes (``Conventions``, ``units``, ``long_name``) and the ``sample`` coordinate,
for every generator; files of the first schema still load."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr

from pde_data import burgers, darcy, grf
from pde_data import navier_stokes as ns
from pde_data.schema import CONVENTIONS, SchemaError, validate, var_names, with_cf_metadata
from pde_data.storage import load, save


def _generated():
    return {
        "darcy": darcy.generate(0, 3, 9),
        "burgers": burgers.generate(0, 2, 16, times=[0.05, 0.1], dt=1e-2),
        "navier_stokes": ns.generate(0, 2, 8, times=[0.01], solve_resolution=8, dt=1e-3),
    }


@pytest.fixture(scope="module")
def generated():
    return _generated()


def _check_cf(ds):
    assert ds.attrs["Conventions"] == CONVENTIONS
    np.testing.assert_array_equal(ds["sample"].values, np.arange(ds.sizes["sample"]))
    for name in [*ds.coords, *ds.data_vars]:
        assert ds[name].attrs.get("long_name"), name
        assert ds[name].attrs.get("units") == "1", name


@pytest.mark.parametrize("pde", ["darcy", "burgers", "navier_stokes"])
def test_generators_write_cf_metadata_sample_coordinate_and_name_lists(generated, pde):
    ds = generated[pde]
    _check_cf(ds)
    validate(ds)
    assert isinstance(ds.attrs["input_vars"], list) and isinstance(ds.attrs["output_vars"], list)


@pytest.mark.parametrize("pde", ["darcy", "burgers", "navier_stokes"])
def test_zarr_reads_back_the_same_through_plain_xarray(generated, pde, tmp_path):
    ds = generated[pde]
    save(ds, tmp_path / "d.zarr")
    with xr.open_zarr(tmp_path / "d.zarr", consolidated=False) as back:
        assert back.attrs["input_vars"] == ds.attrs["input_vars"]
        assert back.attrs["output_vars"] == ds.attrs["output_vars"]
        _check_cf(back)
        for name in ds.data_vars:
            assert back[name].attrs == ds[name].attrs


@pytest.mark.parametrize("pde", ["darcy", "burgers", "navier_stokes"])
def test_netcdf_reads_back_through_plain_xarray(generated, pde, tmp_path):
    ds = generated[pde]
    save(ds, tmp_path / "d.nc")
    with xr.open_dataset(tmp_path / "d.nc") as back:
        _check_cf(back)
        # netCDF readers hand a one-element attribute back as a scalar; var_names reads both
        assert var_names(back.attrs["input_vars"]) == ds.attrs["input_vars"]
        assert var_names(back.attrs["output_vars"]) == ds.attrs["output_vars"]
    with h5py.File(tmp_path / "d.nc") as f:  # stored as a list (a 1-D string array) all the same
        assert f.attrs["input_vars"].shape == (len(ds.attrs["input_vars"]),)
    out = load(tmp_path / "d.nc")
    assert out.attrs["input_vars"] == ds.attrs["input_vars"]
    _check_cf(out)


def test_several_names_round_trip_as_a_list_through_netcdf(tmp_path):
    ds = darcy.generate(0, 2, 5)
    ds["b"] = ds["a"] * 2
    ds.attrs["input_vars"] = ["a", "b"]
    save(ds, tmp_path / "d.nc")
    with xr.open_dataset(tmp_path / "d.nc") as back:
        assert back.attrs["input_vars"] == ["a", "b"]


def test_grf_dataarray_has_its_grid_and_cf_attributes():
    for boundary, grid in (("periodic", np.arange(8) / 8), ("neumann", np.linspace(0, 1, 8))):
        f = grf.to_dataarray(grf.sample(0, 3, 8, dim=2, boundary=boundary), boundary, alpha=2.0,
                             tau=3.0)
        assert f.dims == ("sample", "x", "y") and f.shape == (3, 8, 8)
        np.testing.assert_allclose(f["x"].values, grid)
        np.testing.assert_array_equal(f["sample"].values, np.arange(3))
        assert f.attrs["units"] == "1" and f.attrs["long_name"] and f.attrs["alpha"] == 2.0
        assert f.attrs["boundary"] == boundary
        for c in ("sample", "x", "y"):
            assert f[c].attrs["units"] == "1" and f[c].attrs["long_name"]
    assert grf.to_dataarray(grf.sample(0, 2, 6, dim=1)).dims == ("sample", "x")
    with pytest.raises(ValueError, match="fields must be"):
        grf.to_dataarray(np.zeros((2, 3, 4)))


def _first_schema(n=4, s=5):
    """A dataset as the first schema wrote it: names as one string, no sample coordinate, no CF."""
    grid = np.linspace(0.0, 1.0, s)
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"a": (("sample", "x", "y"), rng.uniform(3, 12, (n, s, s)).astype(np.float32)),
         "u": (("sample", "x", "y"), rng.normal(size=(n, s, s)).astype(np.float32))},
        coords={"x": grid, "y": grid},
        attrs={"pde": "darcy", "input_vars": "a", "output_vars": "u", "seed": 0},
    )


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_files_of_the_first_schema_still_load(tmp_path, suffix):
    old = _first_schema()
    path = tmp_path / f"old{suffix}"
    if suffix == ".nc":
        old.to_netcdf(path, engine="h5netcdf")
    else:
        old.to_zarr(path, consolidated=False)
    ds = load(path)
    assert ds.attrs["input_vars"] == ["a"] and ds.attrs["output_vars"] == ["u"]
    np.testing.assert_array_equal(ds["sample"].values, np.arange(4))
    np.testing.assert_array_equal(ds["u"].values, old["u"].values)
    save(ds, tmp_path / f"new{suffix}")  # re-saved in the current schema
    new = load(tmp_path / f"new{suffix}")
    assert new.attrs["Conventions"] == CONVENTIONS and new["x"].attrs["units"] == "1"
    np.testing.assert_array_equal(new["sample"].values, np.arange(4))


def test_with_cf_metadata_keeps_what_is_set_and_leaves_the_input_alone():
    ds = _first_schema()
    ds["a"].attrs["units"] = "m2 s-1"
    out = with_cf_metadata(ds, {"a": {"long_name": "coefficient", "units": "1"}})
    assert out["a"].attrs == {"long_name": "coefficient", "units": "m2 s-1"}
    assert "sample" not in ds.coords and "Conventions" not in ds.attrs
    assert ds["x"].attrs == {}


def test_validate_rejects_a_non_integer_sample_coordinate():
    ds = _first_schema().assign_coords(sample=np.linspace(0, 1, 4))
    with pytest.raises(SchemaError, match="'sample' must be 1-D integer"):
        validate(ds)
