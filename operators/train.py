"""Training of neural operators on stored datasets: one run folder, exact resume, data parallel.

``train(data, model, out, ...)`` fits ``operators.build_model(model, ...)`` on the train split of a
stored dataset (DESIGN.md schema) and keeps everything in the run folder ``out``
(``pde_data.runs.Run``): ``config.json`` (model, hyper-parameters, data layout), the normalisers
fitted on the train split (``normalisers_x.npz`` / ``normalisers_y.npz``), orbax checkpoints every
``checkpoint_every`` steps and at each epoch end, the best-validation parameters under ``best/``,
``metrics.jsonl`` and, at the end, one PNG per ``--test`` file.

Resume is exact: the batch order of an epoch is a pure function of ``(seed, epoch)`` (the
``pde_data.pipeline`` contract), a checkpoint stores the global step, and a resumed run skips the
batches already done, so an interrupted run ends with the parameters of an uninterrupted one.

Data parallel: batches are sharded over all local devices (``pde_data.sharding``), parameters and
optimiser state replicated, one jitted train step (XLA inserts the gradient all-reduce).

Optimiser (the papers' recipes): AdamW (weight decay 1e-4). MgNO (He et al. 2024): one-cycle
cosine schedule, peak 5e-4 starting at peak/2 and ending at peak/200 with 20% warm-up, batch 8,
relative H1 loss. FNO / U-NO (Li et al. 2021): lr 1e-3 halved after every fifth of the steps (100 of
500 epochs in the paper), batch 20, relative L2 loss.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TRAIN_DEFAULTS",
    "DataMismatchError",
    "base_resolution_for",
    "data_periodic",
    "load_run",
    "make_optimizer",
    "model_hparams",
    "train",
    "train_defaults",
]

CONFIG_VERSION = 1
BEST = "best"
ABORT_ENV = "OPBAYES_ABORT_AFTER_STEP"  # hard-exit (os._exit) after this global step: crash tests

_MGNO = {"lr": 5e-4, "weight_decay": 1e-4, "batch_size": 8, "loss": "h1", "schedule": "onecycle",
         "epochs": 500, "normaliser": "unit", "coords": False}
_FNO = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 20, "loss": "l2", "schedule": "step",
        "epochs": 500, "normaliser": "pointwise", "coords": True}
TRAIN_DEFAULTS: dict[str, dict] = {"mgno": _MGNO, "mgno-conv": _MGNO, "fno": _FNO, "uno": _FNO}


class DataMismatchError(ValueError):
    """Data that do not fit a trained run: other variables, channels, dimension or values."""


def train_defaults(model: str) -> dict:
    """Training defaults of ``model`` (the paper recipe of its family)."""
    return dict(TRAIN_DEFAULTS.get(model, _FNO))


# ------------------------------------------------------------------------------------------
# optimiser and schedule
# ------------------------------------------------------------------------------------------
def make_schedule(kind: str, lr: float, total_steps: int, steps_per_epoch: int, epochs: int):
    """Learning rate per step: ``onecycle`` (MgNO) or ``step`` (FNO: x0.5 after each fifth of the steps),
    or ``constant``."""
    import optax

    if kind == "onecycle":
        # cosine one-cycle: start lr/2 (div 2), peak lr after 20% of the steps, end lr/200.
        return optax.cosine_onecycle_schedule(
            transition_steps=max(total_steps, 1), peak_value=lr, pct_start=0.2,
            div_factor=2.0, final_div_factor=100.0)
    if kind == "step":  # the paper halves every 100 of 500 epochs: five halvings in all
        every = max(1, round(total_steps / 5))
        return optax.exponential_decay(lr, transition_steps=every, decay_rate=0.5, staircase=True)
    if kind == "constant":
        return optax.constant_schedule(lr)
    raise ValueError(f"unknown schedule {kind!r}; choose 'onecycle', 'step' or 'constant'")


def make_optimizer(config: dict, steps_per_epoch: int):
    """AdamW with the run's schedule and weight decay."""
    import optax

    sched = make_schedule(config["schedule"], config["lr"], config["epochs"] * steps_per_epoch,
                          steps_per_epoch, config["epochs"])
    return optax.adamw(sched, weight_decay=config["weight_decay"])


