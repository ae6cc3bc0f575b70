"""The PFN paper's architecture and training choices as options (issue 14): post-LN layers,
zero-initialised residual output projections, the weighted context-size sampler; each does
what it should and nothing else, and configs written before the options build today's model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from pde_data.points import PointSetData
from pfn.checkpoint import build_model
from pfn.model import FOURIER_OCTAVES, PFN, EncoderLayer, fourier_features
from pfn.train import (
    ARCH_DEFAULTS,
    LEGACY,
    build_config,
    context_size_probs,
    draw_context_size,
    legacy_config,
    make_sampler,
)

from .conftest import TINY, params_of

D = 16


def _h(seed=0, b=2, n=7):
    return 3.0 * jax.random.normal(jax.random.key(seed), (b, n, D)) + 1.5


def _ctx_mask(n, n_ctx):
    return jnp.broadcast_to((jnp.arange(n) < n_ctx)[None, None, None, :], (1, 1, n, n))


def test_post_ln_layer_output_is_normalised_and_pre_ln_is_not():
    h = _h()
    post = EncoderLayer(D, 2, 32, norm="post", rngs=nnx.Rngs(0))(h, _ctx_mask(7, 4))
    np.testing.assert_allclose(post.mean(-1), 0.0, atol=1e-5)  # LN's init: scale 1, bias 0
    np.testing.assert_allclose(post.std(-1), 1.0, atol=1e-3)
    pre = EncoderLayer(D, 2, 32, norm="pre", rngs=nnx.Rngs(0))(h, _ctx_mask(7, 4))
    assert np.abs(np.asarray(pre.mean(-1))).max() > 0.5  # the residual stream keeps its offset
    # the static-slice attention path gives the same post-LN output
    sliced = EncoderLayer(D, 2, 32, norm="post", rngs=nnx.Rngs(0))(h, None, n_context=4)
    np.testing.assert_allclose(sliced, post, atol=1e-5)


def test_zero_init_makes_every_pre_ln_layer_the_identity_and_changes_nothing_else():
    kw = {"d_model": D, "n_heads": 2, "n_layers": 3, "d_ff": 32}
    zero, default = (PFN(2, 10, zero_init=z, rngs=nnx.Rngs(0), **kw) for z in (True, False))
    h = _h()
    for layer in zero.layers:
        np.testing.assert_array_equal(layer(h, _ctx_mask(7, 4)), h)
        np.testing.assert_array_equal(layer(h, None, n_context=4), h)
    # the residual branches' output projections are zero; every other weight is the default
    # initialisation's (the biases start at zero in both)
    za, da = (nnx.to_flat_state(nnx.state(m, nnx.Param)) for m in (zero, default))
    branch_out = {("layers", i, *p) for i in range(3) for p in (
        ("attn", "out", "kernel"), ("attn", "out", "bias"), ("ff2", "kernel"), ("ff2", "bias"))}
    zeroed = {path for path, v in za if not np.any(np.asarray(v[...]))}
    assert branch_out <= zeroed
    differ = {pa for (pa, a), (pb, b) in zip(za, da, strict=True)
              if pa != pb or not np.array_equal(a[...], b[...])}
    assert differ == {p for p in branch_out if p[-1] == "kernel"}
    # so the untrained network is the head on the normalised embedding
    x = jax.random.normal(jax.random.key(1), (2, 7, 2))
    y = jax.random.normal(jax.random.key(2), (2, 7))
    is_ctx = (jnp.arange(7) < 4)[None, :, None]
    emb = zero.x_embed(x) + jnp.where(is_ctx, zero.y_embed(y[..., None]), 0.0)
    np.testing.assert_allclose(zero(x, y, 4), zero.head(zero.norm(emb)), atol=1e-5)


def test_zero_init_post_ln_layer_is_the_two_norms():
    layer = EncoderLayer(D, 2, 32, norm="post", zero_init=True, rngs=nnx.Rngs(0))
    h = _h()
    np.testing.assert_allclose(layer(h, _ctx_mask(7, 4)), layer.norm2(layer.norm1(h)),
                               atol=1e-6)


def test_a_post_ln_model_has_no_final_norm():
    post = PFN(1, 10, d_model=D, n_heads=2, n_layers=1, d_ff=32, norm="post", rngs=nnx.Rngs(0))
    pre = PFN(1, 10, d_model=D, n_heads=2, n_layers=1, d_ff=32, rngs=nnx.Rngs(0))
    assert not hasattr(post, "norm") and hasattr(pre, "norm")
    with pytest.raises(ValueError, match="norm must be one of"):
        PFN(1, 10, d_model=D, n_heads=2, n_layers=1, d_ff=32, norm="mid", rngs=nnx.Rngs(0))


def test_weighted_context_probabilities_are_the_reference_samplers():
    # PFNs' get_weighted_single_eval_pos_sampler(max_len=7, min_len=3, p): weights of
    # 3, 4, 5, 6 are 1/4^p, 1/3^p, 1/2^p, 1
    for p in (1.0, 0.4):
        w = np.array([4.0, 3.0, 2.0, 1.0]) ** -p
        np.testing.assert_allclose(context_size_probs(3, 6, "weighted", p), w / w.sum())
    np.testing.assert_allclose(context_size_probs(3, 6, "weighted", 0.0), 0.25)
    np.testing.assert_allclose(context_size_probs(3, 6, "uniform"), 0.25)
    with pytest.raises(ValueError, match="unknown context sampler"):
        context_size_probs(3, 6, "harmonic")


@pytest.mark.parametrize("sampler", ["weighted", "uniform"])
def test_sampled_context_sizes_follow_the_exact_probabilities(sampler):
    cfg = {"min_context": 2, "max_context": 9, "context_sampler": sampler, "context_power": 1.0}
    n_draws = 40_000
    keys = jax.random.split(jax.random.key(0), n_draws)
    draws = np.asarray(jax.jit(jax.vmap(draw_context_size(cfg)))(keys))
    counts = np.bincount(draws, minlength=10)[2:]
    assert counts.sum() == n_draws  # nothing outside [min_context, max_context]
    p = context_size_probs(2, 9, sampler, 1.0)
    # each frequency within 4.5 binomial standard deviations of its probability
    np.testing.assert_array_less(np.abs(counts / n_draws - p),
                                 4.5 * np.sqrt(p * (1 - p) / n_draws))
    chi2 = np.sum((counts - n_draws * p) ** 2 / (n_draws * p))
    assert chi2 < 24.3  # the 0.999 quantile of chi-square with 7 degrees of freedom


def test_a_config_without_the_keys_draws_uniform_sizes_exactly_as_before():
    old = {"min_context": 1, "max_context": 100}
    key = jax.random.key(3)
    assert int(draw_context_size(old)(key)) == int(jax.random.randint(key, (), 1, 101))


def test_weighted_sampler_on_a_data_file_splits_at_the_drawn_size():
    rng = np.random.default_rng(0)
    data = PointSetData(rng.normal(size=(5, 30, 1)), rng.normal(size=(5, 30, 1)))
    cfg = build_config(None, data=data, **{**TINY, "max_context": 12, "n_targets": 6,
                                           "context_sampler": "weighted"})
    sample = jax.jit(make_sampler(cfg, data))
    draw_n = draw_context_size(cfg)
    for i in range(3):
        key = jax.random.key(i)
        pts = sample(key).points
        n = int(draw_n(jax.random.split(key)[0]))
        assert int(pts.n_context) == n
        np.testing.assert_array_equal(pts.mask_context[0], np.arange(18) < n)
        np.testing.assert_array_equal(pts.mask_target[0], np.arange(18) >= n)


def test_old_configs_build_todays_architecture():
    cfg = {"num_features": 1, "n_outputs": 10, "n_classes": 0, "d_model": D, "n_heads": 2,
           "n_layers": 2, "d_ff": 32, "seed": 0}
    old = build_model(cfg)
    today = PFN(1, 10, d_model=D, n_heads=2, n_layers=2, d_ff=32, rngs=nnx.Rngs(0))
    explicit = build_model({**cfg, **LEGACY})
    for m in (old, explicit):
        assert hasattr(m, "norm") and not any(layer.post_norm for layer in m.layers)
        for a, b in zip(params_of(m), params_of(today), strict=True):
            np.testing.assert_array_equal(a, b)
    post = build_model({**cfg, "norm": "post", "zero_init": True})
    assert all(layer.post_norm for layer in post.layers)
    assert not np.any(np.asarray(post.layers[0].ff2.kernel[...]))


def test_new_configs_record_the_options_and_a_resumed_old_run_keeps_its_meaning():
    cfg = build_config("gp-rbf", **TINY)
    assert {k: cfg[k] for k in ARCH_DEFAULTS} == {**ARCH_DEFAULTS, "x_encoder": "fourier"}
    assert build_config("tabular", **TINY)["x_encoder"] == ARCH_DEFAULTS["x_encoder"] == "linear"
    assert build_config("gp-rbf", **TINY, x_encoder="linear")["x_encoder"] == "linear"
    stored = {k: v for k, v in cfg.items() if k not in ARCH_DEFAULTS}  # a run from before
    assert legacy_config(cfg, stored, {}) == stored
    # an option given explicitly stays, so a changed architecture is still refused on resume
    assert legacy_config(cfg, stored, {"norm": "post"})["norm"] == cfg["norm"]
    assert legacy_config(cfg, cfg, {}) == cfg


@pytest.mark.parametrize(("options", "message"), [
    ({"norm": "mid"}, "--norm must be one of pre, post"),
    ({"zero_init": 1}, "zero_init must be true or false"),
    ({"context_sampler": "harmonic"}, "--context-sampler must be one of uniform, weighted"),
    ({"context_power": -1.0}, "--context-power must be a finite number >= 0"),
    ({"context_power": float("nan")}, "--context-power must be a finite number >= 0"),
    ({"x_encoder": "conv"}, "--x-encoder must be one of linear, mlp, fourier"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        build_config("gp-rbf", **TINY, **options)


def test_command_line_flags_reach_the_config(monkeypatch):
    import pfn.__main__ as cli
    import pfn.train

    seen = {}
    monkeypatch.setattr(pfn.train, "train", lambda out, prior, **kw: seen.update(kw) or {})
    assert cli.main(["train", "--prior", "gp-rbf", "--out", "unused", "--norm", "post",
                     "--zero-init", "--context-sampler", "weighted", "--context-power",
                     "0.4", "--x-encoder", "fourier"]) == 0
    assert (seen["norm"], seen["zero_init"], seen["context_sampler"],
            seen["context_power"], seen["x_encoder"]) == ("post", True, "weighted", 0.4, "fourier")
    cli.main(["train", "--prior", "gp-rbf", "--out", "unused", "--no-zero-init"])
    assert seen["zero_init"] is False and seen["norm"] is None


def test_starting_from_a_checkpoint_keeps_its_layers_unless_told_otherwise():
    from pfn.train import inherit_architecture

    cfg = {**build_config("gp-rbf", init_from="gp-rbf", **TINY), "norm": "post",
           "zero_init": True}  # as if those were the new-run defaults
    kept = inherit_architecture(cfg, {})  # the shipped gp-rbf predates the options
    assert (kept["norm"], kept["zero_init"]) == (LEGACY["norm"], LEGACY["zero_init"])
    assert inherit_architecture(cfg, {"norm": "post"})["norm"] == "post"
    assert kept["x_encoder"] == "linear"


def test_fourier_features_are_the_octave_sines_and_cosines_of_each_feature():
    x = np.random.default_rng(0).uniform(-2, 2, (3, 5, 2)).astype(np.float32)
    got = np.asarray(fourier_features(jnp.asarray(x)))
    w = np.pi * 2.0 ** np.arange(FOURIER_OCTAVES)
    want = [x]
    for fn in (np.sin, np.cos):
        want.append(np.stack([fn(w[k] * x[..., j]) for j in range(2)
                              for k in range(FOURIER_OCTAVES)], axis=-1))
    np.testing.assert_allclose(got, np.concatenate(want, -1), atol=2e-5)


@pytest.mark.parametrize(("encoder", "width", "hidden"), [("linear", 2, False), ("mlp", 2, True),
                                                         ("fourier", 26, False)])
def test_each_x_encoder_builds_its_layers(encoder, width, hidden):
    cfg = {"num_features": 2, "n_outputs": 10, "n_classes": 0, "d_model": D, "n_heads": 2,
           "n_layers": 1, "d_ff": 16, "x_encoder": encoder}
    model = build_model(cfg)
    assert model.x_embed.kernel.shape == (width, D) and hasattr(model, "x_hidden") == hidden
    x = jax.random.uniform(jax.random.key(0), (2, 5, 2))
    assert model(x, jnp.ones((2, 5)), 3).shape == (2, 5, 10)


def test_an_x_encoder_trains_resumes_and_loads_as_it_was_built(tmp_path):
    from pfn.checkpoint import load_run
    from pfn.train import train

    from .conftest import train_tiny

    train_tiny(tmp_path / "run", steps=2, x_encoder="fourier")
    model, cfg, _ = load_run(tmp_path / "run")
    assert cfg["x_encoder"] == "fourier" and model.x_encoder == "fourier"
    x = jax.random.uniform(jax.random.key(0), (2, 9, 1))
    y = jnp.sin(6 * x[..., 0])
    before = model(x, y, 5)
    summary = train(str(tmp_path / "run"), "gp-rbf", quiet=True, **{**TINY, "steps": 3,
                                                                     "x_encoder": "fourier"})
    assert summary["resumed_from"] == 2
    assert not np.allclose(load_run(tmp_path / "run")[0](x, y, 5), before)
    # another encoder cannot continue these weights
    with pytest.raises(ValueError, match="it is another model.*x_encoder"):
        train_tiny(tmp_path / "other", steps=2, init_from=str(tmp_path / "run"),
                   x_encoder="linear")


def test_an_unknown_x_encoder_is_refused_by_the_model():
    with pytest.raises(ValueError, match="x_encoder must be one of"):
        PFN(1, 10, d_model=D, n_heads=2, n_layers=1, d_ff=16, x_encoder="conv", rngs=nnx.Rngs(0))
