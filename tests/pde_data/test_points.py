"""Point-set tasks (pde_data.points): masks, seeded streams, files of the user's own data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pde_data.points import (
    PointSetData,
    PointSetFileError,
    PointSets,
    load_point_sets,
    save_point_sets,
    stream,
)


def test_prefix_masks_shared_and_per_task():
    x = jnp.zeros((3, 6, 2))
    y = jnp.zeros((3, 6, 1))
    shared = PointSets.prefix(x, y, 2)
    assert shared.n_context == 2
    np.testing.assert_array_equal(shared.mask_context[:, :2], 1.0)
    np.testing.assert_array_equal(shared.mask_target, 1.0 - shared.mask_context)
    per = PointSets.prefix(x, y, jnp.array([1, 2, 5]), n_target=jnp.array([2, 2, 1]))
    assert per.n_context is None
    np.testing.assert_array_equal(per.mask_context.sum(1), [1, 2, 5])
    np.testing.assert_array_equal(per.mask_target.sum(1), [2, 2, 1])
    assert float(jnp.max(per.mask_context * per.mask_target)) == 0.0
    np.testing.assert_array_equal(per.mask_all[0], [1, 1, 1, 0, 0, 0])
    (xc, _), (xt, _) = shared.split()
    assert xc.shape == (3, 2, 2) and xt.shape == (3, 4, 2)
    with pytest.raises(ValueError, match="prefix"):
        per.split()


def test_stream_is_a_pure_function_of_seed_and_step():
    def sample(key):
        return jax.random.normal(key, (2,))

    a = stream(sample, seed=1)
    first = [np.asarray(b) for b, _ in zip(a(0), range(5))]
    again = [np.asarray(b) for b, _ in zip(a(3), range(2))]
    np.testing.assert_array_equal(first[3], again[0])
    np.testing.assert_array_equal(first[4], again[1])
    other = next(stream(sample, seed=2)(0))
    assert not np.array_equal(first[0], np.asarray(other))


def test_file_round_trip_and_sampler(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5, 20, 2))
    y = np.sin(x.sum(-1))  # y (task, point)
    path = save_point_sets(x, y, tmp_path / "tasks.nc")
    data = load_point_sets(path)
    assert (data.n_tasks, data.n_points, data.x_dim, data.y_dim) == (5, 20, 2, 1)
    np.testing.assert_allclose(data.y[..., 0], y, rtol=1e-6)
    sample = jax.jit(data.sampler(batch_size=4, n_points=10, min_context=2, max_context=6))
    batch = sample(jax.random.key(0))
    assert batch.x.shape == (4, 10, 2) and batch.y.shape == (4, 10, 1)
    ctx = np.asarray(batch.mask_context.sum(1))
    assert np.all((ctx >= 2) & (ctx <= 6))
    # every sampled point is a point of the file with its own y
    points, values = x.reshape(-1, 2), y.reshape(-1)
    for p, v in zip(np.asarray(batch.x).reshape(-1, 2), np.asarray(batch.y).reshape(-1)):
        nearest = np.argmin(np.abs(points - p).sum(1))
        assert np.abs(points[nearest] - p).max() < 1e-6 and values[nearest] == pytest.approx(v)
    train, val = data.split(2, seed=0)
    assert (train.n_tasks, val.n_tasks) == (3, 2)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_point_sets(x, y, path)


def test_bad_files_are_named(tmp_path):
    import xarray as xr

    with pytest.raises(FileNotFoundError):
        load_point_sets(tmp_path / "missing.nc")
    xr.Dataset({"a": (("task", "point"), np.zeros((2, 3)))}).to_netcdf(
        tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(PointSetFileError, match="no variable"):
        load_point_sets(tmp_path / "other.nc")
    x = np.zeros((2, 4, 1))
    y = np.zeros((2, 4))
    y[0, 1] = np.nan
    xr.Dataset({"x": (("task", "point", "feature"), x), "y": (("task", "point"), y)}).to_netcdf(
        tmp_path / "nan.nc", engine="h5netcdf")
    with pytest.raises(PointSetFileError, match="NaN"):
        load_point_sets(tmp_path / "nan.nc")
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file")
    with pytest.raises(PointSetFileError, match="not a readable"):
        load_point_sets(tmp_path / "junk.nc")
    with pytest.raises(PointSetFileError, match="same tasks"):
        PointSetData(np.zeros((2, 4, 1)), np.zeros((3, 4, 1)))
    with pytest.raises(ValueError, match="max_context"):
        PointSetData(np.zeros((2, 4, 1)), np.zeros((2, 4, 1))).sampler(2, 4, 1, 4)
