"""pfn.evaluate with ARD priors: the ML-II baseline fits one lengthscale per dimension, and a
standardising model is scored in the units of y against the ARD oracle."""

import jax
import numpy as np
import pytest
from flax import nnx

from pde_data.priors import gp
from pde_data.priors.samplers import make_prior
from pfn.evaluate import evaluate_regression, fit_ml2
from pfn.model import PFN


@pytest.mark.slow  # ~20 s: batched ML-II fits
def test_ard_ml2_finds_the_irrelevant_dimension_and_beats_isotropic():
    prior = make_prior("gp-matern52", ard=True, num_features=2, lengthscale=1.0, noise_var=1e-3)
    # dimension 0 matters (lengthscale 0.15), dimension 1 does not (lengthscale 20)
    kfn = prior.kernel_fn(np.tile([0.15, 20.0], (16, 1)).astype(np.float32), 1.0)
    x = jax.random.uniform(jax.random.key(0), (16, 30, 2))
    y = gp.sample_gp(jax.random.key(1), x, kfn, 1e-3)
    ls, os_, nv = fit_ml2(x, y, "matern52", 1e-4, steps=150, ard=True)
    assert ls.shape == (16, 2)
    assert np.median(np.asarray(ls[:, 1] / ls[:, 0])) > 5

    def lml(ls_, os__, nv_, ard):
        k = make_prior("gp-matern52", ard=ard, num_features=2).kernel_fn(ls_, os__)
        return np.asarray(gp.gp_log_marginal_likelihood(x, y, k, nv_))


    iso = fit_ml2(x, y, "matern52", 1e-4, steps=150)
    assert np.mean(lml(ls, os_, nv, True)) > np.mean(lml(*iso, False))


@pytest.mark.slow  # ~50 s: ML-II compiled for 3 starts x 300 steps
def test_a_standardising_model_is_scored_against_the_ard_oracle():
    cfg = {"prior": "gp-hyper-ard", "prior_options": {}, "max_context": 20}
    model = PFN(5, 16, d_model=16, n_heads=2, n_layers=1, d_ff=16, standardise=True,
                rngs=nnx.Rngs(0))
    stats = {"borders": np.linspace(-3, 3, 17).astype(np.float32)}
    rows = evaluate_regression(model, cfg, stats, contexts=(5,), n_datasets=8, n_targets=6,
                               chunk=8)
    (row,) = rows
    assert row["baseline"] == "ml2-gp" and row["n_datasets"] + row["n_failed_draws"] == 8
    assert np.isfinite([row["pfn_nll"], row["gp_nll"], row["oracle_nll"], row["floor_nll"]]).all()
    # the untrained head is worse than the oracle and the head's own floor
    assert row["pfn_nll"] > row["floor_nll"] > row["oracle_nll"] - 0.5
