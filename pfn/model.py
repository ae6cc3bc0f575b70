"""The PFN transformer (Mueller et al. 2022, section 4 and figure 2).

No positional encodings (a dataset is a set). Context points are embedded as
``W_x x + W_y y`` (separate linear maps, summed); target points get ``W_x x`` only, so their
y never enters. Attention mask: every point (context or target) attends to the context
points only, so targets do not see each other and predictions are independent per target.
An encoder stack, then a linear head: K logits of the Riemann distribution (regression) or
class logits (classification).

Two architecture options, both of the PFN reference code (``automl/PFNs``, ``transformer.py``
and ``layer.py``): ``norm="post"``, the post-LayerNorm layer of Vaswani et al. 2017 that the
paper's code uses (``h = LN(h + MHA(h)); h = LN(h + FF(h))``, no final norm: the last layer's
output is already normalised), against ``norm="pre"`` (``h = h + MHA(LN h); h = h + FF(LN h)``
and a final LN); and ``zero_init``: the output projection of each residual branch (attention
out-projection, second FFN linear) starts at zero, so each pre-LN layer starts as the identity
(a post-LN one as ``LN``), the reference code's ``init_weights``. The class defaults
(``"pre"``, ``False``) build the first checkpoints' architecture; new training runs record
the reference code's choices (``pfn.train.ARCH_DEFAULTS``, chosen by bench/pfn_arch_ab.py).

Input encoder of x (``x_encoder``): ``"linear"``, the paper's ``W_x x`` (the default, and what
every checkpoint before the option was); ``"mlp"``, ``W_2 gelu(W_1 x)`` (the neural processes'
encoder); ``"fourier"``, ``W_x [x, sin(w_k x_j), cos(w_k x_j)]`` with fixed octave frequencies
``w_k = pi 2^k`` (:data:`FOURIER_OCTAVES`), so that the first attention's query-key products
can already be functions of ``x_target - x_context`` (a stationary kernel) rather than bilinear in
x. Why: what limits the GP PFNs at 10-50 points is how precisely they interpolate
(bench/RESULTS.md), and a linear embedding gives the first layer no way to localise.

Per-dataset standardisation (``standardise=True``, TabPFN's preprocessing, Hollmann et al.
2023): before the embedding, every feature of x is shifted and scaled by the context's mean and
std of that feature, and (regression) y by the context's mean and std of y. The logits are then
those of the *standardised* target z = (y - m) / s; the predictive of y is the bar distribution
on the borders ``m + s b`` with log-density ``log p_z((y - m) / s) - log s``
(:meth:`PFN.y_affine` gives ``(m, s)``). A network so trained sees datasets of one scale and
learns shapes, not scales; its predictive is equivariant to ``y -> a y + b`` (``a > 0``) and
invariant to ``x_j -> c_j x_j + d_j`` (``c_j > 0``) of the whole dataset. Default off: the
first checkpoints were trained without it and predict exactly as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

# A context std at or below this fraction of the values' magnitude (or a context of fewer than 2
# points) carries no scale: the shift is kept, the scale falls back to 1. Relative, so the
# fallback is itself scale invariant; it catches constant and zero-padded features.
REL_STD_FLOOR = 1e-6


def context_affine(v, mask):
    """Per-dataset ``(shift, scale)`` of values ``v (b, n, f)`` over the real context points
    ``mask (b, n)`` (1 / True = context): the mean and the (population) std of each column,
    ``(b, 1, f)`` each. Scale 1 where fewer than 2 points or a std of at most
    :data:`REL_STD_FLOOR` times the largest |value| of the column."""
    m = jnp.asarray(mask, v.dtype)[..., None]
    count = jnp.sum(m, axis=1, keepdims=True)
    mean = jnp.sum(v * m, axis=1, keepdims=True) / jnp.maximum(count, 1.0)
    var = jnp.sum(jnp.square(v - mean) * m, axis=1, keepdims=True) / jnp.maximum(count, 1.0)
    std = jnp.sqrt(var)
    size = jnp.max(jnp.abs(v) * m, axis=1, keepdims=True)
    ok = (count >= 2) & (std > REL_STD_FLOOR * size)
    return mean, jnp.where(ok, std, 1.0)


NORMS = ("pre", "post")
X_ENCODERS = ("linear", "mlp", "fourier")
FOURIER_OCTAVES = 6  # w_k = pi 2^k, k < 6: periods 2 down to 1/16 in the units of x


def fourier_features(x):
    """``(..., d) -> (..., d (1 + 2 K))``: x, then ``sin(w_k x_j)`` and ``cos(w_k x_j)`` for the
    octaves ``w_k = pi 2^k``, ``k < K`` (:data:`FOURIER_OCTAVES`), feature by feature."""
    w = jnp.pi * 2.0 ** jnp.arange(FOURIER_OCTAVES, dtype=x.dtype)
    wx = (x[..., :, None] * w).reshape(*x.shape[:-1], -1)
    return jnp.concatenate([x, jnp.sin(wx), jnp.cos(wx)], axis=-1)


class EncoderLayer(nnx.Module):
    """Transformer block (GELU feed-forward). ``norm="pre"``: ``x + MHA(LN x)``, then
    ``x + FF(LN x)``; ``"post"``: ``LN(x + MHA(x))``, then ``LN(x + FF(x))``. ``zero_init``:
    the attention out-projection and the second feed-forward linear start at zero (kernel and
    bias), so both residual branches start at 0."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, norm: str = "pre",
                 zero_init: bool = False, rngs: nnx.Rngs):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.post_norm = norm == "post"
        self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=n_heads, in_features=d_model, qkv_features=d_model, decode=False,
            rngs=rngs,
        )
        self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.ff1 = nnx.Linear(d_model, d_ff, rngs=rngs)
        self.ff2 = nnx.Linear(d_ff, d_model, rngs=rngs)
        if zero_init:  # after the default init, so every other weight draws the same values
            for param in (self.attn.out.kernel, self.attn.out.bias, self.ff2.kernel,
                          self.ff2.bias):
                param[...] = jnp.zeros_like(param[...])

    def __call__(self, h, mask=None, n_context: int | None = None):
        """``mask``: every position attends to the context positions (any, even traced, context
        size); or ``n_context`` a Python int: keys and values from the first ``n_context``
        positions only, the same result at ``n (n_context)`` instead of ``n^2`` attention cost
        (then ``mask``, if given, is a key mask ``(b, 1, 1, n_context)`` over that slice: padded
        context slots it leaves out)."""
        hn = h if self.post_norm else self.norm1(h)
        if n_context is None:
            a = self.attn(hn, mask=mask, deterministic=True)
        else:
            ctx = hn[:, :n_context]
            a = self.attn(hn, ctx, ctx, mask=mask, deterministic=True)
        if self.post_norm:
            h = self.norm1(h + a)
            return self.norm2(h + self.ff2(jax.nn.gelu(self.ff1(h))))
        h = h + a
        return h + self.ff2(jax.nn.gelu(self.ff1(self.norm2(h))))


