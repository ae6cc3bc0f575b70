"""Training of neural operators on stored datasets, on the engine of ``pde_data.runs``.

``train(data, model, out, ...)`` fits ``operators.build_model(model, ...)`` on the train split of
a stored dataset (docs/design.md schema) in the run folder ``out``: ``config.json``
(:func:`operators.config.run_config`), the normalisers fitted on the train split
(``normalisers_x.npz`` / ``normalisers_y.npz``), then ``pde_data.runs.loop.fit`` with the run's
loss (:func:`operators.step.make_loss`), the batches of the train split and a validation
callback: orbax checkpoints every ``checkpoint_every`` steps (default: each epoch), the
best-validation parameters under ``best/``, one ``metrics.jsonl`` row per epoch (``loss``,
``val_rel_l2``, ``grad_norm``, ``lr``, ``seconds``, ``epoch``), and at the end one PNG per
``--test`` file and ``results.json``.

What can be refused is refused before the run folder is written (the model's hyper-parameters,
the ``--test`` files). The config records a content fingerprint of the data file
(``pde_data.storage.fingerprint``): a resume on a replaced file is refused. The input
normaliser never divides by a floored std (``pde_data.normalize``, ``small_std="fallback"``);
what it did is a metrics row ``event="normalisers"`` (and a note on stderr when it fell back).

Resume is exact (the engine's contract): the batches of global step ``s`` are those of epoch
``s // steps_per_epoch`` in the order ``pde_data.pipeline`` draws from ``(seed, epoch)``, so a
run interrupted anywhere and re-run with the same command ends with the parameters of an
uninterrupted one. The same command with a larger ``epochs`` continues a finished run (the
learning-rate schedule is then stretched over the new number of steps).

Data parallel: batches are sharded over all local devices (``pde_data.sharding``), parameters
and optimiser state replicated, one jitted train step (the engine's).

Normalisers: ``normaliser`` for the input and ``output_normaliser`` (default: the same) for the
output, ``"unit"`` / ``"pointwise"`` Gaussians or ``"none"`` (the identity, stored as a unit
normaliser of mean 0 and std 1). ``one_step=S``: the dataset is a trajectory dataset
(Navier-Stokes ``w0`` / ``w``) and the run trains on its one-step pairs, ``S`` per trajectory
(:func:`pde_data.one_step.one_step_pairs`, as the MgNO reference does); ``n_train`` / ``n_val``
then count trajectories (no trajectory in two splits), and each ``--test`` trajectory file is
scored on its pairs and by the autoregressive rollout (:func:`operators.evaluate.evaluate`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from operators.config import (
    CONFIG_VERSION,
    as_stored,
    make_optimizer,
    nonnegative_int,
    positive_channels,
    positive_int,
    run_config,
    training_options,
)
from operators.evaluate import evaluate, one_step_data
from operators.fields import check_compatible, open_data, open_dataset, open_for_run
from operators.run import load_normalisers, model_from_config
from operators.step import make_loss, make_metric_fn, mean_metrics

__all__ = ["train"]


def _batch_stream(data, batch_size: int, seed: int, steps_per_epoch: int, mesh):
    """The engine's ``batches(start)``: the batches of global steps ``start, start + 1, ...``
    (epoch ``step // steps_per_epoch``, its ``step % steps_per_epoch``-th batch)."""

    def stream(start: int):
        epoch, offset = divmod(int(start), steps_per_epoch)
        while True:
            with data.batches(batch_size, seed=seed, epoch=epoch, start=offset, mesh=mesh) as it:
                yield from it
            epoch, offset = epoch + 1, 0

    return stream


def _train_stream(data, batch_size: int, seed: int, steps_per_epoch: int, mesh, plan):
    """The batch stream of a run: :func:`_batch_stream`, restricted per step to the grids of
    ``plan`` when the run trains on several resolutions."""
    stream = _batch_stream(data, batch_size, seed, steps_per_epoch, mesh)
    if plan is None:
        return stream
    from operators.resolutions import multi_resolution_stream

    return multi_resolution_stream(stream, plan, seed, data.n_spatial)


def _check_version(run) -> None:
    from pde_data.runs import RunError

    if not run.has_config():
        return
    version = run.read_config().get("version")
    if version != CONFIG_VERSION:
        raise RunError(
            f"{run.path} was trained by an older operators (run config version {version}, now "
            f"{CONFIG_VERSION}: training moved to the pde_data.runs engine); `python -m operators "
            "evaluate` and `predict` still read it, but it cannot be resumed: use a new --out folder")


def train(data, model: str, out, *, epochs: int | None = None, tests=(), batch_size: int | None = None,
          lr: float | None = None, weight_decay: float | None = None, schedule: str | None = None,
          loss: str | None = None, normaliser: str | None = None, coords: bool | None = None,
          optimizer: str | None = None, schedule_every: str | None = None,
          cycle_momentum: bool | None = None, recipe: str | None = None,
          pct_start: float | None = None, final_div_factor: float | None = None,
          output_normaliser: str | None = None, h1_loss: str | None = None,
          one_step: int | None = None, n_train: int | None = None, n_val: int | None = None, seed: int = 0,
          checkpoint_every: int | None = None, hparams: dict | None = None, inputs=None, outputs=None,
          plot_samples: int = 3, max_steps: int | None = None, progress: bool = True,
          resolutions=None) -> dict:
    """Train (or resume, or extend) a run; returns ``{"run": path, "best_val", "best_epoch",
    "step", "params", "stopped", "tests": {file: metrics}}``.

    ``data``: a stored dataset path (or ``xarray.Dataset``); the train / validation split is
    drawn from it with ``seed``. ``tests``: dataset files evaluated at the end at their own
    resolution (with a PNG each). ``max_steps``: stop (checkpointed, resumable) after this many
    global steps. Defaults per model: :data:`operators.config.TRAIN_DEFAULTS`; ``recipe``
    (:data:`operators.config.RECIPES`, e.g. ``"mgno-reference"``) sets several options at once,
    the ones given explicitly win. ``optimizer`` ("adamw" / "adam-l2"), ``schedule_every``
    ("step" / "epoch") and ``cycle_momentum``: :func:`operators.config.make_optimizer`.
    ``resolutions``: grids (points per axis) the batches are restricted to, one per step chosen
    by ``(seed, step)`` (:mod:`operators.resolutions`; recorded in the run config).
    ``pct_start`` / ``final_div_factor``: the one-cycle's shape; ``output_normaliser``,
    ``h1_loss``, ``one_step``: :func:`operators.config.training_options` and the module doc.
    """
    import jax

    from pde_data import sharding
    from pde_data.runs import Run, write_json
    from pde_data.runs.loop import Loop, fit
    from pde_data.storage import fingerprint

    def options(pde=None):
        return training_options(model, epochs=epochs, batch_size=batch_size, lr=lr,
                                weight_decay=weight_decay, schedule=schedule, loss=loss,
                                normaliser=normaliser, coords=coords, seed=seed, optimizer=optimizer,
                                schedule_every=schedule_every, cycle_momentum=cycle_momentum,
                                recipe=recipe, pct_start=pct_start, final_div_factor=final_div_factor,
                                output_normaliser=output_normaliser, h1_loss=h1_loss,
                                one_step=one_step, pde=pde)

    opts = options()  # bad options are refused before the data is read
    ds, _ = open_dataset(data)
    if recipe is not None:  # the recipe's normalisers follow the data's PDE
        opts = options(str(ds.attrs.get("pde", "")))
    for name, value in (("n_train", n_train), ("checkpoint_every", checkpoint_every),
                        ("max_steps", max_steps)):
        if value is not None:
            positive_int(value, name)
    if n_val is not None:
        nonnegative_int(n_val, "n_val")
    nonnegative_int(plot_samples, "plot_samples")
    data_path = str(Path(data).absolute()) if isinstance(data, (str, os.PathLike)) else "<in-memory dataset>"
    if opts["one_step"] is not None:
        from pde_data.one_step import one_step_pairs

        ds = one_step_pairs(ds, steps=opts["one_step"])
    full = open_data(ds, inputs, outputs)
    group = opts["one_step"] or 1  # rows per trajectory: splits take whole trajectories
    n = len(full) // group
    if n_val is None:
        n_val = max(1, n // 10) if n >= 10 else 0
    if n_train is None:
        n_train = n - n_val
    train_data, val_data = _split(full, n_train, n_val, opts["seed"], group)
    mesh = sharding.data_mesh()
    n_dev = int(mesh.devices.size)
    if tests and sharding.spans_processes(mesh):
        raise ValueError("--test is not run under --distributed: evaluate the finished run with "
                         "`python -m operators evaluate` in one process")
    bs = opts["batch_size"]
    if bs % n_dev:
        raise ValueError(f"batch_size={bs} is not divisible by the {n_dev} local devices")
    if len(train_data) < bs:
        raise ValueError(f"the train split has {len(train_data)} samples, fewer than batch_size={bs}")
    steps_per_epoch = train_data.num_batches(bs)
    opts.update(n_train=int(n_train), n_val=int(n_val), steps_per_epoch=steps_per_epoch,
                checkpoint_every=int(checkpoint_every or steps_per_epoch))
    config = run_config(model, full, ds, data_path, hparams or {}, opts)
    config["input_positive"] = positive_channels(train_data.x)
    plan = None
    if resolutions is not None:  # multi-resolution training (operators.resolutions)
        from operators.resolutions import resolution_plan

        plan = resolution_plan(resolutions, full.spatial, config["periodic"])
        config["resolutions"] = [r for r, _ in plan]
    if isinstance(data, (str, os.PathLike)):
        config["data_fingerprint"] = fingerprint(data)
    # everything that can be refused is refused before the run folder is written: the model
    # (a bad hyper-parameter), the --test files (checked now, used at the end)
    net = model_from_config(config)
    if plan is not None:
        from operators.resolutions import check_model_serves

        check_model_serves(net, plan, full.spatial, config["model_in_channels"])
    for test in tests:
        test_data = one_step_data(test, config)[0] if config.get("one_step") else test
        fields, label = open_for_run(test_data, config)
        check_compatible(fields, config, label, values=False)

    # the normalisers read every training sample: fitted before the run folder is written, so
    # unreadable data (a corrupt chunk) leaves nothing behind
    kept = all((Path(out) / name).exists()
               for name in ("config.json", "normalisers_x.npz", "normalisers_y.npz"))
    fitted = None if kept else fit_normalisers(train_data, config)
    run = Run(out)
    try:
        _check_version(run)
        run.check_data_unchanged(config)
        config = as_stored(config, run.read_config() if run.has_config() else None)
        resumed = run.ensure_config(config, extendable=("epochs",))
        if resumed and kept:
            norms = load_normalisers(run)
        else:  # a new run, or one whose first attempt stopped before its normalisers were saved
            xn, yn = fitted if fitted is not None else fit_normalisers(train_data, config)
            run.save_arrays("normalisers_x", xn.state())
            run.save_arrays("normalisers_y", yn.state())
            norms = {"x": xn, "y": yn}
            _record_normalisers(run, norms, len(train_data))
            n_params = int(sum(x.size for x in jax.tree_util.tree_leaves(_params(net))))
            run.log(event="start", model=model, params=n_params, devices=n_dev,
                    n_train=len(train_data), n_val=len(val_data), resolution=list(full.spatial))
        tx, schedule_fn = make_optimizer(config)
        total = config["epochs"] * steps_per_epoch
        start = run.latest_step() or 0
        done_already = max_steps is not None and start >= max_steps
        validate = None
        if len(val_data):
            metric_fn = make_metric_fn(net, config, h1=False)

            val_mesh = sharding.local_mesh()  # every process validates its local copy

            def validate(m):
                return {"rel_l2": mean_metrics(m, val_data, bs, norms, config, h1=False, mesh=val_mesh,
                                               metric_fn=metric_fn)["rel_l2"]}
        loop = Loop(total_steps=max(start, 1) if done_already else total, seed=opts["seed"],
                    checkpoint_every=config["checkpoint_every"], log_every=steps_per_epoch,
                    eval_every=steps_per_epoch if validate else None,
                    steps_per_epoch=steps_per_epoch,
                    best_metric="val_rel_l2" if validate else "loss",
                    stop_at=None if done_already else max_steps, progress=progress,
                    desc=f"train {model}")
        net, res = fit(run, net, tx, make_loss(config, norms, mesh),
                       _train_stream(train_data, bs, opts["seed"], steps_per_epoch, mesh, plan), loop,
                       validate=validate, lr=schedule_fn, mesh=mesh)
        stopped = res.step < total
        result = {"run": str(run.path), "best_val": res.best,
                  "best_epoch": None if res.best_step is None else math.ceil(res.best_step / steps_per_epoch),
                  "step": res.step, "params": res.n_params, "stopped": stopped, "tests": {}}
        if stopped:
            return result
        for test in tests:
            metrics = evaluate(run, test, plot=True, plot_samples=plot_samples)
            run.log(event="test", **metrics)
            result["tests"][str(test)] = metrics
        write_json(run.path / "results.json", result)
        return result
    finally:
        run.close()


def _split(full, n_train: int, n_val: int, seed: int, group: int = 1):
    """``(train, val)`` views of ``full``: ``FieldData.split`` of the samples, or with
    ``group > 1`` (one-step pairs, ``group`` consecutive rows per trajectory) of whole
    trajectories, ``n_train`` / ``n_val`` of them, drawn by a permutation of ``seed``."""
    if group == 1:
        train_data, val_data, _ = full.split(n_train, n_val, 0, seed=seed)
        return train_data, val_data
    from pde_data.one_step import trajectory_rows

    n = len(full) // group
    if n_train + n_val > n:
        raise ValueError(f"n_train={n_train} + n_val={n_val} trajectories exceed the {n} of the dataset")
    order = np.random.default_rng(seed).permutation(n)
    parts = (np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]))
    return tuple(full.subset(trajectory_rows(part, group)) for part in parts)


