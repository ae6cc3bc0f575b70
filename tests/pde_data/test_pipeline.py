"""FieldData: dataset -> channel-last fields, splits, seeded batches, streaming from zarr."""

from __future__ import annotations

import gc
import threading
import time
import warnings

import numpy as np
import pytest
import xarray as xr

from pde_data.pipeline import FieldArray, FieldData, add_coordinates


def darcy_like(n=12, s=9, seed=0, attrs=None):
    """Node-grid dataset: a(sample,x,y), u(sample,x,y), nu(sample)."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0.0, 1.0, s)
    return xr.Dataset(
        {
            "a": (("sample", "x", "y"), rng.normal(size=(n, s, s))),
            "u": (("sample", "x", "y"), rng.normal(size=(n, s, s)).astype(np.float32)),
            "nu": (("sample",), rng.uniform(size=n)),
        },
        coords={"x": g, "y": g},
        attrs={"pde": "darcy", "input_vars": "a", "output_vars": ["u"], **(attrs or {})},
    )


def burgers_like(n=6, s=16, nt=3, seed=0):
    """Periodic dataset with time: u0(sample,x), u(sample,t,x)."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "u0": (("sample", "x"), rng.normal(size=(n, s))),
            "u": (("sample", "t", "x"), rng.normal(size=(n, nt, s))),
        },
        coords={"x": np.arange(s) / s, "t": np.linspace(0.1, 1.0, nt)},
        attrs={"pde": "burgers", "input_vars": "u0", "output_vars": "u"},
    )


def to_zarr(ds, path, sample_chunk=2):
    enc = {v: {"chunks": (sample_chunk, *ds[v].shape[1:])} for v in ds.data_vars}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, encoding=enc)
    return path


def host(batch):
    return tuple(np.asarray(a) for a in batch)


# -- fields from datasets ---------------------------------------------------------------------
def test_channels_from_attrs_string_and_list():
    ds = darcy_like()
    d = FieldData.from_dataset(ds)
    assert d.x.shape == (12, 9, 9, 1) and d.y.shape == (12, 9, 9, 1)
    assert d.x.dtype == np.float32 and d.periodic is False
    np.testing.assert_array_equal(d.x[..., 0], ds["a"].values.astype(np.float32))
    ds.attrs["input_vars"] = "a, nu"  # comma-separated string
    d2 = FieldData.from_dataset(ds)
    assert d2.x_channels == ["a", "nu"]
    # a per-sample scalar becomes a constant channel over the grid
    np.testing.assert_allclose(d2.x[:, :, :, 1], np.broadcast_to(ds["nu"].values[:, None, None], (12, 9, 9)), rtol=1e-6)
    d3 = FieldData.from_dataset(ds, inputs=["nu", "a"], outputs="u,a")
    assert d3.x_channels == ["nu", "a"] and d3.y_channels == ["u", "a"]


def test_time_axis_becomes_channels_or_is_selected():
    ds = burgers_like()
    d = FieldData.from_dataset(ds)
    assert d.periodic is True
    assert d.y.shape == (6, 16, 3)
    assert d.y_channels == ["u[t=0]", "u[t=1]", "u[t=2]"]
    # channel j is the snapshot t=j, grid on the leading axis
    np.testing.assert_allclose(d.y, np.transpose(ds["u"].values, (0, 2, 1)), rtol=1e-6)
    last = FieldData.from_dataset(ds, time_index=-1)
    assert last.y.shape == (6, 16, 1)
    np.testing.assert_allclose(last.y[..., 0], ds["u"].values[:, -1], rtol=1e-6)
    two = FieldData.from_dataset(ds, time_index=[0, 2])
    np.testing.assert_allclose(two.y, np.transpose(ds["u"].values[:, [0, 2]], (0, 2, 1)), rtol=1e-6)


