"""Compact, shippable PFN checkpoints: ``pfn/checkpoints/<name>/{config.json, weights.npz}``.

``export(run, name)`` copies a run's final parameters (plain float32 arrays keyed by their
path in the module, plus the Riemann borders and prior statistics) and its config into the
package. ``load_checkpoint(name_or_path)`` rebuilds the model; no pickle anywhere.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from flax import nnx

from pde_data.runs import Run, atomic_write_bytes

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
FORMAT_VERSION = 1


def available() -> list[str]:
    """Names of the checkpoints shipped in the package."""
    if not CHECKPOINT_DIR.exists():
        return []
    return sorted(p.name for p in CHECKPOINT_DIR.iterdir() if (p / "weights.npz").exists())


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        else:
            out[key] = np.asarray(v, dtype=np.float32)
    return out


def _unflatten(flat):
    tree: dict = {}
    for key, v in flat.items():
        node = tree
        parts = key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(int(part) if part.isdigit() else part, {})
        node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = v
    return tree


def export(run_path: str, name: str, dest: str | None = None, step: int | None = None) -> Path:
    """Write the run's (latest) parameters + config as checkpoint ``name``; returns its folder."""
    from pfn.train import load_run

    model, cfg, stats = load_run(run_path, step=step)
    run = Run(run_path)
    trained_step = run.latest_step() if step is None else step
    run.close()
    params = nnx.state(model, nnx.Param).to_pure_dict()
    arrays = {f"params/{k}": v for k, v in _flatten(params).items()}
    arrays["borders"] = np.asarray(stats["borders"], np.float32)
    arrays["y_std"] = np.asarray(stats["y_std"], np.float32)
    folder = Path(dest) if dest else CHECKPOINT_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(folder / "weights.npz", buf.getvalue())
    meta = {"format_version": FORMAT_VERSION, "name": name, "trained_steps": trained_step,
            "config": cfg}
    atomic_write_bytes(folder / "config.json", (json.dumps(meta, indent=2, sort_keys=True)
                                                + "\n").encode())
    for f in ("weights.npz", "config.json"):  # shipped files: world-readable
        (folder / f).chmod(0o644)
    return folder


def load_checkpoint(name_or_path: str):
    """(model, config, stats) for a shipped name or a checkpoint folder path."""
    from pfn.train import build_model

    folder = Path(name_or_path)
    if not (folder / "weights.npz").exists():
        if name_or_path not in available():
            raise ValueError(f"unknown PFN checkpoint {name_or_path!r}; available: "
                             f"{', '.join(available()) or '(none shipped)'}")
        folder = CHECKPOINT_DIR / name_or_path
    try:
        meta = json.loads((folder / "config.json").read_text())
        cfg = meta["config"]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{folder} is not a PFN checkpoint (config.json: {err})") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder}: checkpoint format {meta.get('format_version')} is not "
                         f"supported (expected {FORMAT_VERSION})")
    try:
        with np.load(folder / "weights.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise ValueError(f"{folder / 'weights.npz'} is corrupt: {err}") from err
    model = build_model(cfg)
    params = _unflatten({k[len("params/"):]: v for k, v in arrays.items()
                         if k.startswith("params/")})
    state = nnx.state(model, nnx.Param)
    expected = set(_flatten(state.to_pure_dict()))
    got = {k[len("params/"):] for k in arrays if k.startswith("params/")}
    if expected != got:
        raise ValueError(f"{folder}: parameters do not match the model of its config "
                         f"(missing {sorted(expected - got)[:3]}, extra {sorted(got - expected)[:3]})")
    state.replace_by_pure_dict(params)
    nnx.update(model, state)
    stats = {"borders": arrays["borders"], "y_std": arrays["y_std"]}
    return model, cfg, stats


def load_any(model: str):
    """(model, cfg, stats) from a shipped name, an export folder or a run folder."""
    if (Path(model) / "config.json").exists() and (Path(model) / "checkpoints").exists():
        from pfn.train import load_run

        return load_run(model)
    return load_checkpoint(model)