def identity_normaliser(channels: int):
    """The normaliser ``"none"``: a unit Gaussian of mean 0 and std 1 (stored and read back as
    any fitted one)."""
    from pde_data.normalize import UnitGaussian

    return UnitGaussian(np.zeros(channels, np.float32), np.ones(channels, np.float32))


def fit_normalisers(train_data, config: dict):
    """``(x_normaliser, y_normaliser)`` of a run, fitted on its train split: the input's kind
    ``config["normaliser"]``, the output's ``config["output_normaliser"]`` (default the same);
    ``"none"`` is :func:`identity_normaliser`."""
    kinds = {"x": config["normaliser"], "y": config.get("output_normaliser") or config["normaliser"]}
    fitted = {kind: train_data.fit_normalizers(kind) for kind in set(kinds.values()) - {"none"}}
    x, y = (np.asarray(a) for a in train_data.take(np.arange(1)))
    xn = identity_normaliser(x.shape[-1]) if kinds["x"] == "none" else fitted[kinds["x"]][0]
    yn = identity_normaliser(y.shape[-1]) if kinds["y"] == "none" else fitted[kinds["y"]][1]
    return xn, yn


def _record_normalisers(run, norms: dict, n_train: int) -> None:
    """What the normalisers did with small stds, in the metrics log (and a note on stderr when
    an input std fell back to its channel's: the train split is too small to trust them)."""
    import sys

    summary = {side: norms[side].summary() for side in ("x", "y")}
    run.log(event="normalisers", n_train=n_train, **summary)
    x = summary["x"]
    if x["n_fallback"]:
        print(f"note: {x['kind']} input normaliser fitted on {n_train} samples: {x['note']}",
              file=sys.stderr)


def _params(model):
    from flax import nnx

    return nnx.state(model, nnx.Param)
