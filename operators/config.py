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

Every schedule follows the run's budget (``epochs * steps_per_epoch`` steps; a run extended to
more epochs stretches it). ``schedule_every="epoch"`` holds the learning rate constant within an
epoch and steps it once per epoch, as a PyTorch scheduler stepped after each epoch does.

The recipe of the MgNO reference code (``--recipe mgno-reference``, :data:`RECIPES`): Adam with
*coupled* L2 (``optimizer="adam-l2"``: the decay ``wd * p`` is added to the gradient of the
batch-summed loss before Adam's scaling, the reference's ``Adam.py`` with its losses summed over
the batch), against the default *decoupled* AdamW (``p -= lr * wd * p`` beside Adam's step,
Loshchilov & Hutter 2019); PyTorch's ``OneCycleLR(max_lr, div_factor=2, final_div_factor=100,
pct_start=0.2, epochs=E, steps_per_epoch=1)``, stepped once per epoch, with its momentum cycling:
Adam's beta1 goes 0.95 -> 0.85 -> 0.95, opposite to the learning rate (Smith & Topin 2019).
What the reference does per dataset (:func:`recipe_options`; its README commands and scripts):

* Darcy (``darcy.py``): the above; loss ``HsLoss`` (spectral relative H1, on node grids too:
  ``h1_loss="spectral"``); normalisers (input / output): rough ``--normalizer_type GN`` without
  ``--GN`` (input raw, output one global Gaussian: ``none`` / ``unit``), multiscale
  ``GN --GN`` (``unit`` / ``unit``), smooth ``PGN --GN`` (``pointwise`` / ``pointwise``).
* Helmholtz (``helm.py``): lr 3e-4, batch 10, L2 1e-5, 100 epochs, loss ``HSloss_d``
  (``loss="h1-helmholtz"``, :func:`operators.losses.mgno_helmholtz_h1`), ``unit`` / ``unit``.
* Navier-Stokes (``navier.py``, README "NS2"): lr 1e-3, one-cycle ``pct_start=0.1`` and
  ``final_div_factor=50``, L2 1e-5, relative L2 loss, batch 500 (its ``batch_size * 10``),
  one-step pairs, 10 per trajectory (``one_step=10``, :mod:`pde_data.one_step`), no normaliser
  (``none`` / ``none``: the model adds its input, ``u + u0``).
