"""The NN-to-NO models of the registry: unet-no (a converted U-Net), vit-no, attention-no."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import operators
from operators.convert import general_path

SMALL = {
    "unet-no": {"width": 4, "channel_mult": [1, 2], "groups": 2, "base_resolution": 16},
    "vit-no": {"embed": 8, "depth": 1, "heads": 2, "mlp_ratio": 1, "patch_size": 4, "base_resolution": 16},
    "attention-no": {"width": 8, "n_layers": 1, "heads": 2, "mlp_hidden": 8, "projection_hidden": 8},
}
NAMES = list(SMALL)


def build(name, periodic=False, dim=2, c_in=1, c_out=1, **kw):
    hp = dict(SMALL[name], padding="wrap" if periodic else "zeros", **kw)
    return operators.build_model(name, c_in, c_out, dim=dim, rngs=nnx.Rngs(0), **hp)


def field(n, periodic, dim=2):
    x = np.arange(n) / n if periodic else np.linspace(0, 1, n)
    g = np.meshgrid(*[x] * dim, indexing="ij")
    if periodic:
        f = np.sin(2 * np.pi * g[0] + 0.3) * np.prod([np.cos(2 * np.pi * a) for a in g[1:]], axis=0)
    else:
        f = np.exp(np.sin(2 * g[0]) + np.prod(g, axis=0))
    return jnp.asarray(f[None, ..., None], jnp.float32)


def test_registered_with_small_defaults():
    for name in NAMES:
        assert name in operators.MODELS
        hp = operators.default_hparams(name, pde="burgers")
        assert hp["padding"] == "wrap"
        abstract = nnx.eval_shape(lambda n=name: operators.build_model(n, 1, 1, rngs=nnx.Rngs(0)))
        assert 200_000 <= operators.count_params(abstract) <= 600_000, (name, operators.count_params(abstract))


@pytest.mark.parametrize("name", [pytest.param("unet-no", marks=pytest.mark.slow),
                                  pytest.param("vit-no", marks=pytest.mark.slow), "attention-no"])
def test_any_resolution_and_output_shape(name):
    model = build(name, c_in=2, c_out=3)
    for shape in [(17, 17), (41, 21)]:  # 16 cells refined by 1 / 2.5, 1.25 (shapes only: traced)
        y = jax.eval_shape(lambda x: model(x), jax.ShapeDtypeStruct((2, *shape, 2), jnp.float32))
        assert y.shape == (2, *shape, 3)
    y = jax.jit(lambda x: model(x))(jnp.ones((2, 33, 25, 2)))  # refined by 2 / 1.5
    assert y.shape == (2, 33, 25, 3) and bool(jnp.isfinite(y).all())


@pytest.mark.parametrize("name", [pytest.param("unet-no", marks=pytest.mark.slow), "vit-no", "attention-no"])
def test_converges_under_refinement(name):
    """Nested node grids 17 -> 33 -> 65 with a smooth input: the outputs on the coarsest grid's
    points converge (the differences shrink by more than 1.6 per refinement; at least first order)."""
    model = build(name)
    f = jax.jit(lambda x: model(x))
    sizes = (17, 33, 65)
    outs = [np.asarray(f(field(n, False)))[0, ::(n - 1) // 16, ::(n - 1) // 16, 0] for n in sizes]
    d = [float(np.sqrt(np.mean((a - b) ** 2))) for a, b in itertools.pairwise(outs)]
    assert d[1] < d[0] / 1.6, d


@pytest.mark.parametrize("name", [pytest.param("unet-no", marks=pytest.mark.slow),
                                  pytest.param("vit-no", marks=pytest.mark.slow), "attention-no"])
def test_periodic_second_order(name):
    model = build(name, periodic=True)
    f = jax.jit(lambda x: model(x))
    sizes = (16, 32, 64, 128)
    outs = [np.asarray(f(field(n, True)))[0, ::n // 16, ::n // 16, 0] for n in sizes]
    d = [float(np.sqrt(np.mean((a - b) ** 2))) for a, b in itertools.pairwise(outs)]
    orders = [float(np.log2(d[i] / d[i + 1])) for i in range(2)]
    # attention-no: pointwise maps and rectangle-rule integrals of smooth periodic integrands
    assert orders[-1] > 1.7 or max(d) < 1e-5, (d, orders)


@pytest.mark.slow  # 20+ s; test_convert's U-Net base-grid equality is the fast check
def test_unet_no_is_the_plain_unet_on_the_reference_grid():
    hp = {k: v for k, v in SMALL["unet-no"].items() if k != "base_resolution"}
    plain = operators.UNet(1, 1, rngs=nnx.Rngs(0), **hp)
    model = build("unet-no")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 17, 17, 1)), jnp.float32)
    want = np.asarray(jax.jit(lambda v: plain(v))(x))
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: model(v))(x)), want)
    with general_path():
        np.testing.assert_allclose(np.asarray(jax.jit(lambda v: model(v))(x)), want, rtol=1e-4, atol=1e-5)
    # the plain network passes convert's own checks (1x1 convolutions stay pointwise)
    converted = operators.convert(plain, x[:1])
    assert type(converted.lift) is nnx.Conv and type(converted.down[0]).__name__ == "ConvertedConv"


@pytest.mark.slow  # moved out of the 6-minute default suite
def test_unet_no_refuses_grids_its_strides_do_not_divide():
    model = build("unet-no", channel_mult=[1, 2, 2])

    def shape(n):
        return jax.eval_shape(lambda x: model(x), jax.ShapeDtypeStruct((1, n, n, 1), jnp.float32)).shape

    assert shape(21) == (1, 21, 21, 1)  # 16 cells x 1.25: 20 -> 10 -> 5
    with pytest.raises(ValueError, match=r"layer 'down\.1'.*cannot serve a grid of 8 points"):
        shape(15)  # 14 cells: 14 -> 7 -> 3.5
    odd = build("unet-no", base_resolution=15, channel_mult=[1, 2])  # a 16-point training grid
    assert jax.eval_shape(lambda x: odd(x), jax.ShapeDtypeStruct((1, 31, 31, 1), jnp.float32)).shape[1] == 31
    with pytest.raises(ValueError, match="cannot serve a grid of 32 points"):
        jax.eval_shape(lambda x: odd(x), jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32))


@pytest.mark.parametrize("name", [pytest.param("unet-no", marks=pytest.mark.slow), "vit-no", "attention-no"])
def test_1d(name):
    model = build(name, dim=1)
    spec = jax.ShapeDtypeStruct((1, 33, 1), jnp.float32)
    assert jax.eval_shape(lambda x: model(x), spec).shape == (1, 33, 1)


def test_attention_no_softmax_and_linear_agree_in_shape():
    x = field(17, False)
    for kind in ("softmax", "linear"):
        model = build("attention-no", attention=kind)
        y = jax.jit(lambda v, m=model: m(v))(x)
        assert y.shape == (1, 17, 17, 1) and bool(jnp.isfinite(y).all())


def test_fit_base_resolution():
    from operators.registry import fit_base_resolution

    assert fit_base_resolution("unet-no", {}, (65, 65), False) == 64  # exactly the training grid's cells
    assert fit_base_resolution("unet-no", {}, (64, 64), False) == 63
    assert fit_base_resolution("vit-no", {"patch_size": 8}, (64, 64), False) == 64  # nearest multiple
    assert fit_base_resolution("vit-no", {}, (48,), True) == 48
    assert fit_base_resolution("attention-no", {}, (65, 65), False) is None


# ------------------------------------------------------------------------------------------
# the plain networks of the comparison (cnn, unet, vit) and the converted CNN (cnn-no)
# ------------------------------------------------------------------------------------------
PLAIN_SMALL = {
    "cnn": {"width": 4, "depth": 2, "projection_hidden": 4},
    "unet": {"width": 4, "channel_mult": [1, 2], "groups": 2},
    "vit": {"embed": 8, "depth": 1, "heads": 2, "mlp_ratio": 1, "patch_size": 4, "base_resolution": 16},
}


def test_plain_baselines_registered_at_comparable_sizes():
    """cnn, cnn-no, unet, vit are in the registry, within 15% of the parameters of unet-no."""
    ref = operators.count_params(nnx.eval_shape(lambda: operators.build_model("unet-no", 3, 1, rngs=nnx.Rngs(0))))
    for name in ("cnn", "cnn-no", "unet", "vit"):
        n = operators.count_params(nnx.eval_shape(lambda m=name: operators.build_model(m, 3, 1, rngs=nnx.Rngs(0))))
        assert abs(n - ref) < 0.15 * ref, (name, n, ref)


@pytest.mark.slow
def test_cnn_no_is_the_plain_cnn_on_the_training_grid_and_converges_off_it():
    hp = PLAIN_SMALL["cnn"]
    plain = operators.build_model("cnn", 1, 1, rngs=nnx.Rngs(0), **hp)
    conv = operators.build_model("cnn-no", 1, 1, rngs=nnx.Rngs(0), base_resolution=16, **hp)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 17, 17, 1)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(conv(x)), np.asarray(plain(x)))  # same parameters, same output
    f, g = jax.jit(lambda v: conv(v)), jax.jit(lambda v: plain(v))
    sizes = (17, 33, 65)
    outs = {m: [np.asarray(h(field(n, False)))[0, ::(n - 1) // 16, ::(n - 1) // 16, 0] for n in sizes]
            for m, h in (("no", f), ("plain", g))}
    d = {m: [float(np.sqrt(np.mean((a - b) ** 2))) for a, b in itertools.pairwise(o)] for m, o in outs.items()}
    assert d["no"][1] < d["no"][0] / 1.6, d  # the operator converges on nested grids
    # the plain CNN reads 3 grid points at every resolution (a kernel shrinking with the grid): on
    # the finer grids it drifts from what it computes on its training grid far more
    drift = {m: float(np.sqrt(np.mean((o[-1] - o[0]) ** 2))) for m, o in outs.items()}
    assert drift["plain"] > 2 * drift["no"], drift


@pytest.mark.slow
def test_plain_unet_and_cnn_run_on_any_grid():
    for name in ("unet", "cnn"):
        model = operators.build_model(name, 2, 3, rngs=nnx.Rngs(0), **PLAIN_SMALL[name])
        for shape in [(17, 17), (33, 21)]:
            spec = jax.ShapeDtypeStruct((2, *shape, 2), jnp.float32)
            assert jax.eval_shape(lambda v, m=model: m(v), spec).shape == (2, *shape, 3)


@pytest.mark.slow
def test_plain_vit_positional_embedding_off_the_training_grid():
    """The plain ViT learns 5x5 token embeddings on its 17-point grid (4-point patches): on a
    33-point grid it resizes them (bilinear), or refuses with a message naming the grid."""
    model = operators.build_model("vit", 1, 2, rngs=nnx.Rngs(0), **PLAIN_SMALL["vit"])
    assert model.pos.shape == (5, 5, 8)
    x = field(17, False)
    y = model(x)
    assert y.shape == (1, 17, 17, 2) and bool(jnp.isfinite(y).all())
    y = jax.jit(lambda v: model(v))(field(33, False))
    assert y.shape == (1, 33, 33, 2) and bool(jnp.isfinite(y).all())
    strict = operators.build_model("vit", 1, 2, rngs=nnx.Rngs(0), pos_interp="refuse", **PLAIN_SMALL["vit"])
    np.testing.assert_array_equal(np.asarray(strict(x)), np.asarray(model(x)))
    with pytest.raises(ValueError, match=r"learned for 5\^2 tokens \(grid of 17 points\).*9x9 tokens"):
        strict(field(33, False))
    with pytest.raises(ValueError, match="pos_interp"):
        operators.build_model("vit", 1, 1, pos_interp="nearest", rngs=nnx.Rngs(0))


def test_fit_base_resolution_of_the_plain_vit_and_cnn_no():
    from operators.registry import fit_base_resolution

    assert fit_base_resolution("cnn-no", {}, (65, 65), False) == 64
    assert fit_base_resolution("vit", {}, (65, 65), False) == 64
    assert fit_base_resolution("vit", {}, (64, 64), True) == 64
    assert fit_base_resolution("cnn", {}, (65, 65), False) is None
