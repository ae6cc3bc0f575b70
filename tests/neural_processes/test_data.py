"""Task sources: digits completion tasks from held-out images, Darcy sensor tasks, errors."""

import jax
import numpy as np
import pytest

from neural_processes.data import digits_source, get_source


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
