"""The jaxtyping shape annotations of pde_data's public signatures hold at runtime: checked with
``jaxtyped(typechecker=beartype)`` on real calls, and a wrong shape is refused."""

from __future__ import annotations

import typing

import jax
import numpy as np
import pytest
import xarray as xr

pytest.importorskip("beartype")  # the test extra installs it
from beartype import beartype
from beartype.door import is_bearable
from jaxtyping import TypeCheckError, jaxtyped

from pde_data import burgers, darcy, grf
from pde_data import navier_stokes as ns
from pde_data.fields import FieldData


def checked(fn):
    """``fn`` with its annotations checked at every call (arguments and return value)."""
    return jaxtyped(typechecker=beartype)(fn)


def test_darcy_solve_and_coefficient():
    a = darcy.coefficient(0, 2, 9)
    assert checked(darcy.coefficient)(0, 2, 9).shape == (2, 9, 9)
    assert checked(darcy.solve)(a).shape == (2, 9, 9)
    assert checked(darcy.solve)(a[0], np.ones((9, 9))).shape == (9, 9)  # unbatched, f on grid
    with pytest.raises(TypeCheckError):
        checked(darcy.solve)(np.ones((2, 9, 8)))  # not square
    with pytest.raises(TypeCheckError):
        checked(darcy.solve)(a, np.ones((7, 7)))  # f on another grid


def test_burgers_solve_and_initial_condition():
    u0 = checked(burgers.initial_condition)(0, 2, 16)
    assert checked(burgers.solve)(u0, 0.1, 0.01, dt=1e-2).shape == (2, 16)
    assert checked(burgers.solve)(u0, 0.1, [0.01, 0.02], dt=1e-2).shape == (2, 16, 2)
    assert checked(burgers.solve)(u0[0], 0.1, np.array([0.01]), dt=1e-2).shape == (16, 1)
    with pytest.raises(TypeCheckError):
        checked(burgers.solve)(np.float64(1.0), 0.1)  # no grid axis


def test_navier_stokes_solve_and_initial_condition():
    w0 = checked(ns.initial_condition)(0, 2, 8)
    assert checked(ns.solve)(w0, 1e-3, 0.01, dt=1e-3).shape == (2, 8, 8)
    assert checked(ns.solve)(w0, 1e-3, [0.01, 0.02], dt=1e-3).shape == (2, 8, 8, 2)
    assert checked(ns.forcing)(8).shape == (8, 8)
    with pytest.raises(TypeCheckError):
        checked(ns.solve)(np.zeros((2, 8, 6)), 1e-3, 0.01)


def test_grf_sample_and_basis():
    assert checked(grf.sample)(0, 3, 8, dim=2).shape == (3, 8, 8)
    assert checked(grf.sample)(0, 3, 8, dim=1, boundary="neumann").shape == (3, 8)
    assert checked(grf.sample)(jax.random.key(1), 2, 6, boundary="dirichlet").shape == (2, 6, 6)
    assert checked(grf.basis)(6, "dirichlet").shape == (6, 4)


def test_a_wrong_return_shape_is_caught(monkeypatch):
    """The annotation, not only the function, is what is checked: a sampler that returned the
    wrong grid would fail."""
    real = grf._sample_periodic
    monkeypatch.setattr(grf, "_sample_periodic", lambda keys, lam: real(keys, lam)[:, :-1])
    with pytest.raises(TypeCheckError):
        checked(grf.sample)(0, 2, 8)


def _fields(n=8, s=6, c_in=2, c_out=1):
    rng = np.random.default_rng(0)
    return FieldData(rng.normal(size=(n, s, s, c_in)), rng.normal(size=(n, s, s, c_out)))


def test_fielddata_take_and_batches():
    data = _fields()
    x, y = checked(data.take)([3, 1, 3])
    assert x.shape == (3, 6, 6, 2) and y.shape == (3, 6, 6, 1)

    hint = typing.get_type_hints(FieldData.batches)["return"]
    (batch_type,) = typing.get_args(hint)
    with data.batches(4, shard=False, prefetch=0) as it:
        for batch in it:
            with jaxtyped("context"):  # x and y share batch and spatial sizes
                assert is_bearable(batch, batch_type)
    x, y = data.take([0, 1])
    with jaxtyped("context"):
        assert not is_bearable((jax.numpy.asarray(x), jax.numpy.asarray(y[:1])),
                                        batch_type)


def test_fielddata_from_dataset_batches_have_the_annotated_shapes():
    g = np.linspace(0, 1, 5)
    ds = xr.Dataset({"a": (("sample", "x", "y"), np.ones((4, 5, 5), np.float32)),
                     "u": (("sample", "x", "y"), np.zeros((4, 5, 5), np.float32))},
                    coords={"x": g, "y": g},
                    attrs={"pde": "darcy", "input_vars": ["a"], "output_vars": ["u"]})
    data = FieldData.from_dataset(ds, coords=True)
    x, y = checked(data.take)(np.array([0, 2]))
    assert x.shape == (2, 5, 5, 3) and y.shape == (2, 5, 5, 1)
