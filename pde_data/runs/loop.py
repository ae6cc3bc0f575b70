"""The one training loop: a model, an optax transform, a loss and a stream of batches.

A package hands :func:`fit` what is its own (docs/design.md, "The engine"):

- ``model``: an ``nnx.Module`` (freshly built, or with weights to start from);
- ``tx``: an ``optax.GradientTransformation`` (its schedule is a value, as in optax);
- ``loss(model, batch, key) -> (loss, aux)``: a scalar and a dict of scalars to log;
- ``batches(start) -> iterator``: the batches of global steps ``start, start + 1, ...``, each a
  pure function of ``(seed, step)`` so a resumed run sees exactly the data it would have seen.

and the engine does the rest once for every package: one jitted step (parameters and optimiser
state donated, the batch sharded over the data mesh, parameters replicated), resume from the
latest checkpoint of the run folder, checkpoints every ``checkpoint_every`` steps (never of
non-finite parameters), validation and best-model tracking every ``eval_every`` steps, one
metrics row every ``log_every`` steps (interval means that survive a resume), stop conditions
(``total_steps``, ``stop_at``, ``time_limit``) and a progress bar with rate and ETA.

Several processes (``--distributed``, :mod:`pde_data.runs.distributed`): the mesh spans every
process's devices, each process's stream yields its rows of the global batch and :func:`_place`
assembles them on the main thread (``pde_data.sharding.global_batch``, no collective); the
parameters and optimiser state are global replicated arrays before the first step and before a
restore (orbax writes and reads them with every process taking part); process 0 alone logs;
validation runs in every process on its local copy of the parameters; a time limit stops every
process at process 0's step. The losses and parameters equal those of one process with as many
devices (``tests/pde_data/test_distributed.py``).

Exact resume: the step is a pure function of ``(params, opt, batch, key)``, the batch and the
key are pure functions of ``(seed, step)``, so an interrupted run ends with the parameters of an
uninterrupted one (tested in ``tests/pde_data/test_runs_loop.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from pde_data import sharding
from pde_data.runs import distributed
from pde_data.runs.folder import Run, RunError, progress

BEST = "best"


class LossFn(Protocol):
    """``loss(model, batch, key) -> (scalar loss, {name: scalar})``; traced inside the step."""

    def __call__(self, model: nnx.Module, batch: Any, key: jax.Array
                 ) -> tuple[jax.Array, dict[str, jax.Array]]: ...


class BatchStream(Protocol):
    """``batches(start)``: the batches of global steps ``start, start + 1, ...`` (any pytree of
    arrays with the batch on the leading axis), each a pure function of the run's seed and the
    step. Iteration may end early (a finite stream ends the run there)."""

    def __call__(self, start: int) -> Iterator[Any]: ...


class Validator(Protocol):
    """``validate(model) -> {metric: value}`` on held-out data; logged with a ``val_`` prefix."""

    def __call__(self, model: nnx.Module) -> dict[str, float]: ...


@dataclass(frozen=True)
class Loop:
    """When the loop steps, logs, validates, checkpoints and stops (global step counts)."""

    total_steps: int
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int | None = None
    steps_per_epoch: int | None = None  # adds an "epoch" column to the metrics rows
    best_metric: str | None = None  # row key to minimise for best/ (e.g. "val_rel_l2")
    stop_at: int | None = None  # stop (checkpointed, resumable) after this global step
    time_limit: float | None = None  # seconds; stop after a checkpoint once exceeded
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        for name in ("total_steps", "checkpoint_every", "log_every", "eval_every",
                     "steps_per_epoch", "stop_at"):
            value = getattr(self, name)
            if value is None and name not in ("total_steps", "checkpoint_every", "log_every"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, "
                                 f"got {value!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time-limit must be a positive number of seconds, got "
                             f"{self.time_limit!r}")


@dataclass
class FitResult:
    """What a call of :func:`fit` did; ``stopped`` means it ended before ``total_steps``."""

    step: int
    resumed_from: int
    loss: float
    best: float | None
    best_step: int | None
    stopped: bool
    seconds: float
    n_params: int
    last_row: dict = field(default_factory=dict)


def step_key(seed: int, step) -> jax.Array:
    """The key of global step ``step``: ``fold_in(key(seed), step)``. The loss receives it; a
    stream that needs randomness too derives its own from it (e.g. ``split``) or folds in a
    different constant, never reuses it as is."""
    return jax.random.fold_in(jax.random.key(seed), step)


def make_step(graphdef, tx: optax.GradientTransformation, loss: LossFn):
    """The jitted step ``(state, rest, batch, key) -> (state, loss, aux)`` with
    ``state = (params, opt_state)`` donated. ``aux`` gains ``grad_norm``."""

    @partial(jax.jit, donate_argnums=0)
    def step(state, rest, batch, key):
        params, opt_state = state

        def objective(p):
            return loss(nnx.merge(graphdef, p, rest), batch, key)

        (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), value, {**aux, "grad_norm": optax.global_norm(grads)}

    return step


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _place(batch, mesh, n_dev: int):
    """The batch on the mesh: leading axis split over the data axis, scalars replicated. Over
    several processes ``batch`` holds this process's rows only and becomes one global array."""
    if sharding.spans_processes(mesh):
        return sharding.global_batch(batch, mesh)
    if n_dev == 1:
        return batch

    def put(leaf):
        shape = np.shape(leaf)
        if not shape:
            return jax.device_put(leaf, sharding.replicated_sharding(mesh))
        if shape[0] % n_dev:
            raise ValueError(f"batch size {shape[0]} is not divisible by the {n_dev} devices; "
                             f"choose a batch size that is a multiple of {n_dev}")
        return jax.device_put(leaf, sharding.batch_sharding(mesh))

    return jax.tree_util.tree_map(put, batch)


