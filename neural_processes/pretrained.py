"""Shipped checkpoints: ``export`` writes a run's final weights and model config into
``neural_processes/checkpoints/NAME/`` (``config.json`` + ``weights.npz``, plain arrays, no
pickle); ``from_pretrained(NAME)`` rebuilds the model from them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from flax import nnx

CHECKPOINTS = Path(__file__).parent / "checkpoints"


def available() -> list[str]:
    """Names of the shipped checkpoints."""
    if not CHECKPOINTS.exists():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").exists())


def _flat_params(model) -> dict[str, np.ndarray]:
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {"/".join(map(str, path)): np.asarray(v.get_value()) for path, v in flat}


def save_model(model, folder, extra: dict | None = None) -> Path:
    """Write ``config.json`` and ``weights.npz`` of ``model`` into ``folder`` (atomic files)."""
    from pde_data.runs import atomic_write_bytes

    folder = Path(folder)
    buf = io.BytesIO()
    np.savez(buf, **_flat_params(model))
    atomic_write_bytes(folder / "weights.npz", buf.getvalue())
    meta = {"model": model.config(), **(extra or {})}
    atomic_write_bytes(folder / "config.json", (json.dumps(meta, indent=2) + "\n").encode())
    for f in ("weights.npz", "config.json"):  # temp files are 0600; shipped files are read by all
        (folder / f).chmod(0o644)
    return folder


def load_model(folder):
    """Rebuild a model saved by ``save_model``; clear errors for missing, corrupt or foreign
    files and for weights that do not fit the config."""
    from neural_processes.models import build_model

    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "weights.npz"
    for p in (cfg_path, w_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing: not a neural_processes checkpoint folder")
    try:
        meta = json.loads(cfg_path.read_text())
        config = meta["model"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{cfg_path} is corrupt or not a neural_processes config: {err}") from err
    model = build_model(config)
    try:
        with np.load(w_path, allow_pickle=False) as f:
            weights = {k: f[k] for k in f.files}
    except Exception as err:
        raise ValueError(f"{w_path} is corrupt: {err}") from err
    state = nnx.state(model, nnx.Param)
    flat = nnx.to_flat_state(state)
    expected = {"/".join(map(str, p)) for p, _ in flat}
    if expected != set(weights):
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise ValueError(f"{w_path} does not match its config: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    for path, var in flat:
        w = weights["/".join(map(str, path))]
        if w.shape != var.get_value().shape:
            raise ValueError(f"{w_path}: {'/'.join(map(str, path))} has shape {w.shape}, "
                             f"expected {var.get_value().shape}")
        var.set_value(w)
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def from_pretrained(name: str):
    """Load the shipped model ``name`` (e.g. ``"anp-rbf"``, ``"mpanp-rbf"``)."""
    names = available()
    if name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; available: "
                         f"{', '.join(names) if names else '(none shipped)'}")
    return load_model(CHECKPOINTS / name)


def export(run_path, name: str, dest=None) -> Path:
    """Copy a run's latest weights and model config to ``checkpoints/NAME`` (or ``dest``)."""
    from neural_processes.train import load_run_model

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid checkpoint name {name!r}")
    model, config = load_run_model(run_path)
    from pde_data.runs import Run

    run = Run(run_path)
    step = run.latest_step()
    run.close()
    train_info = {k: config[k] for k in ("data", "steps", "batch_size", "lr", "seed")}
    return save_model(model, Path(dest) if dest else CHECKPOINTS / name,
                      extra={"trained": {**train_info, "step": step}})
