"""Layers of the neural operators (channel-last, any resolution)."""

from .conv import Conv, ConvTranspose
from .grid import check_padding, quadrature_weights, resample_linear
from .multigrid import MgConv, reference_prolongation_kernels
from .pointwise import ChannelMLP, GridEmbedding, Pointwise, QuadratureNorm
from .spectral import SpectralConv

__all__ = [
    "ChannelMLP",
    "Conv",
    "ConvTranspose",
    "GridEmbedding",
    "MgConv",
    "Pointwise",
    "QuadratureNorm",
    "SpectralConv",
    "check_padding",
    "quadrature_weights",
    "reference_prolongation_kernels",
    "resample_linear",
]