class _Interval:
    """Sums of the loss and aux values since the last metrics row (host floats plus pending
    device values), checkpointed so a row after a resume still averages the whole interval."""

    def __init__(self, saved: dict | None = None):
        saved = saved or {}
        self.sums: dict[str, float] = {k: float(v) for k, v in saved.get("sums", {}).items()}
        self.count = int(saved.get("count", 0))
        self.seconds = float(saved.get("seconds", 0.0))
        self.pending: list = []
        self.t0 = time.perf_counter()

    def add(self, loss, aux) -> None:
        self.pending.append({"loss": loss, **aux})

    def flush(self) -> None:
        if self.pending:
            for row in jax.device_get(self.pending):
                for k, v in row.items():
                    self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.count += len(self.pending)
            self.pending = []
        now = time.perf_counter()
        self.seconds += now - self.t0
        self.t0 = now

    def state(self) -> dict:
        self.flush()
        return {"sums": self.sums, "count": self.count, "seconds": self.seconds}

    def means(self) -> dict[str, float]:
        self.flush()
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count, self.seconds, self.pending = {}, 0, 0.0, []
        self.t0 = time.perf_counter()


def restore_params(run: Run, model: nnx.Module, which: str = "latest",
                   step: int | None = None) -> nnx.Module:
    """``model`` with the parameters of ``run``: its latest (or ``step``'s) checkpoint, or with
    ``which="best"`` the best-validation parameters (the latest when none were kept)."""
    if which not in ("latest", "best"):
        raise ValueError(f"unknown checkpoint {which!r}; choose 'latest' or 'best'")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    target = {"params": nnx.to_pure_dict(params)}
    best = run.path / BEST
    if which == "best" and step is None and (best / "checkpoints").exists():
        brun = Run(best, keep=1)
        try:
            state, _ = brun.restore(target)
        finally:
            brun.close()
    else:
        state, _ = run.restore(target, step=step)
    nnx.replace_by_pure_dict(params, state["params"])
    return nnx.merge(graphdef, params, rest)


