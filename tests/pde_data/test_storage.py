"""pde_data.storage (save/load .nc and .zarr), pde_data.schema.validate and pde_data.info."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

import pde_data
from pde_data import storage
from pde_data.info import convert, info
from pde_data.schema import SchemaError, validate
from pde_data.storage import DataFormatError, load, save


def darcy_like(n=6, s=5, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, s)
    return xr.Dataset(
        {
            "a": (("sample", "x", "y"), rng.uniform(3, 12, (n, s, s)).astype(np.float32)),
            "u": (("sample", "x", "y"), rng.normal(size=(n, s, s))),  # float64 kept as float64
        },
        coords={"x": grid, "y": grid},
        attrs={
            "pde": "darcy",
            "input_vars": ["a"],
            "output_vars": ["u"],
            "seed": 7,
            "alpha": 2.0,
            "solver": "fd",
            "periodic": False,
            "version": "1.0",
        },
    )


def ns_like(n=4, s=4, t=3, seed=1):
    rng = np.random.default_rng(seed)
    grid = np.arange(s) / s
    w = rng.normal(size=(n, s, s, t)).astype(np.float32)
    return xr.Dataset(
        {"w0": (("sample", "x", "y"), w[..., 0]), "w": (("sample", "x", "y", "t"), w)},
        coords={"x": grid, "y": grid, "t": np.linspace(0.1, 1.0, t)},
        attrs={"pde": "navier_stokes", "input_vars": "w0", "output_vars": ["w"], "nu": 1e-3},
    )


def assert_same(loaded, original):
    assert set(loaded.data_vars) == set(original.data_vars)
    for k, v in original.data_vars.items():
        assert loaded[k].dims == v.dims
        assert loaded[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded[k].values, v.values)
    for d in original.coords:
        np.testing.assert_array_equal(loaded.coords[d].values, original.coords[d].values)


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("make", [darcy_like, ns_like])
def test_round_trip(tmp_path, suffix, make):
    ds = make()
    path = tmp_path / f"data{suffix}"
    assert save(ds, path) == path
    out = pde_data.load(path)
    assert_same(out, ds)
    assert out.attrs["pde"] == ds.attrs["pde"]
    assert (
        out.attrs["input_vars"] == [ds.attrs["input_vars"]]
        if isinstance(ds.attrs["input_vars"], str)
        else out.attrs["input_vars"] == ds.attrs["input_vars"]
    )
    assert out.attrs["output_vars"] == ["u"] if make is darcy_like else ["w"]
    assert out.attrs["source_format"] == {".nc": "netcdf", ".zarr": "zarr"}[suffix]
    for k, v in ds.attrs.items():
        if k in ("input_vars", "output_vars"):
            continue
        assert out.attrs[k] == v, k  # False comes back as 0 from netCDF, which compares equal
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp leftovers


def test_zarr_is_lazy_and_chunked_by_sample(tmp_path, monkeypatch):
    ds = darcy_like(n=10, s=5)
    monkeypatch.setattr(storage, "ZARR_CHUNK_BYTES", 3 * 5 * 5 * 8)  # 3 float64 samples a chunk
    monkeypatch.setattr(storage, "ZARR_WRITE_BYTES", 4 * 5 * 5 * 12)  # 4 samples a block ...
    written = []
    real = xr.Dataset.to_zarr

    def record(self, *args, **kwargs):
        written.append(self.sizes["sample"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_zarr", record)
    save(ds, tmp_path / "d.zarr")
    assert written == [3, 3, 3, 1]  # ... rounded to whole chunks; never the whole dataset
    out = load(tmp_path / "d.zarr")
    assert not out["u"].variable._in_memory  # nothing read yet
    np.testing.assert_array_equal(out["u"][2:7].values, ds["u"][2:7].values)
    assert out["u"].encoding["chunks"] == (3, 5, 5)
    assert_same(out, ds)
    written.clear()
    convert(tmp_path / "d.zarr", tmp_path / "e.zarr")  # lazily backed source, streamed in blocks
    assert written == [3, 3, 3, 1]
    assert_same(load(tmp_path / "e.zarr"), ds)


def test_zarr_overwrite_replaces_store(tmp_path):
    path = tmp_path / "d.zarr"
    save(darcy_like(seed=0), path)
    new = darcy_like(n=3, seed=5)
    save(new, path)
    assert_same(load(path), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def test_netcdf3_classic_is_read(tmp_path):
    ds = ns_like()
    ds.attrs["output_vars"] = "w"
    ds.to_netcdf(tmp_path / "c.nc", engine="scipy", format="NETCDF3_64BIT")
    out = load(tmp_path / "c.nc")
    assert out.attrs["input_vars"] == ["w0"] and out.attrs["output_vars"] == ["w"]
    np.testing.assert_array_equal(out["w"].values, ds["w"].values)


# ----------------------------------------------------------------------------------- atomic


def test_atomic_netcdf_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "d.nc"
    old = darcy_like(seed=0)
    save(old, path)
    before = path.read_bytes()
    real = xr.Dataset.to_netcdf

    def crash(self, target, *args, **kwargs):
        real(self, target, *args, **kwargs)
        with open(target, "r+b") as f:  # half-written file, then the process "dies"
            f.truncate(os.path.getsize(target) // 2)
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save(darcy_like(seed=1), path)
    with pytest.raises(RuntimeError):
        save(darcy_like(seed=1), tmp_path / "new.nc")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.nc"]
    monkeypatch.undo()
    assert_same(load(path), old)


def test_atomic_zarr_failure_keeps_old_store(tmp_path, monkeypatch):
    path = tmp_path / "d.zarr"
    old = darcy_like(seed=0)
    save(old, path)
    real = xr.Dataset.to_zarr

    def crash(self, store, *args, **kwargs):
        real(self, store, *args, **kwargs)  # some chunks written
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_zarr", crash)
    with pytest.raises(KeyboardInterrupt):
        save(darcy_like(seed=1), path)
    with pytest.raises(KeyboardInterrupt):
        save(darcy_like(seed=1), tmp_path / "new.zarr")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]
    assert_same(load(path), old)


# ---------------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.assign(u=d.u.where(d.u > 0)), "'u' has non-finite"),
        (lambda d: d.drop_attrs(), "missing attribute 'pde'"),
        (lambda d: d.assign_attrs(output_vars=["v"]), r"output_vars.*\['v'\]"),
        (lambda d: d.assign_attrs(input_vars=[]), "input_vars' names no variable"),
        (lambda d: d.assign_attrs(pde=""), "'pde' must be a non-empty string"),
        (lambda d: d.rename_dims(x="lat").rename_vars(x="lat"), "'lat'"),
        (lambda d: d.drop_vars("y"), "dimension 'y' has no coordinate"),
        (lambda d: d.assign_coords(x=d.x.values[::-1].copy()), "'x' must be strictly increasing"),
        (lambda d: d.transpose("x", "sample", "y"), "'sample' must be the first"),
        (lambda d: d.drop_vars(["a", "u"]), "no data variables"),
    ],
)
def test_validate_names_the_problem(tmp_path, mutate, match):
    bad = mutate(darcy_like())
    with pytest.raises(SchemaError, match=match):
        validate(bad)
    with pytest.raises(SchemaError, match=match):
        save(bad, tmp_path / "bad.nc")
    assert not list(tmp_path.iterdir())


def test_unstorable_attribute(tmp_path):
    with pytest.raises(SchemaError, match="attribute 'cfg'"):
        save(darcy_like().assign_attrs(cfg={"a": 1}), tmp_path / "d.nc")


def test_validate_rejects_non_dataset():
    with pytest.raises(SchemaError, match="xarray.Dataset"):
        validate(np.zeros(3))


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["d.h5", "d.npz", "d", "d.mat"])
def test_save_rejects_other_extensions(tmp_path, name):
    with pytest.raises(DataFormatError, match="use .nc"):
        save(darcy_like(), tmp_path / name)


def test_unknown_extension(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("1,2,3")
    with pytest.raises(DataFormatError, match=r"d.csv.*unknown dataset extension '.csv'"):
        load(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        load(tmp_path / "nope.nc")


def test_random_bytes_nc(tmp_path):
    p = tmp_path / "junk.nc"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFormatError, match=r"junk.nc: not a netCDF file"):
        load(p)


def test_truncated_nc(tmp_path):
    p = tmp_path / "t.nc"
    save(darcy_like(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"t.nc: corrupt or truncated netCDF"):
        load(p)


def test_corrupt_zarr(tmp_path):
    (tmp_path / "e.zarr").mkdir()
    with pytest.raises(DataFormatError, match="e.zarr: cannot open as a zarr dataset"):
        load(tmp_path / "e.zarr")
    (tmp_path / "f.zarr").write_bytes(b"not a directory")
    with pytest.raises(DataFormatError, match="must be a directory"):
        load(tmp_path / "f.zarr")


def test_nc_without_schema_attrs_is_an_error(tmp_path):
    ds = darcy_like().drop_attrs()
    ds.to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    with pytest.raises(
        DataFormatError,
        match=r"plain.nc: does not follow the dataset schema: missing attribute 'pde'",
    ):
        load(tmp_path / "plain.nc")


def test_nc_missing_variable_is_an_error(tmp_path):
    ds = darcy_like().drop_attrs().assign_attrs(pde="darcy", input_vars="a", output_vars="u")
    ds.drop_vars("u").to_netcdf(tmp_path / "m.nc", engine="h5netcdf")  # output_vars still says u
    with pytest.raises(DataFormatError, match=r"m.nc.*output_vars.*\['u'\] not in the dataset"):
        load(tmp_path / "m.nc")


# ------------------------------------------------------------------------------------ info


def test_info_and_convert(tmp_path):
    ds = ns_like()
    save(ds, tmp_path / "n.nc")
    text = info(tmp_path / "n.nc")
    assert "format: netcdf" in text and "pde: navier_stokes" in text
    assert "resolution: 4 x 4" in text and "x: 4 points [0, 0.75], periodic grid" in text
    w = ds["w"].values
    assert f"min={w.min():.6g}" in text and f"max={w.max():.6g}" in text
    assert "w0" in text and "[input]" in text and "float32" in text and "nu = 0.001" in text
    out = convert(tmp_path / "n.nc", tmp_path / "n.zarr")
    back = load(out)
    assert_same(back, ds)
    assert back.attrs["converted_from"] == "n.nc (netcdf)" and back.attrs["source_format"] == "zarr"
    with pytest.raises(DataFormatError):
        convert(tmp_path / "n.nc", tmp_path / "n.h5")


# ------------------------------------------------------------------- faults and debris (#16)


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_check_output_refuses_existing_and_foreign_suffixes(tmp_path):
    save(darcy_like(), tmp_path / "d.nc")
    with pytest.raises(FileExistsError, match="d.nc exists; pass --overwrite"):
        storage.check_output(tmp_path / "d.nc")
    assert storage.check_output(tmp_path / "d.nc", overwrite=True) == tmp_path / "d.nc"
    for name in ("x.h5", "noext"):
        with pytest.raises(DataFormatError, match="use .nc"):
            storage.check_output(tmp_path / name)
    (tmp_path / "dir.nc").mkdir()
    with pytest.raises(DataFormatError, match="is a directory"):
        storage.check_output(tmp_path / "dir.nc", overwrite=True)


def test_a_killed_save_leaves_nothing_the_next_save_keeps(tmp_path):
    """What a kill -9 during a save leaves (the temporary store of a dead writer) is removed by
    the next save of that path; a live writer's temporary store is left alone."""
    dead, alive = _dead_pid(), os.getpid()
    zarr_tmp = tmp_path / f".d.zarr.tmp-{dead}-0123abcd"
    (zarr_tmp / "a").mkdir(parents=True)
    old_style = tmp_path / ".d.zarr.tmp-89abcdef"  # written before the pid was recorded
    old_style.mkdir()
    nc_tmp = tmp_path / f".d.nc.{dead}.k2j4_x9a.tmp"
    nc_tmp.write_bytes(b"half a file")
    live = tmp_path / f".d.zarr.tmp-{alive}-0123abcd"
    live.mkdir()
    save(darcy_like(), tmp_path / "d.zarr")
    save(darcy_like(), tmp_path / "d.nc")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["d.zarr", "d.nc", live.name])


