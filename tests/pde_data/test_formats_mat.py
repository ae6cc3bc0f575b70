"""FNO-style .mat files, v5 (scipy.io.savemat) and v7.3 (HDF5 in MATLAB's layout)."""

from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest
import scipy.io

from pde_data.storage import DataFormatError, load


def savemat73(path, arrays: dict):
    """Write ``arrays`` as MATLAB v7.3 does: HDF5 after a 512-byte user block holding the
    MAT header, each matrix stored column-major (HDF5 shape = MATLAB shape reversed) with a
    ``MATLAB_class`` attribute."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, a in arrays.items():
            a = np.asarray(a)
            a = a.reshape(1, 1) if a.ndim == 0 else a.reshape(1, -1) if a.ndim == 1 else a
            d = f.create_dataset(name, data=np.ascontiguousarray(a.T))
            cls = {np.dtype("float64"): b"double", np.dtype("float32"): b"single"}[a.dtype]
            d.attrs["MATLAB_class"] = np.bytes_(cls)
    text = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, "
        b"Created on: Fri Nov 27 18:00:00 2026 HDF5 schema 1.00 ."
    )
    header = text.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0200) + b"IM"
    with open(path, "r+b") as f:
        f.write(header)
    return path


def rng_arrays(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture(params=["v5", "v7.3"])
def writer(request):
    if request.param == "v5":
        return "v5", lambda p, d: scipy.io.savemat(p, d) or p
    return "v7.3", savemat73


def test_v73_writer_is_recognised_by_scipy(tmp_path):
    p = savemat73(tmp_path / "x.mat", {"a": np.zeros((2, 3))})
    assert scipy.io.matlab.matfile_version(p) == (2, 0)  # scipy's own detection of v7.3


def test_darcy(tmp_path, writer):
    version, save = writer
    r = rng_arrays(1)
    coeff = r.uniform(3, 12, (3, 5, 6))  # non-square: catches a wrong axis order
    sol = r.normal(size=(3, 5, 6))
    p = save(tmp_path / "piececonst_r5_N3.mat", {"coeff": coeff, "sol": sol, "Kcoeff": coeff * 2})
    ds = load(p)
    assert ds.attrs["source_format"] == f"mat-{version}" and ds.attrs["pde"] == "darcy"
    assert ds.attrs["input_vars"] == ["a"] and ds.attrs["output_vars"] == ["u"]
    assert ds["a"].dims == ("sample", "x", "y") and ds["a"].dtype == np.float64
    np.testing.assert_array_equal(ds["a"].values, coeff)
    np.testing.assert_array_equal(ds["u"].values, sol)
    np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 5))
    np.testing.assert_allclose(ds["y"].values, np.linspace(0, 1, 6))
    assert ds.attrs["skipped_vars"] == ["Kcoeff"]


def test_burgers(tmp_path, writer):
    _, save = writer
    r = rng_arrays(2)
    a, u = r.normal(size=(4, 16)), r.normal(size=(4, 16))
    ds = load(save(tmp_path / "burgers_data_R10.mat", {"a": a, "u": u}))
    assert ds.attrs["pde"] == "burgers" and ds.attrs["input_vars"] == ["u0"]
    np.testing.assert_array_equal(ds["u0"].values, a)
    np.testing.assert_array_equal(ds["u"].values, u)
    np.testing.assert_allclose(ds["x"].values, np.arange(16) / 16)  # periodic grid


def test_navier_stokes(tmp_path, writer):
    _, save = writer
    r = rng_arrays(3)
    a = r.normal(size=(2, 4, 5)).astype(np.float32)
    u = r.normal(size=(2, 4, 5, 3)).astype(np.float32)
    t = np.array([[0.5, 1.0, 1.5]])
    ds = load(save(tmp_path / "ns_V1e-3_N2_T3.mat", {"a": a, "u": u, "t": t}))
    assert ds.attrs["pde"] == "navier_stokes" and ds.attrs["nu"] == 1e-3
    assert ds["w"].dims == ("sample", "x", "y", "t") and ds["w"].dtype == np.float32
    np.testing.assert_array_equal(ds["w0"].values, a)
    np.testing.assert_array_equal(ds["w"].values, u)
    np.testing.assert_array_equal(ds["t"].values, t.ravel())
    np.testing.assert_allclose(ds["y"].values, np.arange(5) / 5)


def test_generic_names_kept(tmp_path, writer):
    _, save = writer
    r = rng_arrays(4)
    k, p_, f = r.normal(size=(3, 6)), r.normal(size=(3, 6)), r.normal(size=(3, 6))
    ds = load(
        save(tmp_path / "poisson_like.mat", {"k": k, "p": p_, "q": f, "scale": np.array([[2.5]])})
    )
    assert ds.attrs["input_vars"] == ["k"] and sorted(ds.attrs["output_vars"]) == ["p", "q"]
    assert ds.attrs["pde"] == "poisson" and ds.attrs["scale"] == 2.5
    np.testing.assert_array_equal(ds["p"].values, p_)


def test_missing_variable(tmp_path, writer):
    _, save = writer
    p = save(tmp_path / "darcy_half.mat", {"coeff": np.ones((2, 3, 3))})
    with pytest.raises(
        DataFormatError, match=r"darcy_half.mat: FNO Darcy file without variable 'sol'"
    ):
        load(p)


def test_single_field_is_an_error(tmp_path):
    scipy.io.savemat(tmp_path / "one.mat", {"a": np.ones((2, 3, 3))})
    with pytest.raises(DataFormatError, match="expected an input and an output"):
        load(tmp_path / "one.mat")


def test_truncated(tmp_path, writer):
    _, save = writer
    r = rng_arrays(5)
    p = save(
        tmp_path / "cut.mat", {"coeff": r.normal(size=(4, 8, 8)), "sol": r.normal(size=(4, 8, 8))}
    )
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DataFormatError, match="cut.mat"):
        load(p)


def test_random_bytes(tmp_path):
    (tmp_path / "junk.mat").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFormatError, match=r"junk.mat: not a MATLAB v5/v7.3 MAT-file"):
        load(tmp_path / "junk.mat")
    (tmp_path / "tiny.mat").write_bytes(b"MATLAB")
    with pytest.raises(DataFormatError, match=r"tiny.mat: truncated"):
        load(tmp_path / "tiny.mat")


def test_v4_refused(tmp_path):
    scipy.io.savemat(tmp_path / "old.mat", {"a": np.ones((2, 3)), "u": np.ones((2, 3))}, format="4")
    with pytest.raises(DataFormatError, match="v4 files are not supported"):
        load(tmp_path / "old.mat")


def test_a_corrupt_v5_class_byte_is_an_error_not_a_crash(tmp_path):
    """One byte (the first variable's class, single -> sparse) made scipy's reader crash the
    process with a segmentation fault; v5 files are now parsed and checked here (#16)."""
    r = rng_arrays()
    a, u = r.random((3, 9, 9)), r.random((3, 9, 9))
    path = tmp_path / "darcy.mat"
    scipy.io.savemat(path, {"coeff": a.astype(np.float32), "sol": u.astype(np.float32)})
    data = bytearray(path.read_bytes())
    assert data[144] == 7  # array flags of the first variable: class mxSINGLE
    data[144] = 5  # mxSPARSE, without a sparse layout
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"darcy.mat: .*'coeff'"):
        load(path)


def test_v5_arrays_match_scipy(tmp_path):
    """The numpy v5 parser reads what scipy writes, compressed or not, every numeric class."""
    from pde_data.formats.mat import _read_v5

    r = np.random.default_rng(0)
    arrays = {"f8": r.random((3, 4, 5)), "f4": r.random((2, 3)).astype(np.float32),
              "i2": np.arange(12, dtype=np.int16).reshape(3, 4), "u8": np.arange(6, dtype=np.uint8),
              "i8": np.arange(4, dtype=np.int64), "empty": np.zeros((0, 3)), "scalar": 3.5,
              "mask": r.random((4, 4)) > 0.5}
    for compress in (False, True):
        path = tmp_path / f"all{compress}.mat"
        scipy.io.savemat(path, {**arrays, "text": "skipped", "nested": {"f": 1.0},
                                "z": r.random((2, 2)) + 1j}, do_compression=compress)
        got = _read_v5(path)
        want = scipy.io.loadmat(path)
        assert set(got) == set(arrays)
        for name in arrays:
            np.testing.assert_array_equal(got[name], want[name])
            assert got[name].shape == want[name].shape
        assert got["mask"].dtype == bool and got["f4"].dtype == np.float32
