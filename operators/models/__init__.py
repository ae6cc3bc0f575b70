"""Neural operator models: MgNO, resolution-convergent MgNO, FNO, U-NO."""

from .fno import FNO
from .mgno import MgNO
from .mgno_conv import MgNOConv
from .uno import UNO

__all__ = ["FNO", "UNO", "MgNO", "MgNOConv"]
