"""What a training run of a neural operator is made of: the papers' recipes, the learning-rate
schedules, the hyper-parameters that follow from the data, and the run configuration.

``config.json`` of a run folder (docs/design.md, "Run folders") is :func:`run_config`: the
model and its hyper-parameters, the data layout (variables, channels, grid, periodicity, the
output variables' dimensions for prediction) and the training options. It is everything needed
to rebuild the model (:func:`operators.run.model_from_config`) and to check that other data fit
the run (:func:`operators.run.check_compatible`).

Optimiser (the papers' recipes): AdamW (weight decay 1e-4). MgNO (He et al. 2024): one-cycle
cosine schedule, peak 5e-4 starting at peak/2 and ending at peak/200 with 20% warm-up, batch 8,
relative H1 loss. FNO / U-NO (Li et al. 2021): lr 1e-3 halved after every fifth of the steps
(100 of 500 epochs in the paper), batch 20, relative L2 loss.
"""

from __future__ import annotations

import math

import numpy as np

from operators.registry import MODELS, default_hparams, default_padding, fit_base_resolution

__all__ = [
    "CONFIG_VERSION",
    "TRAIN_DEFAULTS",
    "base_resolution_for",
    "data_periodic",
    "learning_rate",
    "make_optimizer",
    "make_schedule",
    "model_hparams",
    "output_layout",
    "positive_channels",
    "run_config",
    "train_defaults",
]

#: 2: trained by the engine of ``pde_data.runs`` (metrics ``loss``/``val_rel_l2`` per row,
#: best model on ``val_rel_l2``) and with the output layout stored for ``predict``.
CONFIG_VERSION = 2

_MGNO = {"lr": 5e-4, "weight_decay": 1e-4, "batch_size": 8, "loss": "h1", "schedule": "onecycle",
         "epochs": 500, "normaliser": "unit", "coords": False}
_FNO = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 20, "loss": "l2", "schedule": "step",
        "epochs": 500, "normaliser": "pointwise", "coords": True}
#: training defaults per model: the recipe of its paper
TRAIN_DEFAULTS: dict[str, dict] = {"mgno": _MGNO, "mgno-conv": _MGNO, "fno": _FNO, "uno": _FNO}
SCHEDULES = ("onecycle", "step", "constant")
LOSSES = ("l2", "h1")
NORMALISERS = ("unit", "pointwise")


def train_defaults(model: str) -> dict:
    """Training defaults of ``model`` (the paper recipe of its family)."""
    return dict(TRAIN_DEFAULTS.get(model, _FNO))


# ------------------------------------------------------------------------------------------
# optimiser and schedule
# ------------------------------------------------------------------------------------------
def make_schedule(kind: str, lr: float, total_steps: int, steps_per_epoch: int | None = None,
                  epochs: int | None = None):
    """Learning rate per step: ``onecycle`` (MgNO), ``step`` (FNO: x0.5 after each fifth of the
    steps) or ``constant``. (``steps_per_epoch`` and ``epochs`` are accepted for old callers.)"""
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
    raise ValueError(f"unknown schedule {kind!r}; choose from {list(SCHEDULES)}")


def _schedule_of(config: dict):
    total = int(config["epochs"]) * int(config["steps_per_epoch"])
    return make_schedule(config["schedule"], config["lr"], total)


def make_optimizer(config: dict):
    """``(tx, schedule)``: AdamW with the run's schedule (over ``epochs * steps_per_epoch``
    steps) and weight decay."""
    import optax

    sched = _schedule_of(config)
    return optax.adamw(sched, weight_decay=config["weight_decay"]), sched


def learning_rate(config: dict, step: int) -> float:
    """The learning rate of the run at global ``step``."""
    return float(_schedule_of(config)(step))


