"""Darcy finite volumes against a manufactured solution (measured order 2) and a loop-built stencil."""

import time

import jax
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pde_data import darcy
from pde_data.schema import validate


def _manufactured(s):
    """u = sin(pi x) sin(2 pi y), a = 2 + sin(2 pi x + 1) cos(pi y); f = -div(a grad u)."""
    x = np.linspace(0, 1, s)
    X, Y = np.meshgrid(x, x, indexing="ij")
    u = np.sin(np.pi * X) * np.sin(2 * np.pi * Y)
    ux = np.pi * np.cos(np.pi * X) * np.sin(2 * np.pi * Y)
    uy = 2 * np.pi * np.sin(np.pi * X) * np.cos(2 * np.pi * Y)
    a = 2 + np.sin(2 * np.pi * X + 1) * np.cos(np.pi * Y)
    ax = 2 * np.pi * np.cos(2 * np.pi * X + 1) * np.cos(np.pi * Y)
    ay = -np.pi * np.sin(2 * np.pi * X + 1) * np.sin(np.pi * Y)
    f = 5 * np.pi**2 * a * u - ax * ux - ay * uy
    return a, f, u


def test_manufactured_solution_converges_at_second_order():
    errors = []
    for s in (17, 33, 65):
        a, f, u = _manufactured(s)
        uh = darcy.solve(a[None], f[None])[0]
        assert np.all(uh[[0, -1], :] == 0) and np.all(uh[:, [0, -1]] == 0)
        errors.append(np.abs(uh - u).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 2e-3
    assert np.all((orders > 1.8) & (orders < 2.3)), (errors, orders)


def _loop_matrix(a):
    """The 5-point finite-volume matrix written with plain loops (independent of the vectorised one)."""
    s = a.shape[0]
    m = s - 2
    h2 = (1.0 / (s - 1)) ** 2
    mat = np.zeros((m * m, m * m))

    def harm(p, q):
        return 2 * p * q / (p + q)

    for i in range(1, s - 1):
        for j in range(1, s - 1):
            r = (i - 1) * m + (j - 1)
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                c = harm(a[i, j], a[i + di, j + dj]) / h2
                mat[r, r] += c
                ii, jj = i + di, j + dj
                if 1 <= ii <= s - 2 and 1 <= jj <= s - 2:
                    mat[r, (ii - 1) * m + (jj - 1)] -= c
    return mat


def test_assembled_matrix_equals_loop_built_stencil_and_solve_matches_spsolve():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 5.0, size=(2, 7, 7))
    mats = darcy.assemble(a)
    for ai, mat in zip(a, mats):
        np.testing.assert_allclose(mat.toarray(), _loop_matrix(ai), rtol=1e-13, atol=1e-10)
    f = rng.normal(size=(2, 7, 7))
    u = darcy.solve(a, f)
    for i, mat in enumerate(mats):
        ref = spla.spsolve(mat.tocsc(), f[i, 1:-1, 1:-1].ravel())
        np.testing.assert_allclose(u[i, 1:-1, 1:-1].ravel(), ref, rtol=1e-10, atol=1e-12)


def test_constant_coefficient_scaling_and_maximum_principle():
    a = np.full((1, 33, 33), 1.0)
    u1 = darcy.solve(a)
    u4 = darcy.solve(4.0 * a)
    np.testing.assert_allclose(u4, u1 / 4.0, rtol=1e-12)
    assert np.all(u1[0, 1:-1, 1:-1] > 0)
    # Poisson -Laplace u = 1 on the unit square: u(1/2, 1/2) = 0.0736713532...
    assert u1[0, 16, 16] == pytest.approx(0.0736713532, rel=2e-3)


def test_two_dimensional_input_and_batch_agree():
    a = darcy.coefficient(3, 2, 17)
    u = darcy.solve(a)
    np.testing.assert_allclose(darcy.solve(a[1]), u[1], rtol=1e-14)


@pytest.mark.parametrize(
    "a, f, err, match",
    [(-np.ones((1, 5, 5)), 1.0, ValueError, "positive"),
     (np.full((1, 5, 5), np.nan), 1.0, ValueError, "NaN"),
     (np.ones((1, 5, 6)), 1.0, ValueError, "shape"),
     (np.ones((1, 2, 2)), 1.0, ValueError, "s >= 3"),
     (np.ones((2, 5, 5)), np.ones((3, 5, 5)), ValueError, "f must"),
     (np.array([["a"]]), 1.0, TypeError, "numeric")])
def test_bad_input_is_named(a, f, err, match):
    with pytest.raises(err, match=match):
        darcy.solve(a, f)


def test_generate_is_fast_follows_schema_and_is_reproducible():
    t0 = time.perf_counter()
    ds = darcy.generate(0, 32, 32)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0
    validate(ds)
    assert ds["a"].shape == (32, 32, 32) and ds["a"].dtype == np.float32
    assert set(np.unique(ds["a"].values)) == {3.0, 12.0}
    u = ds["u"].values
    assert np.all(u[:, 1:-1, 1:-1] > 0) and np.all(u[:, 0] == 0)
    assert ds.attrs["pde"] == "darcy" and ds.attrs["seed"] == 0
    np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 32))
    again = darcy.generate(0, 4, 32, chunk_size=3)
    np.testing.assert_array_equal(again["a"].values, ds["a"].values[:4])
    np.testing.assert_allclose(again["u"].values, u[:4], rtol=1e-6)
    keyed = darcy.generate(jax.random.key(0), 4, 32)  # a key is the same as its seed
    np.testing.assert_array_equal(keyed["a"].values, ds["a"].values[:4])
    assert keyed.attrs["seed"] == -1 and list(keyed.attrs["key_data"]) == [0, 0]


def test_generate_on_a_fine_grid_subsamples_the_fine_solution():
    fine = darcy.generate(5, 2, 33)
    coarse = darcy.generate(5, 2, 17, solve_resolution=33)
    np.testing.assert_array_equal(coarse["a"].values, fine["a"].values[:, ::2, ::2])
    np.testing.assert_array_equal(coarse["u"].values, fine["u"].values[:, ::2, ::2])
    assert coarse.attrs["solve_resolution"] == 33
    with pytest.raises(ValueError, match="subsampling"):
        darcy.generate(5, 2, 16, solve_resolution=33)


@pytest.mark.slow
def test_fno_recipe_421_subsampled_to_85():
    ds = darcy.generate(0, 2, 85, solve_resolution=421)
    validate(ds)
    assert ds["u"].shape == (2, 85, 85) and ds.attrs["solve_resolution"] == 421
    u = ds["u"].values
    assert 0.002 < u.max() < 0.05 and np.all(u[:, 1:-1, 1:-1] > 0)
