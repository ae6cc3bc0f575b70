"""Neural operator models: MgNO, resolution-convergent MgNO, FNO, U-NO, and the NN-to-NO models
(converted U-Net, ViT in physical units, attention as an integral)."""

from .attention import AttentionNO
from .fno import FNO
from .mgno import MgNO
from .mgno_conv import MgNOConv
from .unet import UNet, UNetNO
from .uno import UNO
from .vit import ViTNO

__all__ = ["FNO", "UNO", "AttentionNO", "MgNO", "MgNOConv", "UNet", "UNetNO", "ViTNO"]
