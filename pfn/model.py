"""The PFN transformer (Mueller et al. 2022, section 4 and figure 2).

No positional encodings (a dataset is a set). Context points are embedded as
``W_x x + W_y y`` (separate linear maps, summed); target points get ``W_x x`` only, so their
y never enters. Attention mask: every point (context or target) attends to the context
points only, so targets do not see each other and predictions are independent per target.
A pre-LayerNorm encoder stack, then a linear head: K logits of the Riemann distribution
(regression) or class logits (classification).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class EncoderLayer(nnx.Module):
    """Pre-LN transformer block: x + MHA(LN x), then x + FF(LN x) (GELU)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=n_heads, in_features=d_model, qkv_features=d_model, decode=False,
            rngs=rngs,
        )
        self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.ff1 = nnx.Linear(d_model, d_ff, rngs=rngs)
        self.ff2 = nnx.Linear(d_ff, d_model, rngs=rngs)

    def __call__(self, h, mask=None, n_context: int | None = None):
        """``mask``: every position attends to the context positions (any, even traced, context
        size); or ``n_context`` a Python int: keys and values from the first ``n_context``
        positions only, the same result at ``n (n_context)`` instead of ``n^2`` attention cost
        (then ``mask``, if given, is a key mask ``(b, 1, 1, n_context)`` over that slice: padded
        context slots it leaves out)."""
        hn = self.norm1(h)
        if n_context is None:
            a = self.attn(hn, mask=mask, deterministic=True)
        else:
            ctx = hn[:, :n_context]
            a = self.attn(hn, ctx, ctx, mask=mask, deterministic=True)
        h = h + a
        return h + self.ff2(jax.nn.gelu(self.ff1(self.norm2(h))))


class PFN(nnx.Module):
    """Prior-data fitted network.

    ``num_features``: input dimension d (zero-pad narrower data). ``n_outputs``: Riemann
    buckets K (regression) or the maximum number of classes (classification, ``n_classes``
    > 0 embeds labels with a lookup table instead of a linear map).
    """

    def __init__(self, num_features: int, n_outputs: int, *, n_classes: int = 0,
                 d_model: int = 128, n_heads: int = 4, n_layers: int = 4, d_ff: int = 256,
                 rngs: nnx.Rngs):
        self.num_features = num_features
        self.n_classes = n_classes
        self.x_embed = nnx.Linear(num_features, d_model, rngs=rngs)
        if n_classes:
            self.y_embed = nnx.Embed(n_classes, d_model, rngs=rngs)
        else:
            self.y_embed = nnx.Linear(1, d_model, rngs=rngs)
        layers = [EncoderLayer(d_model, n_heads, d_ff, rngs=rngs) for _ in range(n_layers)]
        self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers  # flax < 0.12
        self.norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, n_outputs, rngs=rngs)

    def embed_y(self, y):
        if self.n_classes:
            return self.y_embed(y.astype(jnp.int32))
        return self.y_embed(y[..., None].astype(jnp.float32))

    def __call__(self, x, y, n_context, context_mask=None):
        """x (b, n, d), y (b, n) (only the first ``n_context`` are read) -> (b, n, n_outputs).

        Outputs at context positions are predictions for those points given the whole context
        (they include themselves); the loss uses target positions only. ``context_mask``
        ``(b, n_context)`` (optional) marks the real context slots: the others are padding that
        no position attends to, so a context padded to a fixed size (one compilation for every
        smaller context) gives the outputs of the unpadded one.
        """
        n = x.shape[1]
        is_ctx = jnp.arange(n) < n_context  # (n,)
        y_safe = jnp.where(is_ctx[None, :], y, jnp.zeros_like(y))
        h = self.x_embed(x) + jnp.where(is_ctx[None, :, None], self.embed_y(y_safe), 0.0)
        if isinstance(n_context, int) and 1 <= n_context <= n:  # static: attend to the context slice
            keys = None if context_mask is None else \
                context_mask[:, None, None, :n_context].astype(bool)
            for layer in self.layers:
                h = layer(h, keys, n_context=n_context)
        else:  # traced context size (training samples it per step): masked attention
            mask = jnp.broadcast_to(is_ctx[None, None, None, :], (1, 1, n, n))
            if context_mask is not None:
                real = jnp.zeros((x.shape[0], n), bool).at[:, :context_mask.shape[1]].set(
                    context_mask.astype(bool))
                mask = mask & real[:, None, None, :]
            for layer in self.layers:
                h = layer(h, mask)
        return self.head(self.norm(h))

    def predict(self, x_ctx, y_ctx, x_tgt, context_mask=None):
        """Outputs for targets given an explicit context: (b, m, n_outputs). ``context_mask``
        ``(b, n_ctx)``: which context slots are real (the rest is padding, ignored)."""
        n_ctx = x_ctx.shape[1]
        x = jnp.concatenate([x_ctx, x_tgt], axis=1)
        y = jnp.concatenate([y_ctx, jnp.zeros(x_tgt.shape[:2], y_ctx.dtype)], axis=1)
        return self(x, y, n_ctx, context_mask)[:, n_ctx:]