class PFN(nnx.Module):
    """Prior-data fitted network.

    ``num_features``: input dimension d (zero-pad narrower data). ``n_outputs``: Riemann
    buckets K (regression) or the maximum number of classes (classification, ``n_classes``
    > 0 embeds labels with a lookup table instead of a linear map). ``standardise``: x and
    (regression) y scaled by the context's statistics inside the model; ``x_encoder``: how x
    is embedded (both in the module docstring).
    """

    def __init__(self, num_features: int, n_outputs: int, *, n_classes: int = 0,
                 d_model: int = 128, n_heads: int = 4, n_layers: int = 4, d_ff: int = 256,
                 standardise: bool = False, norm: str = "pre", zero_init: bool = False,
                 x_encoder: str = "linear", rngs: nnx.Rngs):
        if x_encoder not in X_ENCODERS:
            raise ValueError(f"x_encoder must be one of {X_ENCODERS}, got {x_encoder!r}")
        self.num_features = num_features
        self.n_classes = n_classes
        self.standardise = bool(standardise)
        self.x_encoder = x_encoder
        width = num_features * (1 + 2 * FOURIER_OCTAVES) if x_encoder == "fourier" else num_features
        self.x_embed = nnx.Linear(width, d_model, rngs=rngs)
        if x_encoder == "mlp":
            self.x_hidden = nnx.Linear(d_model, d_model, rngs=rngs)
        if n_classes:
            self.y_embed = nnx.Embed(n_classes, d_model, rngs=rngs)
        else:
            self.y_embed = nnx.Linear(1, d_model, rngs=rngs)
        layers = [EncoderLayer(d_model, n_heads, d_ff, norm=norm, zero_init=zero_init, rngs=rngs)
                  for _ in range(n_layers)]
        self.layers = nnx.List(layers) if hasattr(nnx, "List") else layers  # flax < 0.12
        if norm == "pre":  # post-LN layers end normalised: the reference code has no final norm
            self.norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, n_outputs, rngs=rngs)

    def embed_x(self, x):
        """``(b, n, d) -> (b, n, d_model)``, by the encoder ``x_encoder`` names."""
        if self.x_encoder == "fourier":
            return self.x_embed(fourier_features(x))
        if self.x_encoder == "mlp":
            return self.x_hidden(jax.nn.gelu(self.x_embed(x)))
        return self.x_embed(x)

    def embed_y(self, y):
        if self.n_classes:
            return self.y_embed(y.astype(jnp.int32))
        return self.y_embed(y[..., None].astype(jnp.float32))

    @staticmethod
    def _context_mask(x, n_context, context_mask):
        """``(b, n)`` float: 1 at the real context positions."""
        b, n = x.shape[:2]
        real = jnp.broadcast_to((jnp.arange(n) < n_context)[None, :], (b, n)).astype(x.dtype)
        if context_mask is not None:
            pad = jnp.ones((b, n), x.dtype).at[:, :context_mask.shape[1]].set(
                jnp.asarray(context_mask, x.dtype))
            real = real * pad
        return real

    def y_affine(self, x, y, n_context, context_mask=None):
        """``(shift, scale)``, each ``(b,)``: the network's logits are those of
        ``z = (y - shift) / scale`` (identity ``(0, 1)`` without ``standardise`` or for a
        classifier). Arguments as :meth:`__call__`."""
        b = x.shape[0]
        if not self.standardise or self.n_classes:
            return jnp.zeros((b,), jnp.float32), jnp.ones((b,), jnp.float32)
        mask = self._context_mask(x, n_context, context_mask)
        shift, scale = context_affine(jnp.asarray(y, jnp.float32)[..., None], mask)
        return shift[:, 0, 0], scale[:, 0, 0]

    def _standardised(self, x, y, n_context, context_mask):
        """x (and regression y) shifted and scaled by the context's statistics."""
        mask = self._context_mask(x, n_context, context_mask)
        x_shift, x_scale = context_affine(x, mask)
        x = (x - x_shift) / x_scale
        if not self.n_classes:
            y_shift, y_scale = context_affine(jnp.asarray(y, x.dtype)[..., None], mask)
            y = (y - y_shift[..., 0]) / y_scale[..., 0]
        return x, y

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
        if self.standardise:
            x, y = self._standardised(x, y, n_context, context_mask)
        y_safe = jnp.where(is_ctx[None, :], y, jnp.zeros_like(y))
        h = self.embed_x(x) + jnp.where(is_ctx[None, :, None], self.embed_y(y_safe), 0.0)
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
        return self.head(self.norm(h) if hasattr(self, "norm") else h)

    def predict(self, x_ctx, y_ctx, x_tgt, context_mask=None):
        """Outputs for targets given an explicit context: (b, m, n_outputs). ``context_mask``
        ``(b, n_ctx)``: which context slots are real (the rest is padding, ignored)."""
        n_ctx = x_ctx.shape[1]
        x = jnp.concatenate([x_ctx, x_tgt], axis=1)
        y = jnp.concatenate([y_ctx, jnp.zeros(x_tgt.shape[:2], y_ctx.dtype)], axis=1)
        return self(x, y, n_ctx, context_mask)[:, n_ctx:]
