"""Neural operators in flax NNX (channel-last, any resolution): MgNO, resolution-convergent
MgNO, FNO, U-NO and the NN-to-NO models (``unet-no``, ``vit-no``, ``attention-no``; ``convert``
turns an ordinary flax network into a neural operator), their layers, losses and a registry
(``build_model``, ``default_hparams``).

Training and applying them (docs/design.md, "The engine"): :mod:`operators.config` (recipes and
the run configuration), :mod:`operators.step` (forward map, loss, metrics), :mod:`operators.train`
(the run on the ``pde_data.runs`` engine), :mod:`operators.run` (``load_run``: a trained run read
back), :mod:`operators.evaluate` and :mod:`operators.predict` (apply it to new data)."""

from . import layers, losses
from .convert import convert
from .models import FNO, UNO, AttentionNO, MgNO, MgNOConv, MgNOHelmholtz, UNet, UNetNO, ViTNO
from .registry import (
    MODELS,
    PDE_PADDING,
    build_model,
    count_params,
    default_hparams,
    default_padding,
)

__all__ = [
    "FNO",
    "MODELS",
    "PDE_PADDING",
    "UNO",
    "AttentionNO",
    "MgNO",
    "MgNOConv",
    "MgNOHelmholtz",
    "UNet",
    "UNetNO",
    "ViTNO",
    "build_model",
    "convert",
    "count_params",
    "default_hparams",
    "default_padding",
    "layers",
    "load_run",
    "losses",
]


def __getattr__(name: str):
    # lazy: ``operators.load_run(path).predict(ds)`` without importing the training stack
    if name == "load_run":
        from .run import load_run

        return load_run
    raise AttributeError(f"module 'operators' has no attribute {name!r}")