# ------------------------------------------------------------------------------------------
# model <-> arrays
# ------------------------------------------------------------------------------------------
def build(config: dict):
    """The model of a run configuration, freshly initialised from its seed."""
    from flax import nnx

    import operators

    from operators.models.mgno_conv import LEGACY_PROLONGATION

    hparams = dict(config["hparams"])
    if config["model"] == "mgno-conv":  # runs from before the option: the operator they trained
        hparams.setdefault("prolongation", LEGACY_PROLONGATION)
    return operators.build_model(config["model"], config["model_in_channels"], config["out_channels"],
                                 dim=config["dim"], rngs=nnx.Rngs(config["seed"]), **hparams)


def split_model(model):
    """``(graphdef, params, rest)``: trainable ``nnx.Param`` leaves apart from any other state."""
    from flax import nnx

    return nnx.split(model, nnx.Param, ...)


def _load_normalisers(run) -> dict:
    from pde_data.normalize import normalizer_from_state

    return {k: normalizer_from_state(run.load_arrays(f"normalisers_{k}")) for k in ("x", "y")}


# ------------------------------------------------------------------------------------------
# the forward map and the losses (shared by training and evaluation)
# ------------------------------------------------------------------------------------------
def prepare_input(x, x_norm, coords: bool, periodic: bool):
    """Encoded input with coordinate channels appended when the run uses them."""
    from pde_data.coordinates import add_coordinates

    z = x_norm.encode(x)
    return add_coordinates(z, periodic) if coords else z


def predict_fn(graphdef, params, rest, x, x_norm, y_norm, coords: bool, periodic: bool):
    """Prediction in physical units: ``decode(model(encode(x)))``."""
    from flax import nnx

    model = nnx.merge(graphdef, params, rest)
    return y_norm.decode(model(prepare_input(x, x_norm, coords, periodic)))


def loss_value(kind: str, pred, true, periodic: bool, h1_kind: str | None = None):
    """Training loss, batch mean: ``l2`` relative L2; ``h1`` the MgNO recipe (He et al. 2024):
    on periodic grids relative H1 by Parseval with integer wavenumbers, derivative weight for
    ``|k| < 20``; on node grids the same weighting with finite differences (the FFT of a
    non-periodic field sees a jump at the boundary): :func:`operators.losses.mgno_rel_h1`."""
    from operators import losses

    if kind == "l2":
        return losses.rel_l2(pred, true, periodic)
    if kind == "h1":
        if h1_kind is None:
            h1_kind = "spectral" if periodic else "fd"
        if h1_kind not in ("spectral", "fd"):
            raise ValueError(f"unknown H1 loss kind {h1_kind!r}; choose 'spectral' or 'fd'")
        return losses.mgno_rel_h1(pred, true, h1_kind == "spectral")
    raise ValueError(f"unknown loss {kind!r}; choose 'l2' or 'h1'")


def metric_values(pred, true, periodic: bool, h1: bool = True) -> dict:
    """Per-sample relative L2 and H1 errors (H1: spectral on periodic grids, second-order finite
    differences on node grids), each of shape ``(batch,)``."""
    from operators import losses

    out = {"rel_l2": losses.rel_l2_per_sample(pred, true, periodic)}
    if h1:
        kind = "spectral" if periodic else "fd"
        out["rel_h1"] = losses.rel_h1_per_sample(pred, true, kind, periodic)
    return out


def make_train_step(graphdef, tx, loss: str, coords: bool, periodic: bool, h1_kind: str | None = None):
    """One jitted step ``(params, opt_state, rest, x, y, x_norm, y_norm) -> (params, opt_state,
    loss)``; params and optimiser state are donated (updated in place)."""
    import jax
    import optax

    def objective(params, rest, x, y, x_norm, y_norm):
        pred = predict_fn(graphdef, params, rest, x, x_norm, y_norm, coords, periodic)
        return loss_value(loss, pred, y, periodic, h1_kind)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, rest, x, y, x_norm, y_norm):
        value, grads = jax.value_and_grad(objective)(params, rest, x, y, x_norm, y_norm)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def make_eval_step(graphdef, coords: bool, periodic: bool, h1: bool = True):
    """Jitted per-batch sums of the relative L2 and H1 errors (weighted by the batch size)."""
    import jax

    def metrics(params, rest, x, y, x_norm, y_norm):
        pred = predict_fn(graphdef, params, rest, x, x_norm, y_norm, coords, periodic)
        per = metric_values(pred, y, periodic, h1)
        return {k: v.sum() for k, v in per.items()}, pred

    return jax.jit(metrics)


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def open_data(path_or_ds, inputs=None, outputs=None, subsample: int = 1):
    """``FieldData`` of a stored dataset (a path or an ``xarray.Dataset``)."""
    from pde_data.pipeline import FieldData

    return FieldData.from_dataset(path_or_ds, inputs=inputs, outputs=outputs, subsample=subsample)


