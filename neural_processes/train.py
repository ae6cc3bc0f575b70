"""Training on the one engine of opbayes (``pde_data.runs.loop.fit``).

What is the neural processes' own: the run config (:func:`make_config`: the model's config, the
data, the budget and Adam with a cosine decay to 0, the NPF benchmark recipe), the loss (each
model's ``loss(batch, key)``, :func:`loss`) and the batch stream (the task source's ``sample``
through ``pde_data.points.stream``, :func:`batch_stream`). The engine does the rest: one jitted
step, exact resume from the run folder's latest checkpoint, checkpoint cadence, the metrics log,
the time limit and the progress bar.

A run is a folder: ``config.json``, the engine's orbax checkpoints (``params`` / ``opt``),
``metrics.jsonl`` and ``loss.png``. Re-running the same command on the folder resumes it; the
same command with a larger ``--steps`` continues a finished run (the learning-rate schedule is
then stretched over the new number of steps).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from neural_processes.checkpoint import RUN_VERSION, build
from neural_processes.data import FileSource, get_source, source_from_config
from neural_processes.models import MODELS, build_model

__all__ = ["MODEL_KEYS", "batch_stream", "loss", "make_config", "plot_loss", "train"]

MODEL_KEYS = ("width", "enc_depth", "dec_depth", "heads", "min_std", "train_samples",
              "n_inducing", "noise_dim", "pseudo_average", "loss_weights",
              "pseudo_per_point")


def make_config(model: str, data: str, *, steps: int = 2000, batch_size: int = 16,
                lr: float = 5e-4, seed: int = 0, data_options: dict | None = None,
                **model_kw: Any) -> dict:
    """The run config: ``model`` (the model's own config), ``data`` (a built-in dataset or a
    point-set file, stored as an absolute path with its ``data_options``), ``steps``,
    ``batch_size``, ``lr``, ``seed``. Unknown names and non-positive sizes raise ``ValueError``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
    for k, v in {"steps": steps, "batch_size": batch_size}.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or int(v) != v or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    source = get_source(data, **(data_options or {}))
    kw = {k: v for k, v in model_kw.items() if v is not None}
    bad = set(kw) - set(MODEL_KEYS)
    if bad:
        raise ValueError(f"unknown model options {sorted(bad)}; known: {', '.join(MODEL_KEYS)}")
    if model not in ("neubnp", "neubanp", "mpnp", "mpanp"):
        kw.pop("train_samples", None)
    if model not in ("mpnp", "mpanp"):
        kw.pop("n_inducing", None)
        kw.pop("noise_dim", None)
        kw.pop("pseudo_average", None)
        kw.pop("loss_weights", None)
        kw.pop("pseudo_per_point", None)
    net = build_model({"model": model, "x_dim": source.x_dim, "y_dim": source.y_dim, **kw})
    config = {"version": RUN_VERSION, "model": net.config(), "data": source.name,
              "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
              "seed": int(seed)}
    if isinstance(source, FileSource):
        from pde_data.storage import fingerprint

        config["data_options"] = source.options()
        config["data_fingerprint"] = fingerprint(source.name)
    return config


def optimizer(config: dict):
    """Adam with the learning rate decayed to 0 over ``steps`` (cosine); returns ``(tx,
    schedule)``."""
    import optax

    schedule = optax.cosine_decay_schedule(config["lr"], config["steps"])
    return optax.adam(schedule), schedule


def loss(model, batch, key):
    """The engine's ``LossFn``: the model's own training objective on a ``PointSets`` batch."""
    return model.loss(batch, key)


def batch_stream(source, batch_size: int, seed: int):
    """The engine's ``batches(start)``: step ``i`` samples ``batch_size`` tasks from a key that
    is a pure function of ``(seed, i)`` (``pde_data.points.stream``)."""
    from pde_data.points import stream

    return stream(lambda key: source.sample(key, batch_size), seed)


def train(out, config: dict, *, log_every: int = 50, ckpt_every: int = 500,
          time_limit: float | None = None, progress: bool = True) -> dict:
    """Train (resume, or extend with a larger ``steps``) the run in folder ``out``.
    ``time_limit`` (seconds) stops early after a checkpoint; re-running continues. Returns the
    last metrics row with ``step``, ``stopped``, ``resumed_from`` and ``n_params``."""
    from pde_data.runs import Run, RunError, distributed
    from pde_data.runs.loop import Loop, fit

    if config.get("version") != RUN_VERSION:
        raise ValueError(f"config version {config.get('version')!r} is not {RUN_VERSION}: make "
                         "it with neural_processes.train.make_config")
    source = source_from_config(config)  # a bad data file fails before the folder is made
    run = Run(out)
    try:
        if run.has_config() and run.read_config().get("version") != RUN_VERSION:
            raise RunError(f"{run.path} was written by an older neural_processes (checkpoint "
                           "items 'model' / 'opt' of nnx.state; runs now use the pde_data.runs "
                           "engine's 'params' / 'opt'); train it again in a new --out folder")
        run.check_data_unchanged(config)
        run.ensure_config(config, extendable=("steps",))
        tx, schedule = optimizer(config)
        loop = Loop(total_steps=config["steps"], seed=config["seed"],
                    checkpoint_every=ckpt_every, log_every=log_every, time_limit=time_limit,
                    progress=progress, desc=f"{config['model']['model']} on {source_label(config)}")
        _, result = fit(run, build(config), tx, loss,
                        batch_stream(source, config["batch_size"], config["seed"]), loop,
                        lr=schedule)
        if distributed.is_primary():  # one writer of the run folder's files
            plot_loss(run)
        row = result.last_row or next(
            (r for r in reversed(run.read_metrics()) if "loss" in r), {})
    finally:
        run.close()
    return {**row, "step": result.step, "loss": row.get("loss", result.loss),
            "stopped": result.stopped, "resumed_from": result.resumed_from,
            "n_params": result.n_params}


def source_label(config: dict) -> str:
    from pathlib import Path

    return Path(config["data"]).name if config.get("data_options") else config["data"]


def plot_loss(run) -> None:
    """``loss.png``: the logged training loss against the step."""
    rows = [r for r in run.read_metrics() if "loss" in r]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (per point)")
    fig.tight_layout()
    fig.savefig(run.path / "loss.png", dpi=110)
    plt.close(fig)
