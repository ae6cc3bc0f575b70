"""PDEBench one-array HDF5 files (written here with h5py in PDEBench's layout)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pde_data.storage import DataFormatError, load


def write(path, tensor, coords=None, attrs=None, **extra):
    with h5py.File(path, "w") as f:
        if tensor is not None:
            f.create_dataset("tensor", data=tensor)
        for k, v in (coords or {}).items():
            f.create_dataset(f"{k}-coordinate", data=v)
        for k, v in extra.items():
            f.create_dataset(k, data=v)
        f.attrs.update(attrs or {})
    return path


def test_1d_burgers(tmp_path):
    r = np.random.default_rng(0)
    n, t, x = 3, 5, 8
    tensor = r.normal(size=(n, t, x)).astype(np.float32)
    xc = (np.arange(x) + 0.5) / x  # PDEBench: cell centres
    tc = np.linspace(0.0, 2.0, t + 1)  # one more time than snapshots, as in the 1-D files
    p = write(tmp_path / "1D_Burgers_Sols_Nu0.001.hdf5", tensor, {"x": xc, "t": tc}, {"Nu": 0.001})
    ds = load(p)
    assert ds.attrs["pde"] == "burgers" and ds.attrs["Nu"] == 0.001
    assert ds.attrs["source_format"] == "pdebench-h5" and ds.attrs["grid"] == "file"
    assert ds.attrs["input_vars"] == ["u0"] and ds.attrs["output_vars"] == ["u"]
    assert ds["u"].dims == ("sample", "x", "t")
    np.testing.assert_array_equal(ds["u"].values, np.moveaxis(tensor, 1, -1))
    np.testing.assert_array_equal(ds["u0"].values, tensor[:, 0])
    np.testing.assert_array_equal(ds["x"].values, xc)
    np.testing.assert_array_equal(ds["t"].values, tc[:t])


def test_2d_darcy(tmp_path):
    r = np.random.default_rng(1)
    n, sx, sy = 2, 6, 7
    nu = r.uniform(0.1, 1.0, (n, sx, sy)).astype(np.float32)
    u = r.normal(size=(n, 1, sx, sy)).astype(np.float32)
    xc, yc = np.linspace(0, 1, sx), np.linspace(0, 1, sy)
    p = write(
        tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5",
        u,
        {"x": xc, "y": yc, "t": np.array([0.0])},
        {"beta": 1.0},
        nu=nu,
    )
    ds = load(p)
    assert ds.attrs["pde"] == "darcy" and ds.attrs["beta"] == 1.0
    assert ds["a"].dims == ("sample", "x", "y") and "t" not in ds.dims
    np.testing.assert_array_equal(ds["a"].values, nu)
    np.testing.assert_array_equal(ds["u"].values, u[:, 0])
    np.testing.assert_array_equal(ds["y"].values, yc)


def test_2d_time_series_without_coordinates(tmp_path):
    r = np.random.default_rng(2)
    tensor = r.normal(size=(2, 3, 4, 5))
    ds = load(write(tmp_path / "2D_advection_test.h5", tensor))
    assert ds.attrs["pde"] == "advection" and ds.attrs["grid"] == "periodic"
    assert ds["u"].dims == ("sample", "x", "y", "t") and ds["u"].shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(ds["u"].values, np.moveaxis(tensor, 1, -1))
    np.testing.assert_allclose(ds["x"].values, np.arange(4) / 4)  # periodic grid by default
    np.testing.assert_array_equal(ds["t"].values, np.arange(3))  # step index when no times stored


@pytest.mark.parametrize(
    "name, pde", [("mystery.h5", "unknown"), ("2D_diff-react_NA_NA.h5", "reaction_diffusion")]
)
def test_unknown_layout_uses_node_grid(tmp_path, name, pde):
    ds = load(write(tmp_path / name, np.ones((2, 3, 5))))
    assert ds.attrs["pde"] == pde and ds.attrs["grid"] == "node"
    np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 5))


def test_missing_tensor(tmp_path):
    p = write(
        tmp_path / "1D_Advection_Sols_beta0.1.hdf5",
        None,
        {"x": np.arange(4.0)},
        density=np.ones((2, 3, 4)),
    )
    with pytest.raises(DataFormatError, match=r"beta0.1.hdf5: missing variable 'tensor'"):
        load(p)


def test_per_sample_layout_refused(tmp_path):
    with h5py.File(tmp_path / "2D_rdb_NA_NA.h5", "w") as f:
        f.create_dataset("0000/data", data=np.ones((3, 4, 4, 1)))
    with pytest.raises(DataFormatError, match="per-sample layout"):
        load(tmp_path / "2D_rdb_NA_NA.h5")


def test_bad_shapes(tmp_path):
    with pytest.raises(DataFormatError, match="'x-coordinate' has 3 values"):
        load(write(tmp_path / "a.h5", np.ones((2, 3, 5)), {"x": np.arange(3.0)}))
    with pytest.raises(DataFormatError, match=r"'tensor' has shape \(2, 3\)"):
        load(write(tmp_path / "b.h5", np.ones((2, 3))))
    with pytest.raises(DataFormatError, match="Darcy 'nu'"):
        load(write(tmp_path / "c.h5", np.ones((2, 1, 4, 4)), nu=np.ones((2, 4, 5))))


def test_truncated_and_random(tmp_path):
    p = write(tmp_path / "cut.h5", np.random.default_rng(3).normal(size=(4, 5, 64)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cut.h5: corrupt or truncated pdebench file"):
        load(p)
    (tmp_path / "junk.hdf5").write_bytes(np.random.default_rng(0).bytes(1024))
    with pytest.raises(DataFormatError, match="junk.hdf5: not an HDF5 file"):
        load(tmp_path / "junk.hdf5")


def test_a_dataset_the_file_does_not_hold_is_refused_not_allocated(tmp_path):
    """A 1.4 KB HDF5 file may declare a 1.3 GB dataset whose chunks were never written (h5py
    would return 1.3 GB of fill values): the reader refuses what the file does not store."""
    path = tmp_path / "burgers_empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", shape=(2000, 10, 128, 128), dtype="f4",
                         chunks=(1, 1, 128, 128))
    assert path.stat().st_size < 10_000
    with pytest.raises(DataFormatError, match=r"burgers_empty.h5: dataset '/tensor' declares "
                                              r"\d+ bytes .* stores 0 bytes"):
        load(path)
