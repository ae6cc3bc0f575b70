"""``vit-no``: a vision transformer whose patching and positional encoding are defined in
physical units (Berner et al. 2025), so it is one operator on every grid.

Patches are cells of fixed physical size ``patch_size / base_resolution`` (the same tokens on
every grid, embedded by quadrature, :class:`~operators.layers.vit.PatchEmbed`); the positional
encoding is a learned function of the tokens' physical centres; transformer blocks act on the
tokens; each token gives the output's values on its patch's reference pixels, interpolated onto
the output grid (:class:`~operators.layers.vit.PatchDecode`); a pointwise skip ``W u(x)`` passes
the input's values at every point. On the reference grid (``base_resolution`` cells) this is a
ViT with ``patch_size``-pixel patches; on any other grid, quadratures of the same integrals.

``vit`` (:class:`ViT`) is the plain vision transformer it is compared with (Dosovitskiy et al.
2021): patches of ``patch_size`` grid points (a stride-``p`` ``nnx.Conv``; the grid zero-padded
at the far end to a multiple of ``p``), a learned positional embedding per token of the training
grid, the same transformer blocks, a linear head giving each patch's ``p^d`` pixels, and the
same pointwise skip. On a grid of another size the number of tokens changes: ``pos_interp``
says what happens to the positional embedding, ``"bilinear"`` (the usual fine-tuning recipe,
e.g. timm's ``resample_abs_pos_embed``: the table resized as an image) or ``"refuse"`` (a
ValueError naming the grid). Either way a patch covers ``p`` grid points, so its physical size
shrinks on finer grids: the operator changes with the grid (the paper's point).

Both take ``param_dtype`` (float32) and ``dtype`` (the computation's; None: the input's).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ..layers.conv import as_dtype
from ..layers.grid import check_field, check_padding
from ..layers.pointwise import Pointwise
from ..layers.vit import (
    PatchDecode,
    PatchEmbed,
    PositionalEncoding,
    TransformerBlock,
    token_centres,
)

__all__ = ["VIT_DEFAULTS", "VIT_NO_DEFAULTS", "ViT", "ViTNO"]

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
                 padding: str = "zeros", activation: str = "gelu", dtype=None, param_dtype="float32",
                 rngs: nnx.Rngs):
        padding = check_padding(padding)
        periodic = padding == "wrap"
        self.dim, self.in_channels, self.out_channels, self.dtype = dim, in_channels, out_channels, dtype
        dt = {"dtype": dtype, "param_dtype": jnp.dtype(param_dtype)}
        kw = {"dim": dim, "base_resolution": int(base_resolution), "padding": padding, "rngs": rngs, **dt}
        self.embed = PatchEmbed(in_channels, embed, int(patch_size), **kw)
        self.tokens = self.embed.tokens
        self.pos = PositionalEncoding(embed, self.tokens, dim=dim, periodic=periodic, rngs=rngs, **dt)
        self.blocks = nnx.List([TransformerBlock(embed, heads, int(embed * mlp_ratio), activation=activation,
                                                 rngs=rngs, **dt) for _ in range(depth)])
        self.norm = nnx.LayerNorm(embed, rngs=rngs, **dt)
        self.decode = PatchDecode(embed, out_channels, int(patch_size), **kw)
        self.skip = Pointwise(in_channels, out_channels, use_bias=False, rngs=rngs, **dt)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        x = as_dtype(x, self.dtype)
        z = self.embed(x) + self.pos(token_centres(self.tokens, self.dim)).astype(x.dtype)
        for block in self.blocks:
            z = block(z)
        return self.decode(self.norm(z), x.shape[1:-1]) + self.skip(x)


VIT_DEFAULTS = {
    "embed": 96,
    "depth": 4,
    "heads": 4,
    "mlp_ratio": 2,
    "patch_size": 8,
    "base_resolution": 64,
    "pos_interp": "bilinear",
    "padding": "zeros",
    "activation": "gelu",
}
POS_INTERP = ("bilinear", "refuse")


class ViT(nnx.Module):
    """Plain vision transformer ``(b, *n, in_channels) -> (b, *n, out_channels)`` with patches of
    ``patch_size`` grid points and a positional embedding learned on the training grid of
    ``base_resolution`` cells (``base_resolution + 1`` points on a node grid, ``base_resolution``
    periodic): ``ceil(points / patch_size)^d`` tokens there."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, embed: int = 96, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 2, patch_size: int = 8, base_resolution: int = 64,
                 pos_interp: str = "bilinear", padding: str = "zeros", activation: str = "gelu", dtype=None,
                 param_dtype="float32", rngs: nnx.Rngs):
        padding = check_padding(padding)
        if pos_interp not in POS_INTERP:
            raise ValueError(f"unknown pos_interp {pos_interp!r}; choose from {list(POS_INTERP)}")
        p = int(patch_size)
        if p < 1 or int(base_resolution) < 1:
            raise ValueError(f"patch_size and base_resolution must be >= 1, got {patch_size}, {base_resolution}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.patch_size, self.pos_interp = p, pos_interp
        self.base_points = int(base_resolution) + (0 if padding == "wrap" else 1)
        self.base_tokens = math.ceil(self.base_points / p)
        param_dtype = jnp.dtype(param_dtype)
        dt = {"dtype": dtype, "param_dtype": param_dtype}
        self.patch = nnx.Conv(in_channels, embed, (p,) * dim, strides=p, padding="VALID", rngs=rngs, **dt)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (self.base_tokens,) * dim + (embed,), param_dtype))
        self.blocks = nnx.List([TransformerBlock(embed, heads, int(embed * mlp_ratio), activation=activation,
                                                 rngs=rngs, **dt) for _ in range(depth)])
        self.norm = nnx.LayerNorm(embed, rngs=rngs, **dt)
        self.head = nnx.Linear(embed, p**dim * out_channels, rngs=rngs, **dt)
        self.skip = nnx.Conv(in_channels, out_channels, (1,) * dim, use_bias=False, rngs=rngs, **dt)

    def positional(self, tokens: tuple[int, ...]):
        """The embedding table for a token lattice ``tokens``: the learned one, or resized."""
        table = self.pos[...]
        if tokens == table.shape[:-1]:
            return table
        if self.pos_interp == "refuse":
            grid = "x".join(str(t * self.patch_size) for t in tokens)
            raise ValueError(
                f"ViT: positional embedding learned for {self.base_tokens}^{self.dim} tokens (grid of "
                f"{self.base_points} points), the input gives {'x'.join(map(str, tokens))} tokens (padded grid "
                f"{grid}); use pos_interp='bilinear' or the training grid")
        return jax.image.resize(table, tokens + table.shape[-1:], "bilinear")

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        b, shape, p = x.shape[0], tuple(int(n) for n in x.shape[1:-1]), self.patch_size
        tokens = tuple(math.ceil(n / p) for n in shape)
        xp = jnp.pad(x, [(0, 0), *[(0, t * p - n) for t, n in zip(tokens, shape)], (0, 0)])
        z = self.patch(xp)  # (b, *tokens, embed)
        z = (z + self.positional(tokens).astype(z.dtype)).reshape(b, -1, z.shape[-1])
        for block in self.blocks:
            z = block(z)
        v = self.head(self.norm(z)).reshape((b, *tokens) + (p,) * self.dim + (self.out_channels,))
        d = self.dim  # (b, T1, .., Td, p, .., p, c) -> (b, T1 p, .., Td p, c), cropped to the grid
        perm = [0] + [ax for a in range(d) for ax in (1 + a, 1 + d + a)] + [1 + 2 * d]
        u = jnp.transpose(v, perm).reshape((b, *[t * p for t in tokens], self.out_channels))
        return u[(slice(None), *[slice(0, n) for n in shape])] + self.skip(x)
