"""The MPNP / MPANP objective ``(L_marg + L_amort + L_pseudo) / |D|`` (neural_processes.martingale)
against an independent numpy computation, and the properties of its log-mean-exp over the K
generated pseudo-context sets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import special, stats

from neural_processes.base import ContextRep
from neural_processes.models import build_model
from pde_data.points import PointSets

SMALL = {"width": 16, "enc_depth": 2, "dec_depth": 2, "heads": 2, "n_inducing": 4,
         "noise_dim": 8}


def small(name, k=4, seed=0):
    return build_model({"model": name, "x_dim": 1, "y_dim": 1, "train_samples": k, **SMALL},
                       seed=seed)


def ragged_batch(seed=0):
    """3 tasks in 12 slots: context sizes 5, 3, 6; target sizes 4, 6, 2; the rest padding
    (with wild values that must not matter)."""
    r = np.random.default_rng(seed)
    x = r.uniform(-2, 2, (3, 12, 1)).astype(np.float32)
    y = np.sin(2 * x) + 0.3 * r.normal(size=x.shape).astype(np.float32)
    mc, mt = np.zeros((3, 12), np.float32), np.zeros((3, 12), np.float32)
    for b, (nc, nt) in enumerate([(5, 4), (3, 6), (6, 2)]):
        mc[b, :nc] = 1
        mt[b, nc:nc + nt] = 1
    pad = (mc + mt) == 0
    x[pad], y[pad] = 50.0, -30.0
    return PointSets(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mc), jnp.asarray(mt))


def np_mlp(layers, h):
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def np_task_ll(model, x, y, m_all, values, mask):
    """Summed log-likelihood of each task's real points given point representations ``values
    (..., B, n, F)`` with ``mask (..., B, n)``: numpy masked mean pooling, the decoder MLP in
    numpy, std = min_std + (1 - min_std) softplus(raw), scipy's normal log density."""
    w = mask[..., None]
    r = (values * w).sum(-2) / np.maximum(w.sum(-2), 1.0)  # (..., B, F)
    r = np.broadcast_to(r[..., None, :], (*r.shape[:-1], x.shape[-2], r.shape[-1]))
    xt = np.broadcast_to(x, (*r.shape[:-1], x.shape[-1]))
    out = np_mlp(model.decoder.mlp.layers, np.concatenate([xt, r], -1))
    mean, raw = out[..., :1], out[..., 1:]
    std = model.min_std + (1 - model.min_std) * np.logaddexp(0.0, raw)
    lp = stats.norm.logpdf(y, mean, std).sum(-1)  # (..., B, N)
    return (lp * m_all).sum(-1)


def test_mpnp_loss_matches_numpy_formula():
    """loss = mean_b [ -lme_k ll(C u C'_k) - ll(C) - lme_k ll(C'_k) ] / |D_b|, each ll summed over
    the task's real context and target points, lme the log-mean-exp over the K sets."""
    k = 4
    model = small("mpnp", k=k)
    batch = ragged_batch()
    key = jax.random.key(7)
    loss, aux = model.loss(batch, key)

    rep = model.det.represent(batch.x, batch.y, batch.mask_context)
    pseudo = model.pseudo_contexts(rep, key, k)  # the sets the loss draws from the same key
    x, y = np.asarray(batch.x), np.asarray(batch.y)
    mc, m_all = np.asarray(batch.mask_context), np.asarray(batch.mask_all)
    v, pv = np.asarray(rep.values), np.asarray(pseudo.values)  # (B, n, F), (K, B, n, F)
    assert pv.shape[0] == k
    n = m_all.sum(-1)

    both = np.concatenate([np.broadcast_to(v, pv.shape), pv], -2)
    both_mask = np.concatenate([np.broadcast_to(mc, pv.shape[:-1])] * 2, -1)
    ll_marg = np_task_ll(model, x, y, m_all, both, both_mask)  # (K, B)
    ll_amort = np_task_ll(model, x, y, m_all, v, mc)  # (B,)
    ll_pseudo = np_task_ll(model, x, y, m_all, pv, np.broadcast_to(mc, pv.shape[:-1]))
    l_marg = -(special.logsumexp(ll_marg, axis=0) - np.log(k)) / n
    l_amort = -ll_amort / n
    l_pseudo = -(special.logsumexp(ll_pseudo, axis=0) - np.log(k)) / n

    np.testing.assert_allclose(float(loss), np.mean(l_marg + l_amort + l_pseudo), rtol=1e-4)
    np.testing.assert_allclose(float(aux["marg"]), l_marg.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(aux["amort"]), l_amort.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(aux["pseudo"]), l_pseudo.mean(), rtol=1e-4)
    # the per-set likelihoods really differ, so the log-mean-exp is not a plain mean here
    assert np.ptp(ll_marg, axis=0).min() > 1e-3
    mean_version = -(ll_marg.mean(0)) / n
    assert np.all(l_marg < mean_version)  # Jensen: -lme < -mean when the sets differ


