"""``param_dtype`` / ``dtype`` of the operator models: with ``jax_enable_x64`` a float64 model has a
float64 parameter tree (no float32 leaves mixed in), and float32 is the default either way."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import operators

#: the models that thread param_dtype / dtype through every layer (the NN-to-NO ones: NNO below)
DTYPE_MODELS = ["mgno", "mgno-ns", "mgno-helmholtz", "mgno-conv", "fno", "uno"]
#: the NN-to-NO models and the plain networks they are compared with
NNO = ["cnn", "cnn-no", "unet", "unet-no", "vit", "vit-no", "attention-no"]
#: small configurations, so that building them (eagerly, under x64) takes milliseconds
SMALL = {"mgno": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "grid_size": 16},
         "mgno-ns": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "grid_size": 16},
         "mgno-helmholtz": {"width": 2, "n_layers": 1, "smoothing": [1, 1, 2], "grid_size": 21},
         "mgno-conv": {"width": 3, "n_layers": 1, "smoothing": [[1, 0], [2, 0]], "base_resolution": 16},
         "fno": {"width": 4, "modes": 3, "n_layers": 1, "projection_hidden": 4, "norm": "instance"},
         "uno": {"width": 4, "modes": [3, 2], "channel_mult": [1, 2], "projection_hidden": 4,
                 "norm": "instance"},
         "cnn": {"width": 4, "depth": 1, "projection_hidden": 4},
         "cnn-no": {"width": 4, "depth": 1, "projection_hidden": 4, "base_resolution": 8},
         "unet": {"width": 4, "channel_mult": [1, 2], "groups": 2},
         "unet-no": {"width": 4, "channel_mult": [1, 2], "groups": 2, "base_resolution": 8},
         "vit": {"embed": 8, "depth": 1, "heads": 2, "patch_size": 4, "base_resolution": 8},
         "vit-no": {"embed": 8, "depth": 1, "heads": 2, "patch_size": 4, "base_resolution": 8},
         "attention-no": {"width": 8, "n_layers": 1, "heads": 2, "mlp_hidden": 8, "projection_hidden": 4}}
#: the converted models on a grid refining their reference grid (8 cells) twice: the quadrature path
REFINED = {"cnn-no": 17, "unet-no": 17, "vit-no": 17}
GRID = {"mgno-helmholtz": 21}


def _leaf_dtypes(model) -> set:
    return {str(x.dtype) for x in jax.tree.leaves(nnx.state(model, nnx.Param))}


def test_every_registry_model_is_covered():
    assert set(operators.MODELS) == set(DTYPE_MODELS) | set(NNO)


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


@pytest.mark.parametrize("name", NNO)
def test_output_dtypes_follow_dtype(name):
    """Traced only (no computation): under x64 a float64 model has an all-float64 parameter tree
    and float64 outputs, on the base grid and on a refined grid (the converted layers'
    quadrature path); ``dtype=bfloat16`` computes in bfloat16 with the default float32
    parameters."""
    with jax.enable_x64(True):
        m = nnx.eval_shape(lambda: operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64,
                                                         **SMALL[name]))
        assert _leaf_dtypes(m) == {"float64"}
        for n in {9, REFINED.get(name, 9)}:
            x = jax.ShapeDtypeStruct((1, n, n, 1), jnp.float64)
            assert nnx.eval_shape(lambda m, x: m(x), m, x).dtype == jnp.float64
    m16 = nnx.eval_shape(lambda: operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), dtype=jnp.bfloat16, **SMALL[name]))
    assert _leaf_dtypes(m16) == {"float32"}
    for n in {9, REFINED.get(name, 9)}:
        x = jax.ShapeDtypeStruct((1, n, n, 1), jnp.float32)
        assert nnx.eval_shape(lambda m, x: m(x), m16, x).dtype == jnp.bfloat16


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFINED))
def test_converted_models_compute_in_float64_off_the_base_grid(name):
    """On a refined grid (the quadrature path of the converted layers, not the original layers)
    a float64 model agrees with its float32-computed self to float32 rounding."""
    with jax.enable_x64(True):
        n = REFINED[name]
        x = jnp.asarray(np.random.default_rng(1).normal(size=(1, n, n, 1)))
        y64 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float64, **SMALL[name])(x)
        y32 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), dtype=jnp.float32, param_dtype=jnp.float64,
                                    **SMALL[name])(x)
        assert y64.dtype == jnp.float64 and y32.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(y32), np.asarray(y64), rtol=1e-3, atol=1e-4 * float(jnp.abs(y64).max()))


@pytest.mark.slow
@pytest.mark.parametrize("name", NNO)
def test_bfloat16_compute_with_float32_parameters(name):
    """``dtype=bfloat16``: a bfloat16 output close to the float32 model's (bfloat16 keeps 8 bits
    of mantissa), on the base grid and on a refined one."""
    m32 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), **SMALL[name])
    m16 = operators.build_model(name, 1, 1, rngs=nnx.Rngs(0), dtype=jnp.bfloat16, **SMALL[name])
    for n in {9, REFINED.get(name, 17)}:
        x = jnp.asarray(np.random.default_rng(2).normal(size=(1, n, n, 1)), jnp.float32)
        y32, y16 = jax.jit(lambda v: m32(v))(x), jax.jit(lambda v: m16(v))(x)
        assert y16.dtype == jnp.bfloat16
        scale = float(jnp.abs(y32).max())
        np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), rtol=0, atol=0.05 * scale)
