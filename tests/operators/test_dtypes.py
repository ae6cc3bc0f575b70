"""``param_dtype`` / ``dtype`` of the operator models: with ``jax_enable_x64`` a float64 model has a
float64 parameter tree (no float32 leaves mixed in), and float32 is the default either way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import operators

#: the models that thread param_dtype / dtype through every layer (the others: see DTYPE_PENDING)
DTYPE_MODELS = ["mgno", "mgno-ns", "mgno-helmholtz", "mgno-conv", "fno", "uno"]
#: small configurations, so that building them (eagerly, under x64) takes milliseconds
SMALL = {"mgno": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "grid_size": 16},
         "mgno-ns": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "grid_size": 16},
         "mgno-helmholtz": {"width": 2, "n_layers": 1, "smoothing": [1, 1, 2], "grid_size": 21},
         "mgno-conv": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "base_resolution": 16},
         "fno": {"width": 4, "modes": 3, "n_layers": 1, "projection_hidden": 4, "norm": "instance"},
         "uno": {"width": 4, "modes": [3, 2], "channel_mult": [1, 2], "projection_hidden": 4,
                 "norm": "instance"}}
GRID = {"mgno-helmholtz": 21}


def _leaf_dtypes(model) -> set:
    return {str(x.dtype) for x in jax.tree.leaves(nnx.state(model, nnx.Param))}


def test_every_registry_model_is_covered():
    pending = set(operators.MODELS) - set(DTYPE_MODELS)
    assert pending <= {"unet-no", "vit-no", "attention-no", "cnn", "cnn-no", "unet", "vit"}


@pytest.mark.parametrize("name", DTYPE_MODELS)
def test_float64_parameter_tree_under_x64(name):
    with jax.enable_x64(True):
        default = nnx.eval_shape(lambda: operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), **SMALL[name]))
        f64 = nnx.eval_shape(lambda: operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64,
                                                           **SMALL[name]))
        assert _leaf_dtypes(default) == {"float32"}
        assert _leaf_dtypes(f64) == {"float64"}


@pytest.mark.slow
@pytest.mark.parametrize("name", DTYPE_MODELS)
def test_float64_model_computes_in_float64(name):
    """A float64 model gives float64 outputs; computed in float32 (``dtype``) the same function
    up to float32 rounding."""
    with jax.enable_x64(True):
        n = GRID.get(name, 16)
        x = jnp.asarray(np.random.default_rng(0).normal(size=(1, n, n, 1)))
        y64 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64, **SMALL[name])(x)
        y32 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float64,
                                    **SMALL[name])(x)
        assert y64.dtype == jnp.float64 and y32.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(y32), np.asarray(y64), rtol=1e-3, atol=1e-4 * float(jnp.abs(y64).max()))


@pytest.mark.parametrize("name", DTYPE_MODELS)
def test_float32_by_default_without_x64(name):
    model = nnx.eval_shape(lambda: operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), **SMALL[name]))
    assert _leaf_dtypes(model) == {"float32"}
