"""Layers of the neural operators (channel-last, any resolution)."""

from .attention import IntegralAttention
from .conv import Conv, ConvTranspose
from .differential import DiffConv
from .disco import DiscoConv
from .grid import check_padding, quadrature_weights, resample_linear
from .multigrid import MgConv, reference_prolongation_kernels
from .pointwise import ChannelMLP, GridEmbedding, Pointwise, QuadratureNorm
from .spectral import SpectralConv
from .unet import ConvBlock, Down, Up
from .vit import PatchDecode, PatchEmbed, PositionalEncoding, TransformerBlock

__all__ = [
    "ChannelMLP",
    "Conv",
    "ConvBlock",
    "ConvTranspose",
    "DiffConv",
    "DiscoConv",
    "Down",
    "GridEmbedding",
    "IntegralAttention",
    "MgConv",
    "PatchDecode",
    "PatchEmbed",
    "Pointwise",
    "PositionalEncoding",
    "QuadratureNorm",
    "SpectralConv",
    "TransformerBlock",
    "Up",
    "check_padding",
    "quadrature_weights",
    "reference_prolongation_kernels",
    "resample_linear",
]