def permuted(rep: ContextRep, perm) -> ContextRep:
    return ContextRep(None if rep.keys is None else rep.keys[perm], rep.values[perm], rep.mask)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mpnp", "mpanp"])
def test_loss_terms_invariant_to_order_of_pseudo_sets(name):
    k = 5
    model = small(name, k=k)
    batch = ragged_batch(1)
    rep = model.det.represent(batch.x, batch.y, batch.mask_context)
    pseudo = model.pseudo_contexts(rep, jax.random.key(2), k)
    a = model.loss_terms(batch, rep, pseudo)
    b = model.loss_terms(batch, rep, permuted(pseudo, jnp.array([3, 0, 4, 2, 1])))
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mpnp", pytest.param("mpanp", marks=pytest.mark.slow)])
def test_identical_sets_reduce_to_single_set_and_distinct_sets_beat_the_mean(name):
    """K copies of one set give exactly that set's loss (log-mean-exp of equal values); K distinct
    sets give L_marg and L_pseudo below the mean of their single-set losses (strict Jensen) but
    above the best single set; L_amort never depends on the pseudo sets."""
    k = 4
    model = small(name, k=k)
    batch = ragged_batch(2)
    rep = model.det.represent(batch.x, batch.y, batch.mask_context)
    pseudo = model.pseudo_contexts(rep, jax.random.key(4), k)
    singles = [model.loss_terms(batch, rep, permuted(pseudo, jnp.array([i]))) for i in range(k)]
    copies = model.loss_terms(batch, rep, permuted(pseudo, jnp.zeros(k, jnp.int32)))
    for u, v in zip(copies, singles[0]):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    full = model.loss_terms(batch, rep, pseudo)
    for t in (0, 2):  # L_marg, L_pseudo
        per_set = np.stack([np.asarray(s[t]) for s in singles])  # (K, B)
        assert np.all(np.asarray(full[t]) < per_set.mean(0))
        assert np.all(np.asarray(full[t]) >= per_set.min(0) - 1e-6)
    for s in singles:
        np.testing.assert_allclose(s[1], full[1], rtol=1e-6)


@pytest.mark.slow
def test_gradients_reach_the_generator_through_marg_and_pseudo_only():
    model = small("mpanp", k=3)
    batch = ragged_batch(3)
    key = jax.random.key(0)

    @nnx.jit
    def generator_grad_sizes(m):  # one compiled program for the three terms (eager is slow)
        def term(m, i):
            rep = m.det.represent(batch.x, batch.y, batch.mask_context)
            return jnp.mean(m.loss_terms(batch, rep, m.pseudo_contexts(rep, key, 3))[i])

        sizes = []
        for i in range(3):
            g = nnx.grad(term)(m, i)
            leaves = jax.tree_util.tree_leaves(nnx.state(g, nnx.Param)["generator"])
            sizes.append(sum(jnp.sum(jnp.abs(v)) for v in leaves))
        return sizes

    marg, amort, pseudo = (float(v) for v in generator_grad_sizes(model))
    assert marg > 0 and pseudo > 0  # L_marg, L_pseudo train the generator
    assert amort == 0.0  # L_amort conditions on the real context only


