"""PFN models on disk: rebuild from a config, load a run, a shipped model or an export, export.

- a **run folder** (``python -m pfn train --out RUN``; ``pde_data.runs``): ``config.json``,
  ``prior_stats.npz`` (Riemann bucket ``borders`` and the typical per-dataset ``y_std``), the
  engine's orbax checkpoints and ``metrics.jsonl``;
- a **shipped model** (``pde_data.runs.shipped``, format v2): ``config.json`` + ``weights.npz``
  with ``arrays/borders`` and ``arrays/y_std``. Three ship in ``pfn/checkpoints/``
  (:func:`available`); ``python -m pfn export RUN NAME`` writes one to ``--dest`` or
  ``./exports/NAME``.

Every loader returns ``(model, config, stats)`` with ``stats = {"borders", "y_std"}``, what
``pfn.estimators`` and ``pfn.evaluate`` take. No pickle anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from flax import nnx

from pde_data.runs import Run, RunError, shipped
from pfn.model import PFN

SHIPPED_DIR = Path(__file__).parent / "checkpoints"
PACKAGE = "pfn"
STATS = "prior_stats"  # the run folder's arrays file: borders, y_std
MODEL_KEYS = ("num_features", "n_outputs", "n_classes", "d_model", "n_heads", "n_layers", "d_ff")


def available() -> list[str]:
    """Names of the models shipped in the package (``from_pretrained`` takes them)."""
    return shipped.available(SHIPPED_DIR)


def build_model(cfg: dict, seed: int | None = None) -> PFN:
    """A freshly initialised PFN of the architecture ``cfg`` describes."""
    missing = [k for k in MODEL_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"not a PFN config: it lacks {missing}")
    return PFN(cfg["num_features"], cfg["n_outputs"], n_classes=cfg["n_classes"],
               d_model=cfg["d_model"], n_heads=cfg["n_heads"], n_layers=cfg["n_layers"],
               d_ff=cfg["d_ff"], standardise=bool(cfg.get("standardise", False)),
               norm=cfg.get("norm", "pre"), zero_init=bool(cfg.get("zero_init", False)),
               x_encoder=cfg.get("x_encoder", "linear"),
               rngs=nnx.Rngs(cfg.get("seed", 0) if seed is None else seed))


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a training run folder (a config and no shipped weights)."""
    p = Path(path)
    return (p / "config.json").is_file() and not (p / shipped.WEIGHTS).exists()


def load_run(path: str | os.PathLike, step: int | None = None):
    """``(model, config, stats)`` of a run folder's latest (or ``step``'s) checkpoint. A path
    that is not a run folder is a ``RunError``; nothing is created."""
    from pde_data.runs.loop import restore_params

    p = Path(path)
    if not (p / "config.json").is_file():
        raise RunError(f"{p} is not a PFN run folder (no config.json"
                       f"{'' if p.exists() else '; the folder does not exist'})")
    run = Run(p)
    try:
        cfg = run.read_config()
        if any(k not in cfg for k in MODEL_KEYS):
            raise RunError(f"{p} is not a PFN run folder (its config.json describes no PFN)")
        stats = run.load_arrays(STATS)
        model = restore_params(run, build_model(cfg), step=step)
    finally:
        run.close()
    return model, cfg, stats


def load_shipped(name_or_folder: str | os.PathLike):
    """``(model, config, stats)`` of a shipped model: a name of :func:`available` or a folder
    written by :func:`export` (format v2; the first exports, format v1, load too)."""
    folder = shipped.resolve(name_or_folder, SHIPPED_DIR)
    model_file = shipped.read(folder, PACKAGE)
    cfg = model_file.config
    try:
        model = build_model(cfg)
    except ValueError as err:
        raise shipped.ModelFileError(f"{folder}: {err}") from err
    shipped.assign(model, model_file)
    missing = [k for k in ("borders", "y_std") if k not in model_file.arrays]
    if missing:
        raise shipped.ModelFileError(f"{folder / shipped.WEIGHTS} lacks the arrays {missing}")
    stats = {k: np.asarray(model_file.arrays[k], np.float32) for k in ("borders", "y_std")}
    return model, cfg, stats


def load_any(model: str | os.PathLike):
    """``(model, config, stats)`` from a shipped name, an export folder or a run folder."""
    if is_run(model):
        return load_run(model)
    return load_shipped(model)


def export(run_path: str | os.PathLike, name: str, dest: str | os.PathLike | None = None,
           overwrite: bool = False, step: int | None = None) -> Path:
    """Write the run's latest (or ``step``'s) parameters, config and bucket borders as the
    shipped model ``name`` into ``dest`` (default ``./exports/NAME``); returns the folder.

    Refused before anything is written: a name that is not plain (``/``, ``..``), a path that
    is no run folder, an existing non-empty ``dest`` without ``overwrite``."""
    folder = shipped.export_folder(name, dest)
    if not (Path(run_path) / "config.json").is_file():
        raise RunError(f"{run_path} is not a PFN run folder (no config.json"
                       f"{'' if Path(run_path).exists() else '; the folder does not exist'})")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; choose another --dest")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass --overwrite to replace it, or "
                              "choose another --dest")
    model, cfg, stats = load_run(run_path, step=step)
    if step is None:
        run = Run(run_path)
        step = run.latest_step()
        run.close()
    trained = {"name": name, "run": str(Path(run_path).absolute()), "step": step}
    return shipped.write(folder, package=PACKAGE, config=cfg,
                         params=nnx.to_pure_dict(nnx.state(model, nnx.Param)),
                         arrays={"borders": np.asarray(stats["borders"], np.float32),
                                 "y_std": np.asarray(stats["y_std"], np.float32)},
                         trained=trained, overwrite=overwrite)