def test_navier_stokes_layout_t_last():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 8, 8, 4))
    ds = xr.Dataset({"w0": (("sample", "x", "y"), w[..., 0]), "w": (("sample", "x", "y", "t"), w)},
                    coords={"x": np.arange(8) / 8, "y": np.arange(8) / 8, "t": np.arange(4.0)},
                    attrs={"input_vars": "w0", "output_vars": "w"})
    d = FieldData.from_dataset(ds)
    np.testing.assert_allclose(d.y, w, rtol=1e-6)


@pytest.mark.parametrize("k,expect", [(2, 211), (3, 141), (5, 85)])
def test_subsample_node_grid_keeps_both_ends(k, expect):
    s = 421
    g = np.linspace(0, 1, s)
    f = np.sin(3 * g)[None, :] * np.arange(1, 3)[:, None]
    ds = xr.Dataset({"a": (("sample", "x"), f), "u": (("sample", "x"), 2 * f)}, coords={"x": g},
                    attrs={"input_vars": "a", "output_vars": "u"})
    d = FieldData.from_dataset(ds, subsample=k, coords=True)
    assert d.spatial == (expect,)
    coord = d.x[0, :, -1]
    assert coord[0] == 0.0 and coord[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(d.x[:, :, 0], f[:, ::k], rtol=1e-6)


def test_subsample_2d_and_periodic():
    d = FieldData.from_dataset(darcy_like(n=2, s=421), subsample=5)
    assert d.spatial == (85, 85)
    p = FieldData.from_dataset(burgers_like(s=16), subsample=4, coords=True)
    assert p.spatial == (4,)
    np.testing.assert_allclose(p.x[0, :, -1], [0.0, 0.25, 0.5, 0.75])


def test_coordinates_match_add_coordinates():
    d = FieldData.from_dataset(darcy_like(n=3, s=9), coords=True)
    assert d.coord_channels == 2 and d.x_channels[-2:] == ["coord_x", "coord_y"]
    ref = add_coordinates(d.x[..., :1], periodic=False)
    np.testing.assert_allclose(d.x, ref, rtol=1e-6)
    gx = np.linspace(0, 1, 9)
    np.testing.assert_allclose(d.x[0, :, 4, 1], gx, rtol=1e-6)
    np.testing.assert_allclose(d.x[0, 4, :, 2], gx, rtol=1e-6)


def test_add_coordinates_numpy_and_jax():
    import jax
    import jax.numpy as jnp

    x = np.zeros((2, 4, 3, 1), np.float32)
    out = add_coordinates(x, periodic=True)
    assert out.shape == (2, 4, 3, 3) and isinstance(out, np.ndarray)
    np.testing.assert_allclose(out[0, :, 0, 1], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(out[0, 0, :, 2], [0, 1 / 3, 2 / 3], rtol=1e-6)
    outj = jax.jit(lambda a: add_coordinates(a, periodic=True))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(outj), out)
    with pytest.raises(ValueError, match="spatial"):
        add_coordinates(np.zeros((2, 3)), periodic=False)


# -- clear errors ------------------------------------------------------------------------------
def test_unknown_variable_names_available():
    with pytest.raises(ValueError, match=r"unknown variable 'b'.*\['a', 'u', 'nu'\]"):
        FieldData.from_dataset(darcy_like(), inputs="b")


def test_mismatched_spatial_shapes():
    ds = darcy_like(s=9)
    ds2 = ds.assign(v=(("sample", "x2", "y"), np.zeros((12, 5, 9))))
    ds2 = ds2.rename({"x2": "z"})
    with pytest.raises(ValueError, match="one spatial grid"):
        FieldData.from_dataset(ds2, inputs="a", outputs="v")
    with pytest.raises(ValueError, match="spatial grid"):
        FieldData(np.zeros((2, 4, 1)), np.zeros((2, 5, 1)))


def test_nan_in_memory_checked_when_materialised():
    ds = darcy_like()
    ds["u"].values[7, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"u has NaN/inf.*\[7\]"):
        FieldData.from_dataset(ds)
    with pytest.raises(ValueError, match="NaN/inf"):
        FieldData(np.full((2, 3, 1), np.inf), np.zeros((2, 3, 1)))


def test_nan_streamed_checked_per_batch(tmp_path):
    ds = darcy_like(n=8)
    ds["a"].values[5, 0, 0] = np.inf
    d = FieldData.from_dataset(to_zarr(ds, tmp_path / "bad.zarr"))
    assert d.streaming
    clean = d.subset([0, 1, 2, 3])
    assert len(list(clean.batches(2, seed=0, shard=False))) == 2  # no bad sample read: fine
    with pytest.raises(ValueError, match=r"a has NaN/inf.*\[5\]"):
        list(d.batches(8, seed=0, shard=False))


def test_split_sizes_and_subsample_errors():
    d = FieldData.from_dataset(darcy_like())
    with pytest.raises(ValueError, match="exceed the 12 samples"):
        d.split(10, 2, 1)
    with pytest.raises(ValueError, match="node grid of 9 points"):
        FieldData.from_dataset(darcy_like(s=9), subsample=3)
    with pytest.raises(ValueError, match="periodic grid of 16 points"):
        FieldData.from_dataset(burgers_like(s=16), subsample=3)
    with pytest.raises(ValueError, match="positive integer"):
        FieldData.from_dataset(darcy_like(), subsample=0)
    with pytest.raises(ValueError, match="input_vars"):
        FieldData.from_dataset(darcy_like().drop_attrs())


# -- splits ------------------------------------------------------------------------------------
def test_split_disjoint_seeded_views():
    d = FieldData.from_dataset(darcy_like(n=20))
    tr, va, te = d.split(12, 3, 4, seed=3)
    assert (len(tr), len(va), len(te)) == (12, 3, 4)
    all_idx = np.concatenate([tr.indices, va.indices, te.indices])
    assert len(np.unique(all_idx)) == 19
    tr2, _, _ = d.split(12, 3, 4, seed=3)
    np.testing.assert_array_equal(tr.indices, tr2.indices)
    assert not np.array_equal(tr.indices, d.split(12, 3, 4, seed=4)[0].indices)
    np.testing.assert_array_equal(tr.x, d.x[tr.indices])
    np.testing.assert_array_equal(te.y, d.y[te.indices])
    ftr, fva, fte = d.split(10, 2, 5, seed=None)  # FNO convention: train first, test last
    np.testing.assert_array_equal(ftr.indices, np.arange(10))
    np.testing.assert_array_equal(fva.indices, [13, 14])
    np.testing.assert_array_equal(fte.indices, np.arange(15, 20))
    rest, _, _ = d.split(None, 5, 5)
    assert len(rest) == 10


# -- batches -----------------------------------------------------------------------------------
def test_batches_pure_function_of_seed_and_epoch():
    import jax

    d = FieldData.from_dataset(darcy_like(n=12))
    b1 = [host(b) for b in d.batches(4, seed=7, epoch=1)]
    b2 = [host(b) for b in d.batches(4, seed=7, epoch=1, prefetch=0)]
    b3 = [host(b) for b in d.batches(4, seed=7, epoch=2)]
    assert len(b1) == 3
    for (x1, y1), (x2, y2) in zip(b1, b2):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(b1, b3))
    # every sample exactly once per epoch, paired x/y rows intact
    xs = np.concatenate([x for x, _ in b1])
    ys = np.concatenate([y for _, y in b1])
    order = d.epoch_order(7, 1)
    np.testing.assert_array_equal(xs, d.x[order])
    np.testing.assert_array_equal(ys, d.y[order])
    x, _ = next(iter(d.batches(4, seed=7)))
    assert isinstance(x, jax.Array) and x.dtype == np.float32 and x.shape == (4, 9, 9, 1)
    # a jax key works as the seed too
    kb = [host(b) for b in d.batches(4, seed=jax.random.key(3))]
    assert len(kb) == 3


