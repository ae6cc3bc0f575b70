"""U-NO: any grid and dimension, skip structure, convergence under refinement."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from flax import nnx

import operators

from .operators_reference import cauchy_differences

SMALL = {"width": 4, "modes": [4, 3, 2], "channel_mult": [1, 2, 2], "projection_hidden": 8}


@pytest.mark.parametrize("dim, shape", [(1, (45,)), pytest.param(2, (21, 18), marks=pytest.mark.slow)])
def test_any_resolution(dim, shape):
    model = operators.build_model("uno", 1, 2, dim=dim, rngs=nnx.Rngs(0), **SMALL)
    y = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, *shape, 1)))
    assert y.shape == (2, *shape, 2) and bool(jnp.isfinite(y).all())


@pytest.mark.slow
@pytest.mark.parametrize("periodic", [False, True])
def test_converges_under_refinement(periodic):
    model = operators.build_model("uno", 1, 1, rngs=nnx.Rngs(0), **dict(SMALL, padding="wrap" if periodic else "zeros"))
    sizes = (16, 32, 64) if periodic else (17, 33, 65)
    d = cauchy_differences(model, sizes, periodic)
    assert d[1] < 0.7 * d[0], d


@pytest.mark.slow
def test_levels_and_channels():
    model = operators.build_model("uno", 3, 1, rngs=nnx.Rngs(0), **SMALL)
    assert len(model.down) == 3 and len(model.up) == 2
    assert model.down[2].linear.kernel.shape == (8, 8)  # bottleneck at width * channel_mult[2]
    assert model.up[1].linear.kernel.shape == (16, 4)  # level-1 features + encoder skip -> level 0
    with pytest.raises(ValueError, match="one entry per level"):
        operators.build_model("uno", 1, 1, rngs=nnx.Rngs(0), modes=[4, 3], channel_mult=[1, 2, 4])
