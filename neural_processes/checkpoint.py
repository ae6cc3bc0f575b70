"""Models from disk: run folders, exports and the shipped checkpoints (never imports training).

* :func:`load_run` rebuilds the model of a run folder (``python -m neural_processes train``)
  from its ``config.json`` and the parameters of its latest checkpoint (the engine's layout,
  ``pde_data.runs``);
* :func:`from_pretrained` loads a model in the one shipped-model format
  (``pde_data.runs.shipped``, ``config.json`` + ``weights.npz``): a name shipped in
  ``neural_processes/checkpoints/`` (:func:`available`) or an export folder;
* :func:`export` writes a run's model in that format to a folder the user names (default
  ``./exports/NAME``), never into the installed package;
* :func:`load_any` takes either a run folder or what :func:`from_pretrained` takes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neural_processes.models import build_model

__all__ = ["SHIPPED", "available", "build", "export", "from_pretrained", "load_any", "load_run",
           "read_run_config"]

PACKAGE = "neural_processes"
SHIPPED = Path(__file__).parent / "checkpoints"
RUN_VERSION = 2  # run config version: 2 = engine checkpoints (items "params" / "opt")


def available() -> list[str]:
    """Names of the shipped models (``from_pretrained(name)``)."""
    from pde_data.runs import shipped

    return shipped.available(SHIPPED)


def build(config: dict):
    """The (untrained) model of a run config, its initialisation seeded by the run's seed."""
    return build_model(config["model"], seed=int(config.get("seed", 0)))


def _run_folder(path) -> Path:
    """``path`` if it is an existing run folder; nothing is created otherwise."""
    from pde_data.runs import RunError

    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder} does not exist (give a run folder made by `python -m "
                       "neural_processes train --out RUN`)")
    if not (folder / "config.json").is_file():
        raise RunError(f"{folder} is not a run folder: it has no config.json")
    return folder


def read_run_config(path) -> dict:
    """The config of the neural-process run folder ``path``; a ``RunError`` when the folder is
    missing, is not a neural-process run, or was written by the pre-engine layout."""
    from pde_data.runs import Run, RunError

    folder = _run_folder(path)
    config = Run(folder).read_config()
    if "format" in config or not isinstance(config.get("model"), dict) or "data" not in config:
        raise RunError(f"{folder} is not a neural_processes run folder (its config.json has no "
                       "model / data entries)")
    if config.get("version") != RUN_VERSION:
        raise RunError(f"{folder} was written by an older neural_processes (checkpoint items "
                       "'model' / 'opt' of nnx.state; runs now use the pde_data.runs engine's "
                       "'params' / 'opt'); train it again in a new --out folder")
    return config


def load_run(path, which: str = "latest", *, step: int | None = None):
    """The model of the run folder ``path`` with the parameters of its latest checkpoint (or of
    ``step``). ``which="best"`` is accepted for symmetry with the other packages (neural-process
    runs keep no validation-best parameters, so it is the latest)."""
    from pde_data.runs import Run
    from pde_data.runs.loop import restore_params

    config = read_run_config(path)
    run = Run(path)
    try:
        return restore_params(run, build(config), which, step=step)
    finally:
        run.close()


def run_step(path) -> int | None:
    """The step of the latest checkpoint of a run folder."""
    from pde_data.runs import Run

    run = Run(_run_folder(path))
    try:
        return run.latest_step()
    finally:
        run.close()


def from_pretrained(name_or_folder: str | os.PathLike):
    """A shipped model by name (e.g. ``"anp-rbf"``, ``"mpanp-rbf"``; see :func:`available`) or
    the model of an export folder (``config.json`` + ``weights.npz``)."""
    from pde_data.runs import shipped

    folder = shipped.resolve(name_or_folder, SHIPPED)
    return _from_shipped(shipped.read(folder, PACKAGE))


def _from_shipped(model_file):
    from pde_data.runs import shipped

    try:
        model = build_model(model_file.config)
    except (TypeError, ValueError) as err:
        raise shipped.ModelFileError(f"{model_file.folder / shipped.CONFIG}: the model config "
                                     f"does not build: {err}") from err
    return shipped.assign(model, model_file)


def is_run_folder(path) -> bool:
    """Whether ``path`` is a training run folder (a config and engine checkpoints)."""
    folder = Path(path)
    return (folder / "config.json").is_file() and (folder / "checkpoints").is_dir()


def load_any(name_or_path: str | os.PathLike):
    """A run folder's model (:func:`load_run`), else :func:`from_pretrained`."""
    if is_run_folder(name_or_path):
        return load_run(name_or_path)
    return from_pretrained(name_or_path)


def export(run_path, name: str, dest: str | os.PathLike | None = None,
           overwrite: bool = False) -> Path:
    """Write the latest model of the run folder ``run_path`` in the shipped-model format to
    ``dest`` (default ``./exports/NAME``); ``from_pretrained(folder)`` loads it. An existing
    export is replaced only with ``overwrite``; a missing run creates nothing."""
    from flax import nnx

    from pde_data.runs import shipped

    folder = shipped.export_folder(name, dest)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder; choose another --dest")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass --overwrite to replace it, or "
                              "choose another --dest")
    config = read_run_config(run_path)
    model = load_run(run_path)
    trained: dict[str, Any] = {"name": name, "run": str(Path(run_path).absolute()),
                               "step": run_step(run_path)}
    trained.update({k: config[k] for k in ("data", "data_options", "steps", "batch_size", "lr",
                                            "seed") if k in config})
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return shipped.write(folder, package=PACKAGE, config=model.config(), params=params,
                         trained=trained, overwrite=overwrite)