def test_start_resumes_exactly_and_drop_last():
    d = FieldData.from_dataset(darcy_like(n=11))
    full = [host(b) for b in d.batches(3, seed=1, epoch=4)]
    assert len(full) == 3  # 11 // 3, last short batch dropped
    it = d.batches(3, seed=1, epoch=4, start=2)
    assert len(it) == 1
    tail = [host(b) for b in it]
    np.testing.assert_array_equal(tail[0][0], full[2][0])
    keep = [host(b) for b in d.batches(3, seed=1, epoch=4, drop_last=False)]
    assert [b[0].shape[0] for b in keep] == [3, 3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in keep]), d.x[d.epoch_order(1, 4)])
    plain = [host(b) for b in d.batches(5, shuffle=False, drop_last=False)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in plain]), d.y)
    assert list(d.batches(3, seed=1, start=3)) == []
    with pytest.raises(ValueError, match="start=4"):
        d.batches(3, seed=1, start=4)
    with pytest.raises(ValueError, match="gives no batch"):
        d.batches(20, seed=1)


def test_prefetch_thread_stops_and_errors_propagate():
    d = FieldData.from_dataset(darcy_like(n=12))
    before = threading.active_count()
    with d.batches(2, seed=0, prefetch=2) as it:
        next(it)
    assert threading.active_count() == before
    it = d.batches(2, seed=0, prefetch=1)
    next(it)
    it.close()
    assert threading.active_count() == before
    it = d.batches(2, seed=0, prefetch=1)
    next(it)
    del it  # an abandoned iterator stops its thread when collected
    gc.collect()
    for _ in range(100):
        if threading.active_count() == before:
            break
        time.sleep(0.05)
    assert threading.active_count() == before

    def boom(rows):
        raise RuntimeError("read failed")

    from pde_data.pipeline import BatchIterator

    with pytest.raises(RuntimeError, match="read failed"):
        list(BatchIterator(boom, [np.arange(2)], prefetch=2))