def _positive_channels(x) -> list[bool]:
    """Per input channel: are all training values > 0 (e.g. a Darcy coefficient)?"""
    mins = None
    for block in (x.iter_chunks() if hasattr(x, "iter_chunks") else [np.asarray(x)]):
        m = np.asarray(block).reshape(-1, block.shape[-1]).min(axis=0)
        mins = m if mins is None else np.minimum(mins, m)
    return [bool(v > 0) for v in mins]


def check_compatible(data, config: dict, label: str = "data") -> None:
    """``DataMismatchError`` unless ``data`` (FieldData) fits the run: same variables, channel
    count, spatial dimension, finite values, and positive inputs where training inputs were."""
    want_in, want_out = config["input_vars"], config["output_vars"]
    if list(data.input_vars) != want_in or list(data.output_vars) != want_out:
        raise DataMismatchError(
            f"{label} maps {data.input_vars} -> {data.output_vars}, but the run was trained on "
            f"{want_in} -> {want_out}")
    layout = getattr(data, "periodic", None)
    if layout is not None and "periodic" in config and bool(layout) != bool(config["periodic"]):
        def kind(p):
            return "periodic" if p else "node (both ends included)"
        raise DataMismatchError(
            f"{label} is on a {kind(layout)} grid, the run was trained on a {kind(config['periodic'])} "
            "grid (other boundary conditions)")
    if data.n_spatial != config["dim"]:
        raise DataMismatchError(
            f"{label} has {data.n_spatial} spatial dimension(s) {data.spatial}, the run is {config['dim']}-D")
    for side, have, want, names in (("input", data.in_channels, config["in_channels"], data.x_channels),
                                    ("output", data.out_channels, config["out_channels"], data.y_channels)):
        if have != want:
            raise DataMismatchError(
                f"{label} has {have} {side} channel(s) {names}, the run was trained on {want} "
                f"({config[side + '_channel_names']})")
    for side, arr in (("input", data.x), ("output", data.y)):
        blocks = arr.iter_chunks() if hasattr(arr, "iter_chunks") else [np.asarray(arr)]
        for block in blocks:
            block = np.asarray(block)
            if not np.isfinite(block).all():
                raise DataMismatchError(f"{label}: the {side} fields contain NaN or inf values")
            if side == "input":
                flat = block.reshape(-1, block.shape[-1])
                for c, (pos, name) in enumerate(zip(config["input_positive"], data.x_channels)):
                    if pos and flat[:, c].min() <= 0:
                        raise DataMismatchError(
                            f"{label}: input channel {name!r} has non-positive values (min "
                            f"{flat[:, c].min():.4g}); the run was trained on strictly positive "
                            f"{name!r} (e.g. a Darcy coefficient), so this input is outside its domain")


# ------------------------------------------------------------------------------------------
# loading a run
# ------------------------------------------------------------------------------------------
def restore_params(run, config: dict, which: str = "best"):
    """``(graphdef, params, rest)`` of a run: the best-validation parameters (``which="best"``,
    falling back to the latest checkpoint) or the latest training checkpoint (``"latest"``)."""
    from flax import nnx

    from pde_data.runs import Run

    graphdef, params, rest = split_model(build(config))
    best = run.path / BEST
    if which == "best" and (best / "checkpoints").exists():
        brun = Run(best, keep=1)
        try:
            state, _ = brun.restore({"params": nnx.to_pure_dict(params)})
        finally:
            brun.close()
    else:
        tx = make_optimizer(config, config["steps_per_epoch"])
        target = {"params": nnx.to_pure_dict(params), "opt": tx.init(params)}
        state, _ = run.restore(target)
    nnx.replace_by_pure_dict(params, state["params"])
    return graphdef, params, rest


