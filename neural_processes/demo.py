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
    """Target log-likelihood per point of ``anp-rbf`` and ``mpanp-rbf`` with 10 context points,
    averaged over 32 tasks drawn from a known GP (whose exact posterior is the best possible)."""

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
        n_tasks = 32  # one task's score swings by +-0.4 nats: the mean over several says more
        key_x, key_y = jax.random.split(jax.random.key(args.seed + 10))
        x = jax.random.uniform(key_x, (n_tasks, 50, 1), minval=-2.0, maxval=2.0)
        y = sample_gp(key_y, x, kernel, noise_var)[..., None]
        xc, yc, xt, yt = x[:, :10], y[:, :10], x[:, 10:], y[:, 10:]
        mean, var = gp_posterior(xc[..., 0:1], yc[..., 0], xt, kernel, noise_var)
        per_task = {"exact_gp": np.asarray(jnp.mean(-0.5 * jnp.log(2 * jnp.pi * var)
                                                     - 0.5 * (yt[..., 0] - mean) ** 2 / var,
                                                     axis=-1))}
        for name in ("anp-rbf", "mpanp-rbf"):
            model = from_pretrained(name)
            per_task[name] = np.asarray(model.log_likelihood(
                np.asarray(xc), np.asarray(yc), np.asarray(xt), np.asarray(yt))).reshape(n_tasks, -1).mean(-1)
        results = {k: float(v.mean()) for k, v in per_task.items()}
        results["se"] = {k: float(v.std() / np.sqrt(n_tasks)) for k, v in per_task.items()}
        results["n_tasks"] = n_tasks
        print(f"target log-likelihood per point, 10 context points, mean over {n_tasks} GP tasks: "
              + ", ".join(f"{k} {results[k]:.3f} +- {results['se'][k]:.3f}" for k in per_task))
        return results


STEP = NeuralProcessStep()