# -- streaming from zarr -----------------------------------------------------------------------
def test_streamed_zarr_batches_equal_in_memory(tmp_path):
    ds = darcy_like(n=14, s=9)
    path = to_zarr(ds, tmp_path / "d.zarr", sample_chunk=3)
    z = FieldData.from_dataset(str(path), inputs="a,nu", subsample=2, coords=True)
    m = FieldData.from_dataset(ds, inputs="a,nu", subsample=2, coords=True)
    assert z.streaming and not m.streaming
    assert isinstance(z.x, FieldArray) and z.x.shape == m.x.shape
    ztr, zva, _ = z.split(10, 4, seed=5)
    mtr, mva, _ = m.split(10, 4, seed=5)
    for epoch in (0, 1):
        for (a, b), (c, e) in zip(ztr.batches(2, seed=9, epoch=epoch), mtr.batches(2, seed=9, epoch=epoch)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
            np.testing.assert_array_equal(np.asarray(b), np.asarray(e))
    np.testing.assert_array_equal(np.asarray(zva.y), mva.y)
    np.testing.assert_array_equal(zva.x[[3, 0, 0]], mva.x[[3, 0, 0]])  # unsorted, repeated rows
    np.testing.assert_array_equal(zva.x[1, 2], mva.x[1, 2])
    chunks = list(ztr.x.iter_chunks(4))
    assert [c.shape[0] for c in chunks] == [4, 4, 2]
    # the lazily opened store is not loaded into memory by building views and batches
    zs = xr.open_zarr(path, chunks=None)
    lazy = FieldData.from_dataset(zs)
    next(iter(lazy.batches(2, seed=0, shard=False)))
    assert not zs["a"].variable._in_memory
    forced = FieldData.from_dataset(zs, stream=False)
    assert not forced.streaming
    np.testing.assert_array_equal(forced.x, FieldData.from_dataset(ds).x)


def test_fielddata_from_arrays_and_spatial_check():
    x = np.random.default_rng(0).normal(size=(5, 6, 7, 2))
    d = FieldData(x, x[..., :1], spatial=2)
    assert d.spatial == (6, 7) and d.in_channels == 2 and d.out_channels == 1
    FieldData(x, x, spatial=(6, 7))
    with pytest.raises(ValueError, match="spatial"):
        FieldData(x, x, spatial=3)
    with pytest.raises(ValueError, match="samples"):
        FieldData(x, x[:4])