def load_run(run) -> tuple[Any, dict, dict]:
    """``(model, normalisers, config)`` of a trained run folder: the model with its best
    parameters, ``{"x": ..., "y": ...}`` normalisers fitted on its train split, its config."""
    from flax import nnx

    from pde_data.runs import Run

    run = run if isinstance(run, Run) else Run(_existing(run))
    config = run.read_config()
    graphdef, params, rest = restore_params(run, config)
    return nnx.merge(graphdef, params, rest), _load_normalisers(run), config


def _existing(path) -> Path:
    p = Path(path)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p} is not a run folder (no config.json); train one with "
                                "`python -m operators train --out RUN ...`")
    return p


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
def data_periodic(data) -> bool:
    """Whether the grid of ``data`` (FieldData) is periodic: its ``periodic`` attribute (from the
    dataset's ``periodic`` attribute or its coordinates, ``pde_data.pipeline``), else the PDE's
    boundary conditions (``wrap`` padding: Burgers, Navier-Stokes), else a node grid."""
    import operators

    if data.periodic is not None:
        return bool(data.periodic)
    pde = str((data.attrs or {}).get("pde", ""))
    try:
        return operators.default_padding(pde) == "wrap"
    except ValueError:
        return False


def base_resolution_for(spatial, periodic: bool, levels: int) -> int:
    """``base_resolution`` of ``mgno-conv`` for a training grid: its number of cells per axis
    (``s - 1`` on a node grid, ``s`` periodic; the largest axis), rounded to the nearest multiple
    of ``2^(levels-1)`` (at least that), so the fine-level kernels are (close to) the plain 3x3
    stencils on the training grid."""
    cells = max(int(s) if periodic else int(s) - 1 for s in spatial)
    m = 2 ** (levels - 1)
    return max(m, int(math.floor(cells / m + 0.5)) * m)


def model_hparams(model: str, data, hparams: dict) -> dict:
    """Hyper-parameters of ``model`` for training on ``data``: the defaults with the padding of
    the data's boundary conditions, the user's ``hparams``, and the grid-dependent ones the user
    did not give, taken from the training grid: ``grid_size`` of ``mgno`` (its prolongation
    kernels follow the parity of the level sizes) and ``base_resolution`` of ``mgno-conv``."""
    import operators
    from operators.layers.multigrid import normalise_smoothing

    periodic = data_periodic(data)
    pde = str((data.attrs or {}).get("pde", ""))
    try:  # padding to suit the boundary conditions of the data (zeros / wrap / reflect)
        hp = operators.default_hparams(model, pde=pde, periodic=periodic)
    except ValueError:
        hp = operators.default_hparams(model, periodic=periodic)
    unknown = sorted(set(hparams) - set(hp))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for model {model!r}; known: {sorted(hp)}")
    hp.update(hparams)
    spatial = [int(s) for s in data.spatial]
    if "grid_size" in hp and "grid_size" not in hparams:
        hp["grid_size"] = spatial[0] if len(set(spatial)) == 1 else spatial
    if "base_resolution" in hp and "base_resolution" not in hparams:
        levels = len(normalise_smoothing(hp["smoothing"]))
        hp["base_resolution"] = base_resolution_for(spatial, periodic, levels)
    return hp


def _config(model: str, data, data_path: str, hparams: dict, opts: dict) -> dict:
    periodic = data_periodic(data)
    hp = model_hparams(model, data, hparams)
    if opts.get("loss") == "h1":  # which H1 the training loss is (see loss_value)
        opts = {**opts, "h1_loss": "spectral" if periodic else "fd"}
    return {
        "version": CONFIG_VERSION,
        "model": model,
        "hparams": hp,
        "data": data_path,
        "input_vars": list(data.input_vars),
        "output_vars": list(data.output_vars),
        "input_channel_names": data.x_channels,
        "output_channel_names": data.y_channels,
        "in_channels": data.in_channels,
        "model_in_channels": data.in_channels + (data.n_spatial if opts["coords"] else 0),
        "out_channels": data.out_channels,
        "dim": data.n_spatial,
        "train_resolution": list(data.spatial),
        "periodic": periodic,
        **opts,
    }