def test_a_store_moved_aside_by_a_killed_save_is_put_back(tmp_path):
    """A kill between the two renames of a zarr save leaves the old store at .NAME.old-*:
    loading the path (or saving it again) puts it back instead of losing it."""
    old = darcy_like(seed=3)
    save(old, tmp_path / "d.zarr")
    os.replace(tmp_path / "d.zarr", tmp_path / f".d.zarr.old-{_dead_pid()}-00ff00ff")
    assert_same(load(tmp_path / "d.zarr"), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def test_corrupt_zarr_chunk_is_a_named_error_when_read(tmp_path):
    path = save(darcy_like(), tmp_path / "d.zarr")
    chunks = [p for p in (path / "u").rglob("*") if p.is_file() and "zarr" not in p.name
              and not p.name.startswith(".z")]
    chunks[0].write_bytes(b"\x00not a zstd frame" * 4)
    ds = load(path)  # lazily opened: the metadata are fine
    np.testing.assert_array_equal(ds["a"].values, darcy_like()["a"].values)
    with pytest.raises(DataFormatError, match=r"d.zarr: variable 'u'.*corrupt"):
        np.asarray(ds["u"].values)
    with pytest.raises(DataFormatError, match="variable 'u'"):
        info(path)
    with pytest.raises(DataFormatError, match="variable 'u'"):
        convert(path, tmp_path / "e.nc")
    assert not (tmp_path / "e.nc").exists()
    from pde_data.pipeline import FieldData

    with pytest.raises(DataFormatError, match="variable 'u'"):
        FieldData.from_dataset(path, stream=False)


def test_convert_refuses_to_replace_an_existing_file(tmp_path):
    src = save(darcy_like(seed=1), tmp_path / "src.nc")
    dst = save(darcy_like(seed=2), tmp_path / "dst.nc")
    before = dst.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert(src, dst)
    assert dst.read_bytes() == before
    convert(src, dst, overwrite=True)
    assert_same(load(dst), darcy_like(seed=1))


def test_info_counts_nan_and_inf(tmp_path):
    ds = darcy_like()
    u = ds["u"].values.copy()
    u[0, 1, 1], u[2, 2, 2], u[3, 0, 0] = np.nan, np.nan, -np.inf
    ds["u"] = (ds["u"].dims, u)
    path = tmp_path / "bad.nc"
    # save() refuses non-finite data; write it anyway
    storage._prepare(ds, netcdf=True).to_netcdf(path, engine="h5netcdf")
    text = info(path)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("u "))
    assert "NaN=2" in line and "inf=1" in line, line
    finite = u[np.isfinite(u)]
    assert f"min={finite.min():.6g}" in line and f"max={finite.max():.6g}" in line
    line_a = next(ln for ln in text.splitlines() if ln.strip().startswith("a "))
    assert "NaN" not in line_a