@pytest.mark.slow
def test_mpnp_loss_jits_and_shipped_checkpoint_still_loads():
    from neural_processes.checkpoint import available, from_pretrained

    batch = ragged_batch(4)
    model = small("mpnp")
    loss, aux = nnx.jit(lambda m, b, k: m.loss(b, k))(model, batch, jax.random.key(1))
    assert np.isfinite(float(loss)) and set(aux) == {"marg", "amort", "pseudo"}
    if "mpanp-rbf" not in available():
        pytest.skip("no shipped mpanp-rbf checkpoint")
    shipped = from_pretrained("mpanp-rbf")
    loss, aux = shipped.loss(batch, jax.random.key(1))
    assert np.isfinite(float(loss))
    np.testing.assert_allclose(float(loss), sum(float(v) for v in aux.values()), rtol=1e-5)


@pytest.mark.parametrize("name", ["mpnp", pytest.param("mpanp", marks=pytest.mark.slow)])
def test_pseudo_average_mean_matches_numpy_and_leaves_other_terms(name):
    """pseudo_average="mean": L_pseudo = -mean_k ll(C'_k) / |D| (numpy, same sets), never below
    the default log-mean-exp version (Jensen; strictly above when the sets differ); L_marg and
    L_amort do not depend on the option; the option round-trips through config()."""
    k = 4
    lme = small(name, k=k)
    mean = build_model({**lme.config(), "pseudo_average": "mean"}, seed=0)
    assert lme.pseudo_average == "logmeanexp" and mean.config()["pseudo_average"] == "mean"
    assert build_model(mean.config()).pseudo_average == "mean"
    nnx.update(mean, nnx.state(lme))  # same weights (the option is not a parameter)
    batch = ragged_batch(5)
    rep = lme.det.represent(batch.x, batch.y, batch.mask_context)
    pseudo = lme.pseudo_contexts(rep, jax.random.key(3), k)
    a, b = lme.loss_terms(batch, rep, pseudo), mean.loss_terms(batch, rep, pseudo)

    x, y = np.asarray(batch.x), np.asarray(batch.y)
    mc, m_all = np.asarray(batch.mask_context), np.asarray(batch.mask_all)
    n = m_all.sum(-1)
    if name == "mpnp":  # numpy decoder with mean pooling (np_task_ll); attention checked below
        pv = np.asarray(pseudo.values)
        ll_pseudo = np_task_ll(lme, x, y, m_all, pv, np.broadcast_to(mc, pv.shape[:-1]))
    else:  # the sets one at a time through the model's own decoder
        ll_pseudo = np.stack([-np.asarray(lme.loss_terms(batch, rep, permuted(
            pseudo, jnp.array([i]))))[2] * n for i in range(k)])
    assert np.ptp(ll_pseudo, axis=0).min() > 1e-3  # the sets really differ
    np.testing.assert_allclose(b[2], -ll_pseudo.mean(0) / n, rtol=1e-4)
    np.testing.assert_allclose(a[2], -(special.logsumexp(ll_pseudo, 0) - np.log(k)) / n,
                               rtol=1e-4)
    assert np.all(np.asarray(b[2]) > np.asarray(a[2]))
    for t in (0, 1):
        np.testing.assert_allclose(b[t], a[t], rtol=1e-6)
    loss_a, _ = lme.loss(batch, jax.random.key(3))
    loss_b, aux_b = mean.loss(batch, jax.random.key(3))
    assert float(loss_b) > float(loss_a)
    np.testing.assert_allclose(float(aux_b["pseudo"]), np.mean(-ll_pseudo.mean(0) / n), rtol=1e-4)


def test_pseudo_average_bad_value_raises_and_old_configs_default():
    cfg = {"model": "mpanp", "x_dim": 1, "y_dim": 1, **SMALL}
    with pytest.raises(ValueError, match=r"pseudo_average.*logmeanexp, mean.*'median'"):
        build_model({**cfg, "pseudo_average": "median"})
    old = small("mpanp").config()
    assert "pseudo_average" not in old  # default configs unchanged (run folders still resume)
    assert build_model(old).pseudo_average == "logmeanexp"
