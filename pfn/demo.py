"""Step 3 of ``opbayes demo``: the shipped ``gp-rbf`` PFN on 8 noisy points of one GP draw,
against the exact GP posterior (registered as the ``pfn`` entry point of the group
``opbayes.demo``; the contract is ``pde_data.demo.DemoStep``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from pde_data.demo import DemoStep

__all__ = ["STEP", "PFNFewShotStep"]


class PFNFewShotStep(DemoStep):
    """gp-rbf PFN on 8 noisy points of one GP draw; NLL per point and ``pfn_few_shot.png``."""

    order = 30
    title = "Prior-data fitted network: few-shot GP regression"
    summary_key = "pfn"

    def run(self, out: Path, context: dict[str, Any], args: argparse.Namespace) -> dict:
        import jax
        import jax.numpy as jnp

        from pde_data.priors.gp import gp_posterior, sample_gp
        from pde_data.priors.kernels import get_kernel
        from pfn import from_pretrained

        kernel = get_kernel("rbf", lengthscale=0.1, outputscale=1.0)
        noise_var = 1e-4
        key_x, key_y = jax.random.split(jax.random.key(args.seed))
        x_ctx = jax.random.uniform(key_x, (8, 1))
        x_grid = jnp.linspace(0.0, 1.0, 200)[:, None]
        x_all = jnp.concatenate([x_ctx, x_grid])
        y_all = sample_gp(key_y, x_all, kernel, noise_var)
        y_ctx, y_grid = y_all[:8], y_all[8:]

        reg = from_pretrained("gp-rbf").fit(np.asarray(x_ctx), np.asarray(y_ctx))
        dist = reg.predict_distribution(np.asarray(x_grid))
        mean_gp, var_gp = gp_posterior(x_ctx, y_ctx, x_grid, kernel, noise_var)
        mean_gp, sd_gp = np.asarray(mean_gp), np.sqrt(np.asarray(var_gp))
        nll_pfn = float(-np.mean(dist.logpdf(np.asarray(y_grid))))
        nll_gp = float(np.mean(0.5 * np.log(2 * np.pi * sd_gp**2)
                               + 0.5 * ((np.asarray(y_grid) - mean_gp) / sd_gp) ** 2))
        print(f"PFN gp-rbf, 8 context points: NLL per point {nll_pfn:.3f} "
              f"(exact GP posterior {nll_gp:.3f})")

        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        xs = np.asarray(x_grid)[:, 0]
        q = dist.quantile([0.05, 0.5, 0.95])
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.fill_between(xs, mean_gp - 1.645 * sd_gp, mean_gp + 1.645 * sd_gp, color="C1",
                        alpha=0.25, label="exact GP 90%")
        ax.plot(xs, mean_gp, color="C1", label="exact GP mean")
        ax.plot(xs, q[:, 1], color="C0", label="PFN median")
        ax.plot(xs, q[:, 0], "C0--", lw=1, label="PFN 5% / 95%")
        ax.plot(xs, q[:, 2], "C0--", lw=1)
        ax.plot(xs, np.asarray(y_grid), color="k", lw=0.6, alpha=0.5, label="truth")
        ax.scatter(np.asarray(x_ctx)[:, 0], np.asarray(y_ctx), color="k", zorder=3,
                   label="context")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("PFN (gp-rbf) vs exact GP posterior, 8 points")
        fig.tight_layout()
        fig.savefig(out / "pfn_few_shot.png", dpi=120)
        plt.close(fig)
        return {"nll_pfn": nll_pfn, "nll_exact_gp": nll_gp}


STEP = PFNFewShotStep()
