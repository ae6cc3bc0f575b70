"""``vit-no``: a vision transformer whose patching and positional encoding are defined in
physical units (Berner et al. 2025), so it is one operator on every grid.

Patches are cells of fixed physical size ``patch_size / base_resolution`` (the same tokens on
every grid, embedded by quadrature, :class:`~operators.layers.vit.PatchEmbed`); the positional
encoding is a learned function of the tokens' physical centres; transformer blocks act on the
tokens; each token gives the output's values on its patch's reference pixels, interpolated onto
the output grid (:class:`~operators.layers.vit.PatchDecode`); a pointwise skip ``W u(x)`` passes
the input's values at every point. On the reference grid (``base_resolution`` cells) this is a
ViT with ``patch_size``-pixel patches; on any other grid, quadratures of the same integrals.
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding
from ..layers.pointwise import Pointwise
from ..layers.vit import (
    PatchDecode,
    PatchEmbed,
    PositionalEncoding,
    TransformerBlock,
    token_centres,
)

__all__ = ["VIT_NO_DEFAULTS", "ViTNO"]

VIT_NO_DEFAULTS = {
    "embed": 96,
    "depth": 4,
    "heads": 4,
    "mlp_ratio": 2,
    "patch_size": 8,
    "base_resolution": 64,
    "padding": "zeros",
    "activation": "gelu",
}


class ViTNO(nnx.Module):
    """Vision-transformer neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, embed: int = 96, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 2, patch_size: int = 8, base_resolution: int = 64,
                 padding: str = "zeros", activation: str = "gelu", rngs: nnx.Rngs):
        padding = check_padding(padding)
        periodic = padding == "wrap"
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        kw = {"dim": dim, "base_resolution": int(base_resolution), "padding": padding, "rngs": rngs}
        self.embed = PatchEmbed(in_channels, embed, int(patch_size), **kw)
        self.tokens = self.embed.tokens
        self.pos = PositionalEncoding(embed, self.tokens, dim=dim, periodic=periodic, rngs=rngs)
        self.blocks = nnx.List([TransformerBlock(embed, heads, int(embed * mlp_ratio), activation=activation, rngs=rngs)
                                for _ in range(depth)])
        self.norm = nnx.LayerNorm(embed, rngs=rngs)
        self.decode = PatchDecode(embed, out_channels, int(patch_size), **kw)
        self.skip = Pointwise(in_channels, out_channels, use_bias=False, rngs=rngs)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        z = self.embed(x) + self.pos(token_centres(self.tokens, self.dim)).astype(x.dtype)
        for block in self.blocks:
            z = block(z)
        return self.decode(self.norm(z), x.shape[1:-1]) + self.skip(x)
