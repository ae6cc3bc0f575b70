"""A trained run of a neural operator, read back: its model, normalisers and configuration.

``load_run(path)`` gives a :class:`LoadedRun` (``.model`` with the best-validation parameters or
the latest ones, ``.normalisers`` fitted on the train split, ``.config``) whose
``.predict(ds_or_path)`` applies it to new inputs and returns an ``xarray.Dataset`` with the
output variables denormalised and the input's coordinates and attributes kept. The model is
rebuilt from ``config.json`` (:func:`model_from_config`) and its parameters restored by the
engine (``pde_data.runs.loop.restore_params``). Whether other data fit the run:
:func:`check_compatible` (a :class:`DataMismatchError` says what differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.fields import DataMismatchError, check_compatible, check_inputs
from operators.predict import predict_dataset

__all__ = [
    "DataMismatchError",
    "LoadedRun",
    "check_compatible",
    "check_inputs",
    "existing_run",
    "load_normalisers",
    "load_run",
    "model_from_config",
    "open_run",
    "restore_model",
]

CHECKPOINTS = ("best", "latest")


def existing_run(path) -> Path:
    """``path`` if it is a run folder (has ``config.json``), else a ``FileNotFoundError``."""
    p = Path(path)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p} is not a run folder (no config.json); train one with "
                                "`python -m operators train --out RUN ...`")
    return p


def open_run(run):
    """A ``pde_data.runs.Run`` of ``run`` (a run folder path or a ``Run``)."""
    from pde_data.runs import Run

    return run if isinstance(run, Run) else Run(existing_run(run))


def model_from_config(config: dict):
    """The model of a run configuration, freshly initialised from its seed."""
    from flax import nnx

    from operators.models.mgno_conv import LEGACY_PROLONGATION
    from operators.registry import build_model

    hparams = dict(config["hparams"])
    if config["model"] == "mgno-conv":  # runs from before the option: the operator they trained
        hparams.setdefault("prolongation", LEGACY_PROLONGATION)
    if config["model"] == "mgno":  # before prolongation_padding: periodic where the smoothers were
        from operators.models.mgno import legacy_hparams

        hparams = legacy_hparams(hparams)
    return build_model(config["model"], config["model_in_channels"], config["out_channels"],
                       dim=config["dim"], rngs=nnx.Rngs(config["seed"]), **hparams)


def load_normalisers(run) -> dict:
    """``{"x": ..., "y": ...}``: the normalisers a run fitted on its train split."""
    from pde_data.normalize import normalizer_from_state

    run = open_run(run)
    return {k: normalizer_from_state(run.load_arrays(f"normalisers_{k}")) for k in ("x", "y")}


def restore_model(run, config: dict | None = None, which: str = "best"):
    """The model of ``run`` with its best-validation parameters (``which="best"``, the latest
    when none were kept) or those of its latest checkpoint (``"latest"``)."""
    from pde_data.runs.loop import restore_params

    if which not in CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {which!r}; choose from {list(CHECKPOINTS)}")
    run = open_run(run)
    config = run.read_config() if config is None else config
    return restore_params(run, model_from_config(config), which=which)


@dataclass
class LoadedRun:
    """A trained run in memory: ``model`` (with the ``checkpoint``'s parameters),
    ``normalisers`` (``{"x", "y"}``, fitted on its train split) and ``config``."""

    path: Path
    config: dict
    model: Any
    normalisers: dict
    checkpoint: str = "best"

    def predict(self, data, batch_size: int | None = None):
        """The prediction on the inputs of ``data`` (an ``xarray.Dataset`` or a dataset path;
        no targets needed): an ``xarray.Dataset`` with the input variables, the output variables
        in physical units, and the coordinates and attributes of ``data``."""
        attrs = {"predicted_by": f"operators run {self.path} ({self.checkpoint} checkpoint, "
                                 f"model {self.config['model']})"}
        return predict_dataset(self.model, self.normalisers, self.config, data,
                               batch_size=batch_size, attrs=attrs)


def load_run(run, which: str = "best") -> LoadedRun:
    """The run folder ``run`` read back: model (``which``: ``"best"`` or ``"latest"``
    parameters), normalisers and config, as a :class:`LoadedRun`."""
    r = open_run(run)
    try:
        config = r.read_config()
        model = restore_model(r, config, which)
        norms = load_normalisers(r)
    finally:
        if r is not run:
            r.close()
    return LoadedRun(path=r.path, config=config, model=model, normalisers=norms, checkpoint=which)
