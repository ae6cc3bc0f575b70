"""Evaluation on a fixed, seeded test set: per-point context and target log-likelihood
(log-mean-exp over predictive samples at each point for latent, bootstrap and martingale
models), averaged over tasks, with the standard error over tasks. Reads run folders through
``neural_processes.checkpoint`` and never imports training."""

from __future__ import annotations

import time

import jax
import numpy as np
from flax import nnx

from neural_processes.data import DATASETS, get_source, source_from_config


@nnx.jit(static_argnames=("num_samples",))
def _eval_batch(model, batch, key, num_samples):
    return model.evaluate_batch(batch, key, num_samples)


def _source(data):
    return get_source(data) if isinstance(data, str) else data


def evaluate_model(model, data, *, n_tasks: int = 3000, seed: int = 0,
                   num_samples: int | None = None, batch_size: int = 100,
                   progress: bool = True) -> dict:
    """Context / target log-likelihood of ``model`` on ``n_tasks`` test tasks of ``data`` (a
    dataset name, a point-set file or a ``TaskSource``)."""
    from pde_data.runs import progress as progress_bar

    source = _source(data)
    data = source.name
    if (source.x_dim, source.y_dim) != (model.x_dim, model.y_dim):
        raise ValueError(f"dataset {data!r} has x_dim={source.x_dim}, y_dim={source.y_dim}; the "
                         f"model expects x_dim={model.x_dim}, y_dim={model.y_dim}")
    s = num_samples or model.default_samples
    batches = source.test_batches(n_tasks, seed, batch_size)
    ctx, tar = [], []
    key = jax.random.key(seed + 1)
    t0 = time.perf_counter()
    pbar = (progress_bar(total=len(batches), desc=f"evaluate on {label(data)}", unit="batch")
            if progress else None)
    for i, b in enumerate(batches):
        if pbar is not None:
            pbar.update(1)
        c, t = _eval_batch(model, b, jax.random.fold_in(key, i), s)
        ctx.append(np.asarray(c))
        tar.append(np.asarray(t))
    if pbar is not None:
        pbar.close()
    ctx, tar = np.concatenate(ctx), np.concatenate(tar)
    return {
        "data": data, "model": model.name, "n_tasks": int(ctx.size), "num_samples": s,
        "seed": seed,
        "context_ll": float(ctx.mean()), "context_ll_se": float(ctx.std() / np.sqrt(ctx.size)),
        "target_ll": float(tar.mean()), "target_ll_se": float(tar.std() / np.sqrt(tar.size)),
        "seconds": time.perf_counter() - t0,
    }


def label(data: str) -> str:
    """A dataset's name in file names and titles (a file's stem)."""
    from pathlib import Path

    return data if data in DATASETS else Path(data).stem


def evaluate_run(run_path, *, data: str | None = None, n_tasks: int = 3000, seed: int = 0,
                 num_samples: int | None = None, plot: bool = True, progress: bool = True
                 ) -> dict:
    """Evaluate a run folder's latest checkpoint on ``data`` (default: its training data, a
    point-set file with the run's options); writes ``eval_<data>.json`` (atomic) and a plot of
    predictions on a few test tasks, ``eval_<data>.png``."""
    from pathlib import Path

    from neural_processes.checkpoint import load_run, read_run_config, run_step
    from pde_data.runs import write_json

    config = read_run_config(run_path)
    source = source_from_config(config) if data is None else get_source(data)
    model = load_run(run_path)
    result = evaluate_model(model, source, n_tasks=n_tasks, seed=seed, num_samples=num_samples,
                            progress=progress)
    result["step"] = run_step(run_path)
    name = label(source.name)
    write_json(Path(run_path) / f"eval_{name}.json", result)
    if plot:
        plot_predictions(model, source, Path(run_path) / f"eval_{name}.png", seed=seed)
    return result