# ------------------------------------------------------------------------------------------
# hyper-parameters from the data
# ------------------------------------------------------------------------------------------
def data_periodic(data) -> bool:
    """Whether the grid of ``data`` (FieldData) is periodic: its ``periodic`` attribute (from the
    dataset's ``periodic`` attribute or its coordinates, ``pde_data.pipeline``), else the PDE's
    boundary conditions (``wrap`` padding: Burgers, Navier-Stokes), else a node grid."""
    if data.periodic is not None:
        return bool(data.periodic)
    pde = str((data.attrs or {}).get("pde", ""))
    try:
        return default_padding(pde) == "wrap"
    except ValueError:
        return False


def base_resolution_for(spatial, periodic: bool, levels: int) -> int:
    """``base_resolution`` of ``mgno-conv`` for a training grid: its number of cells per axis
    (``s - 1`` on a node grid, ``s`` periodic; the largest axis), rounded to the nearest multiple
    of ``2^(levels-1)`` (at least that), so the fine-level kernels are (close to) the plain 3x3
    stencils on the training grid."""
    cells = max(int(s) if periodic else int(s) - 1 for s in spatial)
    m = 2 ** (levels - 1)
    return max(m, math.floor(cells / m + 0.5) * m)


def model_hparams(model: str, data, hparams: dict) -> dict:
    """Hyper-parameters of ``model`` for training on ``data``: the defaults with the padding of
    the data's boundary conditions, the user's ``hparams``, and the grid-dependent ones the user
    did not give, taken from the training grid: ``grid_size`` of ``mgno`` (its prolongation
    kernels follow the parity of the level sizes) and the ``base_resolution`` of ``mgno-conv``,
    ``unet-no`` and ``vit-no`` (:func:`operators.registry.fit_base_resolution`)."""
    periodic = data_periodic(data)
    pde = str((data.attrs or {}).get("pde", ""))
    try:  # padding to suit the boundary conditions of the data (zeros / wrap / reflect)
        hp = default_hparams(model, pde=pde, periodic=periodic)
    except ValueError:
        hp = default_hparams(model, periodic=periodic)
    unknown = sorted(set(hparams) - set(hp))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for model {model!r}; known: {sorted(hp)}")
    for name, value in hparams.items():
        check_hparam(model, name, value, hp[name])
    hp.update(hparams)
    spatial = [int(s) for s in data.spatial]
    if "grid_size" in hp and "grid_size" not in hparams:
        hp["grid_size"] = spatial[0] if len(set(spatial)) == 1 else spatial
    if "base_resolution" in hp and "base_resolution" not in hparams:
        hp["base_resolution"] = fit_base_resolution(model, hp, spatial, periodic)
    return hp


def check_hparam(model: str, name: str, value, default) -> None:
    """A ``ValueError`` naming ``name`` when ``value`` cannot be what its ``default`` is: a
    number for a number (an integer >= 1 where the default is a size >= 1, finite for a
    float), a flag for a flag, a name for a name. Lists and ``None`` defaults are left to the
    model, which checks them itself."""
    bad = None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            bad = "true or false"
    elif isinstance(default, int):
        least = 1 if default >= 1 else 0
        if isinstance(value, (int, float, str)) and (
                isinstance(value, bool) or not isinstance(value, int) or value < least):
            bad = f"an integer >= {least}"
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            bad = "a finite number >= 0"
    elif isinstance(default, str) and not isinstance(value, str):
        bad = "a name (string)"
    if bad:
        raise ValueError(f"hyper-parameter {name}={value!r} of model {model!r} must be {bad} "
                         f"(default {default!r})")


def positive_channels(x) -> list[bool]:
    """Per input channel: are all training values > 0 (e.g. a Darcy coefficient)?"""
    mins = None
    for block in (x.iter_chunks() if hasattr(x, "iter_chunks") else [np.asarray(x)]):
        m = np.asarray(block).reshape(-1, block.shape[-1]).min(axis=0)
        mins = m if mins is None else np.minimum(mins, m)
    return [bool(v > 0) for v in mins]


