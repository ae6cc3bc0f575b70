"""Neural operators in flax NNX (channel-last, any resolution): MgNO, resolution-convergent
MgNO, FNO and U-NO, their layers, losses and a registry (``build_model``, ``default_hparams``)."""

from . import layers, losses
from .models import FNO, UNO, MgNO, MgNOConv
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
    "MgNO",
    "MgNOConv",
    "build_model",
    "count_params",
    "default_hparams",
    "default_padding",
    "layers",
    "losses",
]
