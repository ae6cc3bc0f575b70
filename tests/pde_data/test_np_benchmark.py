"""The neural-process GP benchmark sampler: masks, ranges, determinism, and its covariance
against the kernel averaged over the hyper-prior (an independent numerical integral)."""

import jax
import numpy as np
import pytest

from pde_data.priors import np_benchmark as nb


@pytest.mark.parametrize("kind", nb.KINDS)
def test_shapes_masks_and_ranges(kind):
    b = nb.sample_tasks(jax.random.key(0), kind, 512)
    assert b.x.shape == b.y.shape == (512, 50, 1)
    mc, mt = np.asarray(b.mask_context), np.asarray(b.mask_target)
    assert np.all(mc * mt == 0)
    nc, nt = mc.sum(1), mt.sum(1)
    assert nc.min() == 3 and nc.max() == 46 and nt.min() >= 3 and np.all(nc + nt <= 50)
    # context first, then target, then padding
    first_pad = (nc + nt).astype(int)
    assert all(mc[i, : int(nc[i])].all() and mt[i, int(nc[i]): first_pad[i]].all() for i in range(512))
    x = np.asarray(b.x)
    assert x.min() >= -2 and x.max() <= 2 and np.all(np.isfinite(np.asarray(b.y)))


@pytest.mark.slow  # 15+ s
def test_seeded_and_fixed_test_set():
    a = nb.sample_tasks(jax.random.key(1), "rbf", 8)
    b = nb.sample_tasks(jax.random.key(1), "rbf", 8)
    c = nb.sample_tasks(jax.random.key(2), "rbf", 8)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.y, c.y)
    t1, t2 = nb.test_tasks("matern", 250, seed=0), nb.test_tasks("matern", 250, seed=0)
    assert [t.x.shape[0] for t in t1] == [100, 100, 50]
    np.testing.assert_array_equal(t1[2].y, t2[2].y)


@pytest.mark.parametrize("kind", ["rbf", "matern"])
def test_covariance_matches_hyperprior_average(kind):
    """E[y(x) y(x')] at distance d equals E_amp[amp^2] E_l[k(d; l)] (+ noise at d = 0)."""
    b = nb.sample_tasks(jax.random.key(3), kind, 6000)
    x, y = np.asarray(b.x[:, :, 0]), np.asarray(b.y[:, :, 0])
    d = np.abs(x[:, :, None] - x[:, None, :])
    prod = y[:, :, None] * y[:, None, :]
    ls = np.linspace(0.1, 0.6, 2001)
    e_amp2 = (1.0**3 - 0.1**3) / (3 * 0.9)
    for lo, hi in [(0.05, 0.1), (0.2, 0.3), (0.5, 0.7)]:
        sel = (d > lo) & (d < hi)
        dm = d[sel].mean()
        r = dm / ls
        k = np.exp(-0.5 * r**2) if kind == "rbf" else (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)
        want = e_amp2 * k.mean()
        assert abs(prod[sel].mean() - want) < 0.04, (kind, lo, prod[sel].mean(), want)
    var = (y**2).mean()
    assert abs(var - (e_amp2 + nb.NOISE_STD**2)) < 0.03


@pytest.mark.slow
def test_t_noise_has_heavy_tails():
    a = np.asarray(nb.sample_tasks(jax.random.key(4), "rbf", 2000).y)
    b = np.asarray(nb.sample_tasks(jax.random.key(4), "t_noise", 2000).y)
    resid = (b - a).ravel()  # same key: identical GP draws, the difference is the t noise
    assert np.abs(resid).max() > 1.0 and np.median(np.abs(resid)) < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown GP benchmark kind 'rbff'"):
        nb.sample_tasks(jax.random.key(0), "rbff")
    with pytest.raises(ValueError, match="exceeds max_points"):
        nb.sample_tasks(jax.random.key(0), "rbf", 4, max_context=49)
    with pytest.raises(ValueError, match="batch_size"):
        nb.sample_tasks(jax.random.key(0), "rbf", 0)
