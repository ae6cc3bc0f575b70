"""The forward map of a trained neural operator, its training loss and its metrics.

One forward map for training, evaluation and prediction (:func:`forward`): encode the input
with the normaliser fitted on the train split, append coordinate channels when the run uses
them, apply the model, decode the output into physical units. The training loss is an engine
``LossFn`` (``pde_data.runs.loop``): :func:`make_loss` closes over the normalisers (arrays, so
the engine's one jitted step sees them as constants) and returns the relative L2 or H1 loss of
a batch ``(x, y)``. Metrics are the per-sample relative L2 and H1 errors, averaged over a split
with every sample counted once (:func:`mean_metrics`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import operators.losses as L

__all__ = [
    "forward",
    "loss_value",
    "make_loss",
    "make_metric_fn",
    "make_predictor",
    "mean_metrics",
    "metric_values",
    "predict_batch",
    "prepare_input",
]


def prepare_input(x, x_norm, coords: bool, periodic: bool):
    """Encoded input with coordinate channels appended when the run uses them."""
    from pde_data.coordinates import add_coordinates

    z = x_norm.encode(x)
    return add_coordinates(z, periodic) if coords else z


def forward(model, x, normalisers: dict, coords: bool, periodic: bool):
    """Prediction in physical units: ``decode(model(encode(x)))``."""
    return normalisers["y"].decode(model(prepare_input(x, normalisers["x"], coords, periodic)))


def loss_value(kind: str, pred, true, periodic: bool, h1_kind: str | None = None):
    """Training loss, batch mean: ``l2`` relative L2; ``h1`` the MgNO recipe (He et al. 2024):
    on periodic grids relative H1 by Parseval with integer wavenumbers, derivative weight for
    ``|k| < 20``; on node grids the same weighting with finite differences (the FFT of a
    non-periodic field sees a jump at the boundary): :func:`operators.losses.mgno_rel_h1`, or
    spectral on any grid with ``h1_kind="spectral"`` (the reference's ``HsLoss``);
    ``h1-helmholtz`` the MgNO code's absolute Helmholtz loss
    (:func:`operators.losses.mgno_helmholtz_h1`)."""
    if kind == "l2":
        return L.rel_l2(pred, true, periodic)
    if kind == "h1-helmholtz":
        return L.mgno_helmholtz_h1(pred, true)
    if kind == "h1":
        if h1_kind is None:
            h1_kind = "spectral" if periodic else "fd"
        if h1_kind not in ("spectral", "fd"):
            raise ValueError(f"unknown H1 loss kind {h1_kind!r}; choose 'spectral' or 'fd'")
        return L.mgno_rel_h1(pred, true, h1_kind == "spectral")
    raise ValueError(f"unknown loss {kind!r}; choose 'l2', 'h1' or 'h1-helmholtz'")


def metric_values(pred, true, periodic: bool, h1: bool = True) -> dict:
    """Per-sample relative L2 and H1 errors (H1: spectral on periodic grids, second-order finite
    differences on node grids), each of shape ``(batch,)``."""
    out = {"rel_l2": L.rel_l2_per_sample(pred, true, periodic)}
    if h1:
        kind = "spectral" if periodic else "fd"
        out["rel_h1"] = L.rel_h1_per_sample(pred, true, kind, periodic)
    return out


def device_normalisers(normalisers: dict, mesh=None) -> dict:
    """The normalisers with their statistics as device arrays (replicated over ``mesh``)."""
    from pde_data import sharding

    norms = jax.tree_util.tree_map(jnp.asarray, dict(normalisers))
    if mesh is not None and int(mesh.devices.size) > 1:
        norms = sharding.replicate(norms, mesh)
    return norms


def make_loss(config: dict, normalisers: dict, mesh=None):
    """The training loss of a run as an engine ``LossFn``: ``loss(model, (x, y), key) ->
    (loss, {})`` with the run's loss kind, coordinates and normalisers (closed over)."""
    kind, coords, periodic = config["loss"], bool(config["coords"]), bool(config["periodic"])
    h1_kind = config.get("h1_loss")
    if kind not in ("l2", "h1", "h1-helmholtz") or (kind == "h1" and h1_kind not in (None, "spectral", "fd")):
        raise ValueError(f"unknown loss {kind!r} (H1 kind {h1_kind!r}); choose 'l2', 'h1' or 'h1-helmholtz'")
    norms = device_normalisers(normalisers, mesh)

    def loss(model, batch, key):
        del key  # deterministic models
        x, y = batch
        return loss_value(kind, forward(model, x, norms, coords, periodic), y, periodic, h1_kind), {}

    return loss


def make_predictor(model, config: dict):
    """``predict(model, x, normalisers)``: one jitted forward map for models of ``model``'s
    structure (its graph is closed over, so a model with unhashable hyper-parameters, e.g.
    lists, compiles once per input shape); numpy or device arrays in, device arrays out."""
    graphdef, _ = nnx.split(model)
    coords, periodic = bool(config["coords"]), bool(config["periodic"])

    @jax.jit
    def apply(state, x, norms):
        return forward(nnx.merge(graphdef, state), x, norms, coords, periodic)

    def predict(m, x, normalisers):
        return apply(nnx.state(m), jnp.asarray(x), {"x": normalisers["x"], "y": normalisers["y"]})

    return predict


def make_metric_fn(model, config: dict, h1: bool = True):
    """``metrics(model, x, y, normalisers) -> ({name: batch sum}, pred)``: the relative L2
    (and H1) errors of a batch, jitted once for models of ``model``'s structure."""
    graphdef, _ = nnx.split(model)
    coords, periodic = bool(config["coords"]), bool(config["periodic"])

    @jax.jit
    def sums(state, x, y, norms):
        pred = forward(nnx.merge(graphdef, state), x, norms, coords, periodic)
        return {k: v.sum() for k, v in metric_values(pred, y, periodic, h1).items()}, pred

    def metrics(m, x, y, normalisers):
        return sums(nnx.state(m), x, y, {"x": normalisers["x"], "y": normalisers["y"]})

    return metrics


def predict_batch(model, normalisers: dict, config: dict, x, predictor=None):
    """The prediction of ``model`` for inputs ``x`` ``(k, *spatial, c_in)`` in physical units
    (numpy); ``predictor``: a :func:`make_predictor` to reuse."""
    predictor = predictor or make_predictor(model, config)
    return np.asarray(predictor(model, x, normalisers))


def mean_metrics(model, data, batch_size: int, normalisers: dict, config: dict, *,
                 h1: bool = True, mesh=None, take=None, metric_fn=None) -> dict:
    """Sample-mean relative L2 (and H1) of ``model`` over ``data`` (FieldData): every sample
    counted once (full batches sharded over ``mesh``, the last short batch unsharded).
    ``take``: also return the predictions of the first ``take`` samples, ``(metrics, pred)``.
    ``metric_fn``: a :func:`make_metric_fn` to reuse (e.g. at every validation)."""
    from pde_data import sharding

    mesh = mesh if mesh is not None else sharding.data_mesh()
    n_dev = int(mesh.devices.size)
    metric_fn = metric_fn or make_metric_fn(model, config, h1)
    norms = device_normalisers(normalisers, mesh)
    if n_dev > 1:
        model = nnx.merge(*_replicated(model, mesh))
    n = len(data)
    bs = max(n_dev, int(batch_size) - int(batch_size) % n_dev)
    full = (n // bs) * bs
    parts = []
    if full:
        parts.append(data.batches(bs, shuffle=False, drop_last=True, mesh=mesh))
    if n - full:
        tail = data.subset(np.arange(full, n))
        shard = (n - full) % n_dev == 0
        parts.append(tail.batches(n - full, shuffle=False, drop_last=True, shard=shard, mesh=mesh))
    sums: dict[str, float] = {}
    preds = []
    for it in parts:
        with it:
            for x, y in it:
                m, pred = metric_fn(model, x, y, norms)
                if take and sum(len(p) for p in preds) < take:
                    preds.append(np.asarray(pred))
                for k, v in jax.device_get(m).items():
                    sums[k] = sums.get(k, 0.0) + float(v)
    metrics = {k: v / n for k, v in sums.items()}
    if take is None:
        return metrics
    return metrics, (np.concatenate(preds)[:take] if preds else None)


def _replicated(model, mesh):
    from pde_data import sharding

    graphdef, state = nnx.split(model)
    return graphdef, sharding.replicate(state, mesh)