"""

from __future__ import annotations

import math

import numpy as np

from operators.registry import MODELS, default_hparams, default_padding, fit_base_resolution

__all__ = [
    "CONFIG_VERSION",
    "RECIPES",
    "TRAIN_DEFAULTS",
    "base_resolution_for",
    "data_periodic",
    "learning_rate",
    "make_optimizer",
    "make_schedule",
    "model_hparams",
    "onecycle",
    "onecycle_momentum",
    "output_layout",
    "positive_channels",
    "recipe_options",
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
TRAIN_DEFAULTS: dict[str, dict] = {
    "mgno": _MGNO, "mgno-conv": _MGNO, "fno": _FNO, "uno": _FNO,
    # the reference trains NS one-step pairs with a relative L2 loss, lr 6e-4, decay 1e-5
    "mgno-ns": {**_MGNO, "lr": 6e-4, "weight_decay": 1e-5, "loss": "l2"},
    "mgno-helmholtz": _MGNO,
}
SCHEDULES = ("onecycle", "cosine", "step", "constant")
SCHEDULE_EVERY = ("step", "epoch")
OPTIMIZERS = ("adamw", "adam-l2")
LOSSES = ("l2", "h1", "h1-helmholtz")
H1_LOSSES = ("spectral", "fd")
#: ``none``: no normalisation (the identity; the MgNO reference on Navier-Stokes, and on the
#: inputs of Darcy rough)
NORMALISERS = ("unit", "pointwise", "none")
#: the options every run had before they could be chosen (a run folder written then has none
#: of these keys; resuming it with these values is resuming the same run). A callable value is
#: the legacy value as a function of the config (the output normaliser was the input's).
LEGACY_OPTIONS = {"optimizer": "adamw", "schedule_every": "step", "cycle_momentum": False,
                  "pct_start": 0.2, "final_div_factor": 100.0,
                  "output_normaliser": lambda config: config.get("normaliser"),
                  "one_step": None}
#: the first group of them (kept under its old name)
LEGACY_OPTIMIZER = {k: LEGACY_OPTIONS[k] for k in ("optimizer", "schedule_every", "cycle_momentum")}
#: recipes: training options set together (``--recipe``); options given explicitly win.
#: ``mgno-reference``: the training loop of the MgNO reference code (xlliu2017/MgNO,
#: ``darcy.py`` / ``utilities3.getOptimizerScheduler`` / ``Adam.py``): Adam with coupled L2
#: 1e-4, OneCycleLR (peak 5e-4, div 2, final div 100, 20% warm-up, cosine) stepped once per
#: epoch with beta1 cycling 0.95 -> 0.85 -> 0.95, batch 8, relative H1 loss, 500 epochs.
RECIPES: dict[str, dict] = {
    "mgno-reference": {"optimizer": "adam-l2", "schedule": "onecycle", "schedule_every": "epoch",
                       "cycle_momentum": True, "lr": 5e-4, "weight_decay": 1e-4, "batch_size": 8,
                       "loss": "h1", "h1_loss": "spectral", "epochs": 500, "pct_start": 0.2,
                       "final_div_factor": 100.0},
}
#: what a recipe sets differently per model (the reference's script of that model's dataset)
RECIPE_MODELS: dict[tuple[str, str], dict] = {
    ("mgno-reference", "mgno-helmholtz"): {  # helm.py, README "Helmholtz experiment"
        "lr": 3e-4, "batch_size": 10, "weight_decay": 1e-5, "epochs": 100, "loss": "h1-helmholtz",
        "normaliser": "unit", "output_normaliser": "unit"},
    ("mgno-reference", "mgno-ns"): {  # navier.py, README "NS2"
        "lr": 1e-3, "weight_decay": 1e-5, "final_div_factor": 50.0, "pct_start": 0.1, "loss": "l2",
        "batch_size": 500, "normaliser": "none", "output_normaliser": "none", "one_step": 10},
}
#: the reference's normalisers per Darcy dataset (README commands), by the data's ``pde``
RECIPE_DATA: dict[tuple[str, str], dict] = {
    ("mgno-reference", "darcy-rough"): {"normaliser": "none", "output_normaliser": "unit"},
    ("mgno-reference", "darcy-multiscale"): {"normaliser": "unit", "output_normaliser": "unit"},
    ("mgno-reference", "darcy"): {"normaliser": "pointwise", "output_normaliser": "pointwise"},
}
#: one-cycle shape (the MgNO paper's and reference's): start peak/2, end peak/200, 20% warm-up
ONECYCLE = {"pct_start": 0.2, "div_factor": 2.0, "final_div_factor": 100.0}
#: beta1 range of the momentum cycling (PyTorch OneCycleLR's base / max momentum)
MOMENTUM_RANGE = (0.85, 0.95)
ADAM_B1 = 0.9


def train_defaults(model: str) -> dict:
    """Training defaults of ``model`` (the paper recipe of its family)."""
    return dict(TRAIN_DEFAULTS.get(model, _FNO))


def recipe_options(recipe: str, model: str, pde: str | None = None) -> dict:
    """The options ``recipe`` sets for ``model`` on data of PDE ``pde``: :data:`RECIPES`, then
    :data:`RECIPE_MODELS` of the model, or (a model without its own entry) the
    :data:`RECIPE_DATA` of the data's PDE."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {sorted(RECIPES)}")
    opts = dict(RECIPES[recipe])
    if (recipe, model) in RECIPE_MODELS:
        opts.update(RECIPE_MODELS[(recipe, model)])
    elif pde and (recipe, str(pde)) in RECIPE_DATA:
        opts.update(RECIPE_DATA[(recipe, str(pde))])
    return opts


# ------------------------------------------------------------------------------------------
# optimiser and schedule
# ------------------------------------------------------------------------------------------
def _cos_anneal(start, end, rest):
    """``end + (start - end) (1 + cos(pi pct)) / 2`` with ``rest = 1 - pct`` the fraction of
    the phase still to go, written ``end + (start - end) sin^2(pi rest / 2)``: the same value,
    without float32's cancellation in ``1 + cos`` near the end of a phase."""
    import jax.numpy as jnp

    return end + (start - end) * jnp.sin(0.5 * jnp.pi * rest) ** 2


def _onecycle_phase(t, n: int, pct_start: float):
    """``(rising, rest)`` of unit ``t`` in a two-phase one-cycle over ``n`` units, as PyTorch's
    ``OneCycleLR(three_phase=False)`` places them: the first phase rises over ``[0, pct_start n
    - 1]``, the second falls over ``[pct_start n - 1, n - 1]``; ``rest`` in [0, 1] is the
    fraction of the phase still to go (0 past the end, where PyTorch raises)."""
    import jax.numpy as jnp

    t = jnp.asarray(t, jnp.float32)
    mid, last = float(pct_start * n) - 1.0, float(n) - 1.0
    up = t <= mid
    rest_up = (mid - t) / mid if mid > 0 else jnp.zeros_like(t)
    rest_down = (last - t) / max(last - mid, 1e-12)
    return up, jnp.clip(jnp.where(up, rest_up, rest_down), 0.0, 1.0)