def test_fingerprint_follows_the_content(tmp_path):
    for suffix in (".nc", ".zarr"):
        a = save(darcy_like(seed=0), tmp_path / f"a{suffix}")
        b = save(darcy_like(seed=0), tmp_path / f"b{suffix}")
        c = save(darcy_like(seed=1), tmp_path / f"c{suffix}")
        assert storage.fingerprint(a) == storage.fingerprint(b) != storage.fingerprint(c)
        assert storage.fingerprint(a).startswith("sha256:")


def test_a_corrupt_hdf5_global_heap_is_refused_before_hdf5_reads_it(tmp_path):
    """One flipped bit in an object size of a netCDF-4 file's global heap (where the
    DIMENSION_LIST attributes live) makes the HDF5 library loop forever holding the GIL: the
    heap is checked first and the file refused with a named error."""
    import struct

    path = save(darcy_like(), tmp_path / "d.nc")
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")
    assert heap > 0
    pos, last = heap + 16, None  # after the collection header: objects (index, ..., size, data)
    while struct.unpack_from("<H", data, pos)[0] != 0:  # up to the free-space object
        last = pos
        size = struct.unpack_from("<Q", data, pos + 8)[0]
        pos += 16 + size + (-size) % 8
    size = struct.unpack_from("<Q", data, last + 8)[0]
    struct.pack_into("<Q", data, last + 8, size + 256)  # the last object's size: one bit
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"d.nc: corrupt HDF5 global heap at byte"):
        load(path)