def train(data, model: str, out, *, epochs: int | None = None, tests=(), batch_size: int | None = None,
          lr: float | None = None, weight_decay: float | None = None, schedule: str | None = None,
          loss: str | None = None, normaliser: str | None = None, coords: bool | None = None,
          n_train: int | None = None, n_val: int | None = None, seed: int = 0,
          checkpoint_every: int | None = None, hparams: dict | None = None, inputs=None, outputs=None,
          plot_samples: int = 3, max_steps: int | None = None, progress: bool = True) -> dict:
    """Train (or resume) a run; returns ``{"run": path, "best_val": ..., "tests": {file: metrics}}``.

    ``data``: a stored dataset path (or ``xarray.Dataset``); the train / validation split is
    drawn from it with ``seed``. ``tests``: dataset files evaluated at the end at their own
    resolution (with a PNG each). ``max_steps``: stop (checkpointed, resumable) after this many
    global steps. Defaults per model: :data:`TRAIN_DEFAULTS`.
    """
    import jax
    from flax import nnx

    from pde_data import runs, sharding

    if model not in TRAIN_DEFAULTS:
        import operators

        if model not in operators.MODELS:
            raise ValueError(f"unknown model {model!r}; choose from {sorted(operators.MODELS)}")
    d = train_defaults(model)
    opts = {
        "epochs": d["epochs"] if epochs is None else int(epochs),
        "batch_size": d["batch_size"] if batch_size is None else int(batch_size),
        "lr": d["lr"] if lr is None else float(lr),
        "weight_decay": d["weight_decay"] if weight_decay is None else float(weight_decay),
        "schedule": d["schedule"] if schedule is None else schedule,
        "loss": d["loss"] if loss is None else loss,
        "normaliser": d["normaliser"] if normaliser is None else normaliser,
        "coords": d["coords"] if coords is None else bool(coords),
        "seed": int(seed),
    }
    if opts["epochs"] < 1:
        raise ValueError(f"epochs must be >= 1, got {opts['epochs']}")
    if opts["loss"] not in ("l2", "h1"):
        raise ValueError(f"unknown loss {opts['loss']!r}; choose 'l2' or 'h1'")
    data_path = str(Path(data).absolute()) if isinstance(data, (str, os.PathLike)) else "<in-memory dataset>"
    full = open_data(data, inputs, outputs)
    n = len(full)
    if n_val is None:
        n_val = max(1, n // 10) if n >= 10 else 0
    if n_train is None:
        n_train = n - n_val
    train_data, val_data, _ = full.split(n_train, n_val, 0, seed=opts["seed"])
    n_dev = jax.local_device_count()
    bs = opts["batch_size"]
    if bs % n_dev:
        raise ValueError(f"batch_size={bs} is not divisible by the {n_dev} local devices")
    if len(train_data) < bs:
        raise ValueError(f"the train split has {len(train_data)} samples, fewer than batch_size={bs}")
    steps_per_epoch = train_data.num_batches(bs)
    opts.update(n_train=int(n_train), n_val=int(n_val), steps_per_epoch=steps_per_epoch,
                checkpoint_every=int(checkpoint_every or steps_per_epoch))
    config = _config(model, full, data_path, hparams or {}, opts)
    config["input_positive"] = _positive_channels(train_data.x)

    run = runs.Run(out)
    resumed = run.ensure_config(config)
    if resumed:
        norms = _load_normalisers(run)
    else:
        xn, yn = train_data.fit_normalizers(config["normaliser"])
        run.save_arrays("normalisers_x", xn.state())
        run.save_arrays("normalisers_y", yn.state())
        norms = {"x": xn, "y": yn}

    mesh = sharding.data_mesh()
    graphdef, params, rest = split_model(build(config))
    tx = make_optimizer(config, steps_per_epoch)
    opt_state = tx.init(params)
    step_no, best_val, best_epoch = 0, math.inf, -1
    if run.latest_step() is not None:
        state, extra = run.restore({"params": nnx.to_pure_dict(params), "opt": opt_state})
        nnx.replace_by_pure_dict(params, state["params"])
        opt_state = state["opt"]
        step_no = int(extra["step"])
        best_val = float(extra.get("best_val", math.inf))
        best_epoch = int(extra.get("best_epoch", -1))
    params, opt_state, rest = sharding.replicate((params, opt_state, rest), mesh)
    xn, yn = sharding.replicate((norms["x"], norms["y"]), mesh)
    n_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))

    periodic, use_coords = config["periodic"], config["coords"]
    step_fn = make_train_step(graphdef, tx, config["loss"], use_coords, periodic, config.get("h1_loss"))
    eval_fn = make_eval_step(graphdef, use_coords, periodic, h1=False)
    abort_at = int(os.environ[ABORT_ENV]) if os.environ.get(ABORT_ENV) else None
    total = config["epochs"] * steps_per_epoch
    bestrun = runs.Run(run.path / BEST, keep=1)

    def save(epoch_done: bool):
        run.save(step_no, {"params": nnx.to_pure_dict(params), "opt": opt_state},
                 extra={"step": step_no, "best_val": best_val, "best_epoch": best_epoch,
                        "epoch_end": epoch_done})

    if not resumed:
        run.log(event="start", model=model, params=n_params, devices=n_dev, n_train=len(train_data),
                n_val=len(val_data), resolution=list(full.spatial))
    bar = runs.progress(total=total, desc=f"train {model}", unit="step", initial=step_no) if progress else None
    stopped = False
    try:
        while step_no < total:
            epoch, start = divmod(step_no, steps_per_epoch)
            t0 = time.perf_counter()
            loss_sum, count = 0.0, 0
            losses = []
            for x, y in train_data.batches(bs, seed=opts["seed"], epoch=epoch, start=start, mesh=mesh):
                params, opt_state, value = step_fn(params, opt_state, rest, x, y, xn, yn)
                losses.append(value)
                step_no += 1
                if abort_at is not None and step_no >= abort_at:
                    os._exit(75)  # simulated crash: no cleanup, no checkpoint
                if bar is not None:
                    bar.update(1)
                    if step_no % 10 == 0 or step_no % steps_per_epoch == 0:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{float(value):.4g}")
                if step_no % steps_per_epoch and step_no % config["checkpoint_every"] == 0:
                    save(False)
                if max_steps is not None and step_no >= max_steps and step_no % steps_per_epoch:
                    stopped = True
                    break
            if losses:
                loss_sum, count = float(np.sum(jax.device_get(losses))), len(losses)
            if stopped:
                save(False)
                break
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch + 1, "step": step_no, "train_loss": loss_sum / max(count, 1),
                   "seconds": seconds, "lr": float(tx_lr(config, steps_per_epoch, step_no))}
            if len(val_data):
                val = _mean_metrics(eval_fn, params, rest, val_data, bs, xn, yn, mesh)["rel_l2"]
                row["val_rel_l2"] = val
            else:
                val = row["train_loss"]
            if val < best_val:
                best_val, best_epoch = val, epoch + 1
                bestrun.save(step_no, {"params": nnx.to_pure_dict(params)},
                             extra={"epoch": epoch + 1, "val_rel_l2": val})
            save(True)
            run.log(**row)
            if max_steps is not None and step_no >= max_steps:
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
        bestrun.close()
    result = {"run": str(run.path), "best_val": best_val, "best_epoch": best_epoch, "step": step_no,
              "params": n_params, "tests": {}}
    if stopped:
        run.close()
        return result
    if tests:
        from operators.evaluate import evaluate

        for test in tests:
            metrics = evaluate(run, test, plot=True, plot_samples=plot_samples)
            run.log(event="test", **metrics)
            result["tests"][str(test)] = metrics
    runs.atomic_write_bytes(run.path / "results.json",
                            (json.dumps(runs._jsonable(result), indent=2) + "\n").encode())
    run.close()
    return result


def tx_lr(config: dict, steps_per_epoch: int, step: int) -> float:
    """Learning rate at ``step`` (for the metrics log)."""
    sched = make_schedule(config["schedule"], config["lr"], config["epochs"] * steps_per_epoch,
                          steps_per_epoch, config["epochs"])
    return float(sched(step))


def _mean_metrics(eval_fn, params, rest, data, batch_size, xn, yn, mesh) -> dict:
    """Sample-mean metrics over ``data`` (every sample counted once; the last short batch is
    evaluated unsharded)."""
    import jax

    sums: dict[str, float] = {}
    n = len(data)
    n_dev = int(mesh.devices.size)
    full = (n // batch_size) * batch_size
    parts = []
    if full:
        parts.append(data.batches(batch_size, shuffle=False, drop_last=True, mesh=mesh))
    if n - full:
        tail = data.subset(np.arange(full, n))
        shard = (n - full) % n_dev == 0
        parts.append(tail.batches(n - full, shuffle=False, drop_last=True, shard=shard, mesh=mesh))
    for it in parts:
        for x, y in it:
            m, _ = eval_fn(params, rest, x, y, xn, yn)
            for k, v in jax.device_get(m).items():
                sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / n for k, v in sums.items()}