def evaluate_shipped(name_or_folder, *, data: str | None = None, n_tasks: int = 3000,
                     seed: int = 0, num_samples: int | None = None, progress: bool = True
                     ) -> dict:
    """Evaluate a shipped model (by name) or an export folder on ``data`` (default: the data it
    was trained on, as its ``config.json`` records); writes nothing."""
    from neural_processes.checkpoint import PACKAGE, SHIPPED, from_pretrained
    from pde_data.runs import shipped

    trained = shipped.read(shipped.resolve(name_or_folder, SHIPPED), PACKAGE).trained
    if data is None:
        data = trained.get("data")
        if not isinstance(data, str) or data not in DATASETS:
            raise ValueError(f"{name_or_folder}: its config.json names no built-in training "
                             "dataset; give --data")
    result = evaluate_model(from_pretrained(name_or_folder), data, n_tasks=n_tasks, seed=seed,
                            num_samples=num_samples, progress=progress)
    result["step"] = trained.get("step")
    return result


def plot_predictions(model, data, path, *, seed: int = 0, n: int = 4) -> bool:
    """Predictions on the first ``n`` test tasks: mean +- 2 std over the points for 1-D data,
    context / mean / truth images (or scatter plots) for 2-D inputs; no plot (``False``) for
    more input dimensions."""
    source = _source(data)
    if source.x_dim > 2 or source.y_dim != 1:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = source.test_batches(n, seed, n)[0]
    s = model.default_samples
    mean, std = nnx.jit(lambda m, b: m.predictive(b.x, b.y, b.mask_context, b.x,
                                                  jax.random.key(seed), s))(model, b)
    from neural_processes.likelihood import mixture_moments

    mean, std = (np.asarray(a) for a in mixture_moments(mean, std))
    x, y, mc = np.asarray(b.x), np.asarray(b.y), np.asarray(b.mask_context) > 0
    real = np.asarray(b.mask_all) > 0
    if source.x_dim == 1:
        fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
        grid = np.linspace(-2, 2, 200, dtype=np.float32)[None, :, None]
        for i, ax in enumerate(axes[0]):
            xc, yc = x[i][mc[i], 0], y[i][mc[i], 0]
            xt, yt = x[i][real[i] & ~mc[i], 0], y[i][real[i] & ~mc[i], 0]
            gm, gs = model.predict(x[i][mc[i]], y[i][mc[i]], grid[0])
            ax.plot(grid[0, :, 0], gm[:, 0], color="C0")
            ax.fill_between(grid[0, :, 0], gm[:, 0] - 2 * gs[:, 0], gm[:, 0] + 2 * gs[:, 0],
                            color="C0", alpha=0.25)
            ax.scatter(xt, yt, s=8, color="C1", label="target")
            ax.scatter(xc, yc, s=14, color="k", label="context")
            ax.set_title(f"{mc[i].sum()} context points", fontsize=9)
        axes[0, 0].legend(fontsize=8)
    else:
        side = round(np.sqrt(x.shape[1]))
        fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6), squeeze=False)
        for i in range(n):
            order = np.lexsort((x[i, :, 1], x[i, :, 0]))
            truth = y[i, order, 0].reshape(side, side) if x.shape[1] == side * side else None
            ctx = np.where(mc[i], y[i, :, 0], np.nan)[order]
            pred = mean[i, order, 0]
            if truth is None:  # subsampled fields: scatter plots
                for r, vals in enumerate((ctx, pred, y[i, order, 0])):
                    axes[r, i].scatter(x[i, order, 0], x[i, order, 1], c=vals, s=12)
            else:
                cmap = matplotlib.colormaps["gray"].copy()
                cmap.set_bad("tab:blue")  # pixels outside the context
                for r, vals in enumerate((ctx, pred, y[i, order, 0])):
                    axes[r, i].imshow(np.ma.masked_invalid(vals.reshape(side, side)), cmap=cmap,
                                      vmin=-0.5, vmax=0.5)
            for r in range(3):
                axes[r, i].set_xticks([])
                axes[r, i].set_yticks([])
        for r, t in enumerate(("context", "predicted mean", "truth")):
            axes[r, 0].set_ylabel(t)
    fig.suptitle(f"{model.name} on {label(source.name)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
