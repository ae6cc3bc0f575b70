"""Shared solver input checks: each bad input gets an error naming the argument and problem."""

import numpy as np
import pytest

from pde_data.checks import batched_field, increasing_times


def test_unbatched_field_gains_a_batch_axis():
    x, single = batched_field(np.zeros((6, 6), np.float32), "w0", 2)
    assert single and x.shape == (1, 6, 6) and x.dtype == np.float64
    x, single = batched_field(np.zeros((3, 6, 6)), "w0", 2)
    assert not single and x.shape == (3, 6, 6)


@pytest.mark.parametrize("x, kw, err, match", [
    (np.array([["a", "b"]]), {}, TypeError, "w0 must be a real numeric"),
    (np.zeros((2, 6, 5)), {}, ValueError, r"w0 must have shape \(batch, s, s\)"),
    (np.zeros((2, 7, 7)), {"even": True}, ValueError, "even"),
    (np.zeros((2, 2, 2)), {"min_size": 3}, ValueError, "s >= 3"),
    (np.full((1, 6, 6), np.inf), {}, ValueError, "w0 contains NaN or inf"),
])
def test_bad_fields_are_named(x, kw, err, match):
    with pytest.raises(err, match=match):
        batched_field(x, "w0", 2, **kw)


def test_times():
    t, scalar = increasing_times(0.5)
    assert scalar and t.tolist() == [0.5]
    assert increasing_times([0.0, 1.0])[0].tolist() == [0.0, 1.0]
    for bad in ([1.0, 1.0], [-1.0], [], [np.nan]):
        with pytest.raises(ValueError, match="strictly increasing"):
            increasing_times(bad)