def output_layout(ds, output_vars) -> dict:
    """How each output variable of ``ds`` is laid out, so a prediction on inputs alone can be
    written back as the same variables: ``{var: {"dims": [...], "sizes": {dim: n}, "coords":
    {dim: values}, "attrs": {...}}}``: the dims after ``sample``, and the sizes and coordinate
    values of the non-spatial ones (e.g. the times ``t`` of a trajectory)."""
    from pde_data.schema import SAMPLE, SPATIAL_DIMS

    layout = {}
    for name in output_vars:
        da = ds[name]
        extra = [d for d in da.dims if d != SAMPLE and d not in SPATIAL_DIMS]
        coords = {d: np.asarray(ds.coords[d].values).tolist() for d in extra if d in ds.coords}
        attrs = {k: v for k, v in da.attrs.items() if isinstance(v, (str, int, float, np.number))}
        layout[name] = {"dims": [d for d in da.dims if d != SAMPLE],
                        "sizes": {d: int(da.sizes[d]) for d in extra}, "coords": coords,
                        "attrs": attrs}
    return layout


# ------------------------------------------------------------------------------------------
# the run configuration
# ------------------------------------------------------------------------------------------
def check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {sorted(MODELS)}")


def training_options(model: str, *, epochs=None, batch_size=None, lr=None, weight_decay=None,
                     schedule=None, loss=None, normaliser=None, coords=None, seed=0) -> dict:
    """The training options of a run: ``model``'s defaults updated by the arguments given,
    checked (a ``ValueError`` names the first bad one)."""
    check_model(model)
    d = train_defaults(model)
    opts = {
        "epochs": d["epochs"] if epochs is None else epochs,
        "batch_size": d["batch_size"] if batch_size is None else batch_size,
        "lr": d["lr"] if lr is None else lr,
        "weight_decay": d["weight_decay"] if weight_decay is None else weight_decay,
        "schedule": d["schedule"] if schedule is None else schedule,
        "loss": d["loss"] if loss is None else loss,
        "normaliser": d["normaliser"] if normaliser is None else normaliser,
        "coords": d["coords"] if coords is None else bool(coords),
        "seed": seed,
    }
    for key in ("epochs", "batch_size"):
        opts[key] = positive_int(opts[key], key)
    opts["seed"] = nonnegative_int(opts["seed"], "seed")
    opts["lr"] = positive_float(opts["lr"], "lr")
    opts["weight_decay"] = nonnegative_float(opts["weight_decay"], "weight_decay")
    for key, allowed in (("loss", LOSSES), ("schedule", SCHEDULES), ("normaliser", NORMALISERS)):
        if opts[key] not in allowed:
            raise ValueError(f"unknown {key} {opts[key]!r}; choose from {list(allowed)}")
    return opts


def run_config(model: str, data, ds, data_path: str, hparams: dict, opts: dict) -> dict:
    """``config.json`` of a run of ``model`` on ``data`` (the FieldData of dataset ``ds``)."""
    periodic = data_periodic(data)
    hp = model_hparams(model, data, hparams)
    if opts.get("loss") == "h1":  # which H1 the training loss is (operators.step.loss_value)
        opts = {**opts, "h1_loss": "spectral" if periodic else "fd"}
    return {
        "version": CONFIG_VERSION,
        "model": model,
        "hparams": hp,
        "data": data_path,
        "pde": str((data.attrs or {}).get("pde", "")),
        "input_vars": list(data.input_vars),
        "output_vars": list(data.output_vars),
        "input_channel_names": data.x_channels,
        "output_channel_names": data.y_channels,
        "output_layout": output_layout(ds, data.output_vars),
        "in_channels": data.in_channels,
        "model_in_channels": data.in_channels + (data.n_spatial if opts["coords"] else 0),
        "out_channels": data.out_channels,
        "dim": data.n_spatial,
        "train_resolution": list(data.spatial),
        "periodic": periodic,
        **opts,
    }


# ------------------------------------------------------------------------------------------
# argument checks (shared by the Python API and the command line)
# ------------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(value, name: str) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def nonnegative_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)
