"""Step 4 of ``opbayes demo``: the shipped ANP and martingale-posterior ANP on one RBF-GP task
of the NP benchmark, against the exact GP (registered as the ``neural_processes`` entry point
of the group ``opbayes.demo``; the contract is ``pde_data.demo.DemoStep``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from pde_data.demo import DemoStep

__all__ = ["STEP", "NeuralProcessStep"]


class NeuralProcessStep(DemoStep):
    """Target log-likelihood per point of ``anp-rbf`` and ``mpanp-rbf`` with 10 context points."""

    order = 40
    title = "Neural processes: ANP and martingale posterior ANP"
    summary_key = "neural_processes"

    def run(self, out: Path, context: dict[str, Any], args: argparse.Namespace) -> dict:
        import jax
        import jax.numpy as jnp

        from neural_processes import from_pretrained
        from pde_data.priors.gp import gp_posterior, sample_gp
        from pde_data.priors.kernels import get_kernel

        kernel = get_kernel("rbf", lengthscale=0.4, outputscale=0.5**2)
        noise_var = 0.02**2
        key_x, key_y = jax.random.split(jax.random.key(args.seed + 10))
        x = jax.random.uniform(key_x, (1, 50, 1), minval=-2.0, maxval=2.0)
        y = sample_gp(key_y, x, kernel, noise_var)[..., None]
        xc, yc, xt, yt = x[:, :10], y[:, :10], x[:, 10:], y[:, 10:]
        mean, var = gp_posterior(xc[..., 0:1], yc[..., 0], xt, kernel, noise_var)
        ll_gp = float(jnp.mean(-0.5 * jnp.log(2 * jnp.pi * var)
                               - 0.5 * (yt[..., 0] - mean) ** 2 / var))
        results = {"exact_gp": ll_gp}
        for name in ("anp-rbf", "mpanp-rbf"):
            model = from_pretrained(name)
            ll = float(np.mean(model.log_likelihood(np.asarray(xc), np.asarray(yc),
                                                    np.asarray(xt), np.asarray(yt))))
            results[name] = ll
        print("target log-likelihood per point, 10 context points: "
              + ", ".join(f"{k} {v:.3f}" for k, v in results.items()))
        return results


STEP = NeuralProcessStep()