def onecycle(peak: float, n: int, *, pct_start: float = 0.2, div_factor: float = 2.0,
             final_div_factor: float = 100.0):
    """One-cycle learning rate of unit ``t`` (a step or an epoch) over ``n`` units: PyTorch's
    ``OneCycleLR(max_lr=peak, total_steps=n, pct_start, div_factor, final_div_factor,
    anneal_strategy="cos", three_phase=False)`` (Smith & Topin 2019): cosine from
    ``peak / div_factor`` up to ``peak`` at unit ``pct_start n - 1``, then cosine down to
    ``peak / (div_factor final_div_factor)`` at unit ``n - 1``. Traceable (jit-friendly)."""
    initial = peak / div_factor
    final = initial / final_div_factor

    def lr(t):
        import jax.numpy as jnp

        up, rest = _onecycle_phase(t, n, pct_start)
        return jnp.where(up, _cos_anneal(initial, peak, rest), _cos_anneal(peak, final, rest))

    return lr


def onecycle_momentum(n: int, *, pct_start: float = 0.2, base: float = MOMENTUM_RANGE[0],
                      top: float = MOMENTUM_RANGE[1]):
    """Adam's beta1 of unit ``t`` under PyTorch's ``OneCycleLR(cycle_momentum=True)``: cosine
    from ``top`` down to ``base`` while the learning rate rises, back to ``top`` while it falls
    (high momentum with a small step, low momentum with a large one)."""
    def b1(t):
        import jax.numpy as jnp

        up, rest = _onecycle_phase(t, n, pct_start)
        return jnp.where(up, _cos_anneal(top, base, rest), _cos_anneal(base, top, rest))

    return b1


