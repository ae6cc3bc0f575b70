"""Neural operator models: MgNO, resolution-convergent MgNO, FNO, U-NO, and the NN-to-NO models
(converted U-Net and CNN, ViT in physical units, attention as an integral) with the plain
CNN, U-Net and ViT they are compared with."""

from .attention import AttentionNO
from .cnn import CNN, CNNNO
from .fno import FNO
from .mgno import MgNO, MgNOHelmholtz
from .mgno_conv import MgNOConv
from .unet import UNet, UNetNO
from .uno import UNO
from .vit import ViT, ViTNO

__all__ = ["CNN", "CNNNO", "FNO", "UNO", "AttentionNO", "MgNO", "MgNOConv", "MgNOHelmholtz", "UNet", "UNetNO", "ViT", "ViTNO"]
