"""Training loop: tasks are sampled inside the jitted step from ``fold_in(key(seed), step)``,
so a run is a pure function of its config and resumes exactly from its last checkpoint.

A run is a folder (``pde_data.runs.Run``): ``config.json`` (model + data + optimiser),
orbax checkpoints of ``{"model", "opt"}``, ``metrics.jsonl`` (loss and step time every
``log_every`` steps) and ``loss.png``. Re-running the same command on the folder resumes.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from neural_processes.data import get_source
from neural_processes.models import MODELS, build_model

MODEL_KEYS = ("width", "enc_depth", "dec_depth", "heads", "min_std", "train_samples",
              "n_inducing", "noise_dim", "pseudo_average")


def make_config(model: str, data: str, *, steps: int = 2000, batch_size: int = 16,
                lr: float = 5e-4, seed: int = 0, **model_kw: Any) -> dict:
    """The run config: ``model`` (the model's own config), ``data``, ``steps``, ``batch_size``,
    ``lr``, ``seed``. Unknown names and non-positive sizes raise ``ValueError``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
    for k, v in {"steps": steps, "batch_size": batch_size}.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    source = get_source(data)
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
    net = build_model({"model": model, "x_dim": source.x_dim, "y_dim": source.y_dim, **kw})
    return {"model": net.config(), "data": data, "steps": int(steps),
            "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed)}


def build(config: dict):
    """Model and optimiser (Adam, cosine decay of the learning rate to 0, as in the NPF
    benchmark recipe) for a run config."""
    model = build_model(config["model"], seed=config["seed"])
    schedule = optax.cosine_decay_schedule(config["lr"], config["steps"])
    opt = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)
    return model, opt


def make_step(source, batch_size: int):
    """The jitted training step ``(model, opt, key) -> (loss, aux)``: samples a batch from
    ``key``, shards it over the local devices, differentiates the model's loss, updates."""
    n_dev = jax.device_count()
    sharding = None
    if n_dev > 1 and batch_size % n_dev == 0:
        from pde_data.sharding import batch_sharding

        sharding = batch_sharding()

    @nnx.jit
    def step(model, opt, key):
        k_data, k_model = jax.random.split(key)
        batch = source.sample(k_data, batch_size)
        if sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, sharding)

        def loss_fn(m):
            return m.loss(batch, k_model)

        (loss, aux), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        opt.update(model, grads)
        return loss, aux

    return step


def train(out, config: dict, *, log_every: int = 50, ckpt_every: int = 500,
          time_limit: float | None = None, progress: bool = True) -> dict:
    """Train (or resume) the run in folder ``out``. ``time_limit`` (seconds) stops early after a
    checkpoint; re-running continues. Returns the last logged metrics."""
    from pde_data.runs import Run

    run = Run(out)
    resumed = run.ensure_config(config)
    model, opt = build(config)
    start = 0
    if resumed and run.latest_step() is not None:
        state, _ = run.restore({"model": nnx.state(model), "opt": nnx.state(opt)})
        nnx.update(model, state["model"])
        nnx.update(opt, state["opt"])
        start = run.latest_step()
    steps = config["steps"]
    source = get_source(config["data"])
    step = make_step(source, config["batch_size"])
    base = jax.random.key(config["seed"])
    t0 = time.perf_counter()
    last: dict = {}
    losses: list = []
    t_mark, n_mark = None, 0
    pbar = progress_bar(progress, total=steps, initial=start, unit="step",
                        desc=f"{config['model']['model']} on {config['data']}")
    i = start
    for i in range(start, steps):
        loss, aux = step(model, opt, jax.random.fold_in(base, i))
        losses.append(loss)
        if i == start:  # first step compiles: time from the second one on
            jax.block_until_ready(loss)
            t_mark, n_mark = time.perf_counter(), 0
        else:
            n_mark += 1
        pbar.update(1)
        done = i + 1 == steps
        if (i + 1) % log_every == 0 or done:
            jax.block_until_ready(loss)
            now = time.perf_counter()
            step_time = (now - t_mark) / n_mark if n_mark else float("nan")
            last = {"step": i + 1, "loss": float(jnp.mean(jnp.stack(losses))),
                    "step_time": step_time, **{k: float(v) for k, v in aux.items()}}
            run.log(**last)
            pbar.set_postfix(loss=f"{last['loss']:.3f}")
            losses, t_mark, n_mark = [], now, 0
        out_of_time = time_limit is not None and time.perf_counter() - t0 > time_limit
        if (i + 1) % ckpt_every == 0 or done or out_of_time:
            run.save(i + 1, {"model": nnx.state(model), "opt": nnx.state(opt)},
                     extra={"step": i + 1})
            t_mark, n_mark = time.perf_counter(), 0
        if out_of_time:
            break
    pbar.close()
    plot_loss(run)
    run.close()
    return last


def progress_bar(enabled: bool, **kw):
    """The shared tqdm bar (rate + ETA) or, when disabled, a silent one."""
    if enabled:
        from pde_data.runs import progress

        return progress(**kw)
    from tqdm.auto import tqdm

    return tqdm(disable=True, **kw)


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


def load_run_model(run_path, step: int | None = None):
    """The model of a run folder at ``step`` (default: its latest checkpoint) and its config."""
    from pde_data.runs import Run, RunError

    run = Run(run_path)
    config = run.read_config()
    if "model" not in config or "data" not in config:
        raise RunError(f"{run.path} is not a neural_processes run (config has no model/data)")
    model, opt = build(config)
    state, _ = run.restore({"model": nnx.state(model), "opt": nnx.state(opt)}, step=step)
    nnx.update(model, state["model"])
    run.close()
    return model, config