def fit(run: Run, model: nnx.Module, tx: optax.GradientTransformation, loss: LossFn,
        batches: BatchStream, loop: Loop, *, validate: Validator | None = None,
        lr: Callable[[int], Any] | None = None, mesh=None) -> tuple[nnx.Module, FitResult]:
    """Train ``model`` in ``run`` (resuming from its latest checkpoint) until ``loop`` says
    stop; returns the trained model and a :class:`FitResult`. ``lr``: the schedule, logged."""
    mesh = mesh or sharding.data_mesh()
    n_dev = int(mesh.devices.size)
    many = sharding.spans_processes(mesh)
    cpu_many = many and mesh.devices.flat[0].platform == "cpu"
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # replicated before the first step (its outputs come back replicated: one compilation)
    # and before a restore (orbax restores into the target's global shardings)
    opt_state = sharding.replicate(tx.init(params), mesh)
    params = sharding.replicate(params, mesh)
    start, extra = 0, {}
    if run.latest_step() is not None:
        state, extra = run.restore({"params": nnx.to_pure_dict(params), "opt": opt_state})
        nnx.replace_by_pure_dict(params, state["params"])
        opt_state = state["opt"]
        start = int(extra.get("step", run.latest_step()))
    if start > loop.total_steps:
        raise RunError(f"{run.path} is at step {start}, past the {loop.total_steps} steps asked "
                       "for; give a larger budget to continue it, or a new --out folder")
    run.drop_metrics_after(start)  # rows logged after the checkpoint come again, once
    state = sharding.replicate((params, opt_state), mesh)
    rest = sharding.replicate(rest, mesh)
    n_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))
    step_fn = make_step(graphdef, tx, loss)
    key_fn = jax.jit(step_key, static_argnums=0,
                     out_shardings=sharding.replicated_sharding(mesh))
    best = math.inf if extra.get("best") is None else float(extra["best"])
    best_step = extra.get("best_step")
    interval = _Interval(extra.get("interval"))
    bar = (progress(total=loop.total_steps, desc=loop.desc, unit="step", initial=start)
           if loop.progress and distributed.is_primary() else None)
    bestrun = Run(run.path / BEST, keep=1) if validate is not None or loop.best_metric else None
    t_start = time.perf_counter()
    elapsed0 = float(extra.get("elapsed", 0.0))
    done, last_loss, last_row, stopped = start, math.nan, {}, False

    def kept() -> str:
        last = run.latest_step()
        return (f"the last checkpoint (step {last}) is kept" if last is not None
                else "no checkpoint was written")

    def checkpoint(at: int) -> None:
        if not bool(_all_finite(state[0])):
            raise FloatingPointError(
                f"{loop.desc}: the parameters are not finite at step {at}; {kept()}. "
                "Lower the learning rate or clip gradients.")
        run.save(at, {"params": nnx.to_pure_dict(state[0]), "opt": state[1]},
                 {"step": at, "best": best if math.isfinite(best) else None,
                  "best_step": best_step, "interval": interval.state(),
                  "elapsed": elapsed0 + time.perf_counter() - t_start})

    try:
        for batch in batches(start):
            if done >= loop.total_steps:
                break
            key = key_fn(loop.seed, done)
            state, value, aux = step_fn(state, rest, _place(batch, mesh, n_dev), key)
            if cpu_many:  # one step in flight: queued CPU steps across processes hung (gloo)
                value.block_until_ready()
            interval.add(value, aux)
            done += 1
            if bar is not None:
                bar.update(1)
            final = done == loop.total_steps
            out_of_time = (loop.time_limit is not None
                           and time.perf_counter() - t_start > loop.time_limit)
            if loop.time_limit is not None and many:
                out_of_time = distributed.agree(out_of_time)  # every process stops here
            stop_here = final or out_of_time or (loop.stop_at is not None and done >= loop.stop_at)
            row = {}
            if loop.eval_every and (done % loop.eval_every == 0 or final) and validate:
                current = (nnx.merge(graphdef, *sharding.local_copy((state[0], rest))) if many
                           else nnx.merge(graphdef, state[0], rest))
                row.update({f"val_{k}": float(v) for k, v in validate(current).items()})
            if done % loop.log_every == 0 or final or row:
                means = interval.means()
                seconds = interval.seconds
                row = {"step": done, **means, **row, "seconds": seconds,
                       "steps_per_s": interval.count / seconds if seconds > 0 else math.nan}
                if loop.steps_per_epoch:
                    row["epoch"] = done / loop.steps_per_epoch
                if lr is not None:
                    row["lr"] = float(lr(done - 1))
                last_loss = means.get("loss", math.nan)
                metric = row.get(loop.best_metric) if loop.best_metric else None
                if metric is not None and bestrun is not None and metric < best:
                    best, best_step = float(metric), done
                    bestrun.save(done, {"params": nnx.to_pure_dict(state[0])},
                                 {"step": done, loop.best_metric: best})
                run.log(**row)
                last_row = row
                interval.reset()
                if not math.isfinite(last_loss) and "loss" in means:
                    # finite (e.g. clipped) parameters can still train on a NaN loss: stop
                    raise FloatingPointError(
                        f"{loop.desc}: the training loss is {last_loss} over steps up to {done}; "
                        f"{kept()}. Lower the learning rate or check the data for NaN / inf.")
                if bar is not None:
                    bar.set_postfix(loss=f"{last_loss:.4g}")
            if done % loop.checkpoint_every == 0 or stop_here:
                checkpoint(done)
            if stop_here:
                stopped = not final
                break
        else:
            if done > start and (run.latest_step() or 0) < done:
                checkpoint(done)  # a finite stream ended the run
    finally:
        if bar is not None:
            bar.close()
        if bestrun is not None:
            bestrun.close()
    model = nnx.merge(graphdef, state[0], rest)
    if math.isnan(last_loss) and interval.count:
        last_loss = interval.means().get("loss", math.nan)
    return model, FitResult(step=done, resumed_from=start, loss=last_loss,
                            best=best if math.isfinite(best) else None, best_step=best_step,
                            stopped=stopped, seconds=time.perf_counter() - t_start,
                            n_params=n_params, last_row=last_row)