def _per_unit(fn, steps_per_unit: int):
    """``fn`` of the unit a step falls in (``step // steps_per_unit``): a schedule stepped once
    per epoch holds its value for the whole epoch."""
    if steps_per_unit == 1:
        return fn
    return lambda step: fn(step // steps_per_unit)


def make_schedule(kind: str, lr: float, total_steps: int, steps_per_epoch: int | None = None,
                  epochs: int | None = None, every: str = "step", pct_start: float | None = None,
                  final_div_factor: float | None = None):
    """Learning rate per optimiser step, following the run's budget of ``total_steps`` steps:
    ``onecycle`` (MgNO: :func:`onecycle` with the paper's shape :data:`ONECYCLE`), ``cosine``
    (from ``lr`` to 0 over the run: ``CosineAnnealingLR(T_max=run)``), ``step`` (FNO: x0.5
    after each fifth of the run) or ``constant``. ``every="epoch"``: stepped once per epoch
    (needs ``steps_per_epoch``; the schedule runs over ``epochs = total_steps //
    steps_per_epoch`` units and is constant within each). ``pct_start`` / ``final_div_factor``:
    the one-cycle's warm-up fraction and final division (default :data:`ONECYCLE`)."""
    import optax

    if every not in SCHEDULE_EVERY:
        raise ValueError(f"unknown schedule_every {every!r}; choose from {list(SCHEDULE_EVERY)}")
    per = 1
    if every == "epoch":
        if not steps_per_epoch:
            raise ValueError("a schedule stepped once per epoch needs steps_per_epoch")
        per = int(steps_per_epoch)
    n = max(int(epochs) if (every == "epoch" and epochs) else int(total_steps) // per, 1)
    if kind == "onecycle":
        shape = dict(ONECYCLE)
        if pct_start is not None:
            shape["pct_start"] = float(pct_start)
        if final_div_factor is not None:
            shape["final_div_factor"] = float(final_div_factor)
        return _per_unit(onecycle(lr, n, **shape), per)
    if kind == "cosine":
        return _per_unit(optax.cosine_decay_schedule(lr, decay_steps=n, alpha=0.0), per)
    if kind == "step":  # the paper halves every 100 of 500 epochs: five halvings in all
        every_n = max(1, round(n / 5))
        return _per_unit(optax.exponential_decay(lr, transition_steps=every_n, decay_rate=0.5,
                                                 staircase=True), per)
    if kind == "constant":
        return optax.constant_schedule(lr)
    raise ValueError(f"unknown schedule {kind!r}; choose from {list(SCHEDULES)}")


def _total_steps(config: dict) -> int:
    return int(config["epochs"]) * int(config["steps_per_epoch"])


def _schedule_of(config: dict):
    return make_schedule(config["schedule"], config["lr"], _total_steps(config),
                         steps_per_epoch=int(config["steps_per_epoch"]),
                         epochs=int(config["epochs"]),
                         every=config.get("schedule_every", "step"),
                         pct_start=config.get("pct_start"),
                         final_div_factor=config.get("final_div_factor"))


def momentum_schedule(config: dict):
    """Adam's beta1 per step: :func:`onecycle_momentum` over the run (per epoch when the
    schedule is) where ``cycle_momentum`` is set, else ``None`` (constant 0.9)."""
    if not config.get("cycle_momentum"):
        return None
    if config["schedule"] != "onecycle":
        raise ValueError("cycle_momentum cycles beta1 against a one-cycle learning rate; "
                         f"it needs schedule='onecycle', not {config['schedule']!r}")
    per = int(config["steps_per_epoch"]) if config.get("schedule_every") == "epoch" else 1
    n = max(_total_steps(config) // per, 1)
    pct_start = config.get("pct_start")
    pct_start = ONECYCLE["pct_start"] if pct_start is None else float(pct_start)
    return _per_unit(onecycle_momentum(n, pct_start=pct_start), per)


def _adam_l2(learning_rate, b1, weight_decay, grad_scale):
    """Adam with coupled L2: ``g <- grad_scale * g + weight_decay * p`` (the gradient of the
    batch-summed loss plus that of ``weight_decay |p|^2 / 2``), then Adam's scaling."""
    import optax

    return optax.chain(optax.scale(grad_scale), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_adam(b1=b1, b2=0.999, eps=1e-8),
                       optax.scale_by_learning_rate(learning_rate))


def _adamw(learning_rate, b1, weight_decay):
    import optax

    return optax.adamw(learning_rate, b1=b1, b2=0.999, eps=1e-8, weight_decay=weight_decay)


def make_optimizer(config: dict):
    """``(tx, schedule)``: the run's optimiser with its learning-rate schedule (over ``epochs *
    steps_per_epoch`` steps, per step or per epoch).

    ``optimizer="adamw"`` (default): decoupled weight decay, ``p -= lr (adam(g) + wd p)``.
    ``optimizer="adam-l2"``: coupled L2, the decay enters the gradient before Adam's
    normalisation, ``g <- B g + wd p`` with ``B = batch_size`` (the reference's losses sum over
    the batch, ours average: Adam is invariant to the scale of ``g``, the L2 balance is not).
    With ``cycle_momentum`` Adam's beta1 follows :func:`momentum_schedule`; hyper-parameters
    that follow a schedule are injected (``optax.inject_hyperparams``) so they are part of the
    checkpointed optimiser state. Plain AdamW keeps the optimiser state of runs written before
    these options (they resume)."""
    import optax

    sched = _schedule_of(config)
    kind = config.get("optimizer", "adamw")
    wd = float(config["weight_decay"])
    b1 = momentum_schedule(config)
    if kind == "adamw" and b1 is None:
        return optax.adamw(sched, weight_decay=wd), sched
    b1 = ADAM_B1 if b1 is None else b1
    if kind == "adamw":
        return optax.inject_hyperparams(_adamw)(learning_rate=sched, b1=b1, weight_decay=wd), sched
    if kind == "adam-l2":
        tx = optax.inject_hyperparams(_adam_l2)(learning_rate=sched, b1=b1, weight_decay=wd,
                                                grad_scale=float(config["batch_size"]))
        return tx, sched
    raise ValueError(f"unknown optimizer {kind!r}; choose from {list(OPTIMIZERS)}")


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
                     schedule=None, loss=None, normaliser=None, coords=None, seed=0,
                     optimizer=None, schedule_every=None, cycle_momentum=None,
                     recipe=None, pct_start=None, final_div_factor=None, output_normaliser=None,
                     h1_loss=None, one_step=None, pde: str | None = None) -> dict:
    """The training options of a run: ``model``'s defaults, updated by the ``recipe``
    (:func:`recipe_options` for ``model`` on data of PDE ``pde``) if one is named, then by the
    arguments given; checked (a ``ValueError`` names the first bad one).

    ``normaliser`` is the input's and, unless ``output_normaliser`` is given, the output's;
    ``h1_loss`` (``"spectral"`` / ``"fd"``, with ``loss="h1"``): default by the grid
    (:func:`run_config`); ``one_step``: train on that many one-step pairs per trajectory
    (:mod:`pde_data.one_step`)."""
    check_model(model)
    d = {**train_defaults(model),
         **{k: v for k, v in LEGACY_OPTIONS.items() if not callable(v)}, "h1_loss": None}
    if recipe is not None:
        d.update(recipe_options(recipe, model, pde))
    opts = {
        "epochs": d["epochs"] if epochs is None else epochs,
        "batch_size": d["batch_size"] if batch_size is None else batch_size,
        "lr": d["lr"] if lr is None else lr,
        "weight_decay": d["weight_decay"] if weight_decay is None else weight_decay,
        "schedule": d["schedule"] if schedule is None else schedule,
        "loss": d["loss"] if loss is None else loss,
        "normaliser": d["normaliser"] if normaliser is None else normaliser,
        "coords": d["coords"] if coords is None else bool(coords),
        "optimizer": d["optimizer"] if optimizer is None else optimizer,
        "schedule_every": d["schedule_every"] if schedule_every is None else schedule_every,
        "cycle_momentum": d["cycle_momentum"] if cycle_momentum is None else cycle_momentum,
        "pct_start": d["pct_start"] if pct_start is None else pct_start,
        "final_div_factor": d["final_div_factor"] if final_div_factor is None else final_div_factor,
        "one_step": d["one_step"] if one_step is None else one_step,
        "seed": seed,
    }
    opts["output_normaliser"] = (output_normaliser if output_normaliser is not None
                                 else d.get("output_normaliser") if normaliser is None and "output_normaliser" in d
                                 else opts["normaliser"])
    h1 = d["h1_loss"] if h1_loss is None else h1_loss
    if h1 is not None:
        if h1 not in H1_LOSSES:
            raise ValueError(f"unknown h1_loss {h1!r}; choose from {list(H1_LOSSES)}")
        if opts["loss"] == "h1":
            opts["h1_loss"] = h1
    if recipe is not None:
        opts["recipe"] = recipe
    for key in ("epochs", "batch_size"):
        opts[key] = positive_int(opts[key], key)
    opts["seed"] = nonnegative_int(opts["seed"], "seed")
    opts["lr"] = positive_float(opts["lr"], "lr")
    opts["weight_decay"] = nonnegative_float(opts["weight_decay"], "weight_decay")
    opts["pct_start"] = positive_float(opts["pct_start"], "pct_start")
    if opts["pct_start"] >= 1:
        raise ValueError(f"pct_start is the warm-up fraction of the one-cycle, in (0, 1); got {opts['pct_start']!r}")
    opts["final_div_factor"] = positive_float(opts["final_div_factor"], "final_div_factor")
    if opts["one_step"] is not None:
        opts["one_step"] = positive_int(opts["one_step"], "one_step")
    for key, allowed in (("loss", LOSSES), ("schedule", SCHEDULES), ("normaliser", NORMALISERS),
                         ("output_normaliser", NORMALISERS),
                         ("optimizer", OPTIMIZERS), ("schedule_every", SCHEDULE_EVERY)):
        if opts[key] not in allowed:
            raise ValueError(f"unknown {key} {opts[key]!r}; choose from {list(allowed)}")
    if not isinstance(opts["cycle_momentum"], bool):
        raise ValueError(f"cycle_momentum must be true or false, got {opts['cycle_momentum']!r}")  # noqa: TRY004
    if opts["cycle_momentum"] and opts["schedule"] != "onecycle":
        raise ValueError("cycle_momentum cycles beta1 against a one-cycle learning rate; it "
                         f"needs schedule 'onecycle', not {opts['schedule']!r}")
    return opts


def _legacy_value(key: str, config: dict):
    value = LEGACY_OPTIONS[key]
    return value(config) if callable(value) else value


def as_stored(config: dict, stored: dict | None) -> dict:
    """``config`` as a run folder written before some options existed stores it: where the
    stored config lacks keys of :data:`LEGACY_OPTIONS` and ``config`` has their legacy values,
    without them (so the same command resumes such a run); else ``config``."""
    if not stored:
        return config
    missing = [k for k in LEGACY_OPTIONS if k not in stored and k in config]
    if not missing or ("recipe" in config and "recipe" not in stored):
        return config
    if any(config[k] != _legacy_value(k, config) for k in missing):
        return config
    return {k: v for k, v in config.items() if k not in missing}


def run_config(model: str, data, ds, data_path: str, hparams: dict, opts: dict) -> dict:
    """``config.json`` of a run of ``model`` on ``data`` (the FieldData of dataset ``ds``)."""
    periodic = data_periodic(data)
    hp = model_hparams(model, data, hparams)
    if opts.get("loss") == "h1" and opts.get("h1_loss") is None:  # operators.step.loss_value
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
