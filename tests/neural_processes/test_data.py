"""Task sources: digits completion tasks from held-out images, Darcy sensor tasks, errors."""

import jax
import numpy as np
import pytest

from neural_processes.data import FileSource, digits_source, get_source, source_from_config

from .conftest import write_point_sets


@pytest.mark.slow
def test_digits_tasks_and_held_out_split():
    src = digits_source()
    train, test = np.asarray(src.train_fields), np.asarray(src.test_fields)
    assert train.shape == (1500, 64) and test.shape == (297, 64)
    # held-out images are not in the training set
    assert not (test[:, None, :] == train[None, :, :]).all(-1).any(1).all()
    b = src.sample(jax.random.key(0), 32)
    assert b.x.shape == (32, 64, 2) and b.y.shape == (32, 64, 1)
    nc = np.asarray(b.mask_context).sum(1)
    assert nc.min() >= 3 and nc.max() <= 32
    np.testing.assert_array_equal(np.asarray(b.mask_context + b.mask_target), 1)
    # each task's points are one image's pixels: x covers the 8x8 grid exactly once
    xs = np.asarray(b.x[0])
    assert len({tuple(p) for p in xs.round(4)}) == 64
    assert np.asarray(b.y).min() >= -0.5 and np.asarray(b.y).max() <= 0.5
    tb = src.test_batches(250, seed=0)
    assert sum(t.x.shape[0] for t in tb) == 250


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; available: rbf"):
        get_source("mnist")


@pytest.mark.slow
def test_darcy_sensor_tasks():
    src = get_source("darcy")
    b = src.sample(jax.random.key(1), 4)
    assert b.x.shape == (4, 100, 2) and b.y.shape == (4, 100, 1)
    assert np.isfinite(np.asarray(b.y)).all()
    assert np.asarray(src.test_fields).shape[0] == 60


def test_point_set_file_source(tmp_path):
    """``--data FILE``: PointSets of random subsets of the file's tasks, context sizes in the
    configured range; a run config notices a file whose tasks changed."""
    path = write_point_sets(tmp_path / "t.nc", n_tasks=4, n_points=12, x_dim=2, y_3d=True)
    src = get_source(str(path), n_points=9, max_context=5)
    assert isinstance(src, FileSource) and (src.x_dim, src.y_dim) == (2, 1)
    b = jax.jit(lambda k: src.sample(k, 6))(jax.random.key(0))
    assert b.x.shape == (6, 9, 2) and b.y.shape == (6, 9, 1)
    nc = np.asarray(b.mask_context).sum(1)
    assert nc.min() >= 3 and nc.max() <= 5
    np.testing.assert_array_equal(np.asarray(b.mask_context + b.mask_target), 1)
    tb = src.test_batches(7, seed=0, batch_size=4)
    assert [t.x.shape[0] for t in tb] == [4, 3]
    config = {"data": src.name, "data_options": src.options()}
    assert source_from_config(config).options() == src.options()
    write_point_sets(path, n_tasks=3, n_points=12, x_dim=2)
    with pytest.raises(ValueError, match="has changed since the run was configured"):
        source_from_config(config)
