"""FNO: parameter count of the classic configuration, any grid, convergence under refinement."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from flax import nnx

import operators

from .operators_reference import cauchy_differences

SMALL = {"width": 6, "modes": 4, "n_layers": 2, "projection_hidden": 8}


def test_classic_parameter_count():
    """Li et al.'s FNO-2D (width 32, 12 modes, 4 layers, projection 128) with 3 input channels
    (field + coordinates) has 2,368,001 parameters (complex weights counted twice)."""
    model = nnx.eval_shape(lambda: operators.build_model("fno", 3, 1, rngs=nnx.Rngs(0)))
    assert operators.count_params(model) == 2_368_001


@pytest.mark.parametrize("dim, shape", [(1, (37,)), (2, (21, 16)),
                                        pytest.param(3, (8, 9, 10), marks=pytest.mark.slow)])
def test_any_resolution_and_dimension(dim, shape):
    model = operators.build_model("fno", 2, 3, dim=dim, rngs=nnx.Rngs(0), **dict(SMALL, modes=3))
    y = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, *shape, 2)))
    assert y.shape == (2, *shape, 3) and bool(jnp.isfinite(y).all())


def test_periodic_band_limited_input_gives_identical_outputs():
    """On periodic grids the Fourier layers are exact: the outputs at 16, 32 coincide."""
    model = operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), **dict(SMALL, padding="wrap"))
    d = cauchy_differences(model, (16, 32), periodic=True)
    assert d[0] < 1e-5, d


@pytest.mark.slow
def test_converges_on_node_grids_with_domain_padding():
    model = operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), **dict(SMALL, domain_padding=0.25, norm="instance"))
    d = cauchy_differences(model, (17, 33, 65), periodic=False)
    assert d[1] < 0.7 * d[0], d


def test_positional_embedding_adds_coordinates():
    model = operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), **dict(SMALL, positional_embedding=True))
    assert model.lift.kernel.shape == (3, 6)
    assert model(jnp.ones((1, 9, 9, 1))).shape == (1, 9, 9, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), depth=3)
    with pytest.raises(ValueError, match="unknown norm"):
        operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), norm="batch")
    model = operators.build_model("fno", 1, 1, rngs=nnx.Rngs(0), **SMALL)
    with pytest.raises(ValueError, match="channels"):
        model(jnp.ones((1, 8, 8, 3)))
    with pytest.raises(TypeError, match="floating"):
        model(jnp.ones((1, 8, 8, 1), jnp.int32))


def test_a_batch_of_zero_samples_is_named():
    model = operators.build_model("fno", 1, 1, dim=1, rngs=nnx.Rngs(0), width=4, modes=4, n_layers=1)
    with pytest.raises(ValueError, match="0 samples"):
        model(jnp.zeros((0, 16, 1)))
