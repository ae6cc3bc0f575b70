"""``convert``: turn an ordinary flax NNX network into a neural operator (Berner et al. 2025).

``convert(model, example, periodic=False)`` returns a copy of ``model`` with the same parameters
in which every ``nnx.Conv`` and ``nnx.ConvTranspose`` is replaced by a layer that reads its stencil
as a continuous kernel of fixed physical support; the model's own ``__call__`` runs unchanged.

* ``example`` is one input ``(1, *base_grid, channels)`` at the grid the model was trained on.
  Running it records the grid each layer sees there (its *base grid*).
* Each tap of a stencil becomes a basis function of the offset: the hat ``phi`` of the layer's
  base input spacing centred on the tap (:mod:`operators.layers.disco`). On a grid refined by
  ``r`` a layer sums these kernels against its input with quadrature weights ``(h/h_base)^d``,
  normalised per tap (each tap is a weighted mean of the input around its centre; trapezoid
  weights at Dirichlet ends), so on the base grid it is exactly the original stencil and on
  nested grids it converges to one integral operator (second order for smooth inputs on
  periodic grids, at least first order at Dirichlet boundaries). On coarser grids (``r < 1``)
  the hats take the grid's spacing: each tap reads the linear interpolation of its input.
* Strides and padding keep their physical meaning: a layer whose base output has ``m`` points
  maps a grid refined ``r`` times onto ``m`` points refined ``r`` times (periodic: ``r m``,
  node grid: ``r (m - 1) + 1``), so a stride-2 layer still halves the physical resolution and a
  U-Net's levels all refine together. ``SAME`` / explicit / ``VALID`` / ``CAUSAL`` padding is
  zero padding at the ends of the layer's domain, ``CIRCULAR`` is periodic (needs
  ``periodic=True``), ``REFLECT`` mirrors about the ends.
* A transposed convolution is the same integral kernel evaluated at the finer output points,
  where each tap acts only on the output points its base-grid index arithmetic reaches (one
  phase of the stride); between the base-grid points this phase indicator is interpolated
  linearly, so the output is a continuous function that equals the original on the base grid.
* Only ``nnx.Conv`` and ``nnx.ConvTranspose`` themselves are converted (a subclass may have its
  own ``__call__``: it counts as an unknown layer).
* ``nnx.Linear``, ``nnx.LayerNorm``, ``nnx.GroupNorm``, ``nnx.BatchNorm``, ``nnx.RMSNorm``,
  ``nnx.Dropout`` and 1x1 stride-1 ``nnx.Conv`` act per grid point or through spatial means (a
  rectangle-rule quadrature) and stay as they are, as do the resolution-aware layers and models
  of this package (:data:`RESOLUTION_AWARE`) and the types passed as ``keep``.

What convert cannot see: operations written as function calls in ``__call__``. It traces the
converted model on a grid refined twice and refuses (ValueError naming the operation and its
source line) pooling (``nnx.max_pool`` / ``avg_pool``: index windows), convolutions called as
functions and strided slicing ``x[:, ::2]``; it also checks that every converted layer receives
the refined grid it expects there (a resize or crop to a fixed size in ``__call__`` breaks
this). Interpolation written as a call (``jax.image.resize`` to a size computed from the input)
passes these checks but acts in index space; prefer ``nnx.ConvTranspose``. Unknown layer types
holding parameters get a ValueError naming the layer path and what to use instead. At call
time a converted layer refuses (ValueError naming the layer and the grid) a grid it cannot
serve, e.g. a stride that no longer divides it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .layers.attention import IntegralAttention
from .layers.differential import DiffConv
from .layers.disco import DiscoConv, apply_quadrature_taps
from .layers.local_kernel import KernelProlongation, KernelRestriction, LocalKernelConv
from .layers.physical_multigrid import PhysicalMgConv
from .layers.pointwise import ChannelMLP, GridEmbedding, Pointwise, QuadratureNorm
from .layers.spectral import SpectralConv
from .layers.unet import ConvBlock, Down, Up
from .layers.vit import PatchDecode, PatchEmbed, PositionalEncoding, TransformerBlock

__all__ = ["POINTWISE", "RESOLUTION_AWARE", "ConvertedConv", "ConvertedConvTranspose", "LayerGeometry", "convert"]

#: layers that act per grid point (or through spatial means) and need no conversion
POINTWISE = (nnx.Linear, nnx.LayerNorm, nnx.GroupNorm, nnx.BatchNorm, nnx.RMSNorm, nnx.Dropout)

#: resolution-aware layers of this package, kept as they are (with everything inside them)
RESOLUTION_AWARE = (DiscoConv, DiffConv, Down, Up, ConvBlock, PatchEmbed, PatchDecode, PositionalEncoding,
                    TransformerBlock, IntegralAttention, LocalKernelConv, KernelRestriction, KernelProlongation,
                    PhysicalMgConv, SpectralConv, Pointwise, ChannelMLP, GridEmbedding, QuadratureNorm)

# models of this package that work on any grid (named, not imported: the models import convert)
_RESOLUTION_AWARE_MODELS = frozenset({
    "operators.models.fno.FNO", "operators.models.uno.UNO", "operators.models.mgno_conv.MgNOConv",
    "operators.models.unet.UNetNO", "operators.models.vit.ViTNO", "operators.models.attention.AttentionNO",
    "operators.models.cnn.CNNNO",
})

_HERE = os.path.dirname(os.path.abspath(__file__))
_OURS = (os.path.join(_HERE, "layers") + os.sep, os.path.join(_HERE, "convert.py"))

_state = {"record": None, "general": False}


@contextlib.contextmanager
def _recording():
    """Collect ``(layer path, input grid)`` of every converted layer called inside."""
    old = _state["record"]
    _state["record"] = rec = []
    try:
        yield rec
    finally:
        _state["record"] = old


@contextlib.contextmanager
def general_path():
    """Inside, converted layers use the quadrature path even on their base grid (where they
    otherwise call the original layer): for tests of exactness."""
    old = _state["general"]
    _state["general"] = True
    try:
        yield
    finally:
        _state["general"] = old


@dataclasses.dataclass(frozen=True)
class AxisTaps:
    """One axis of a converted layer, in units of its base input spacing: tap centres relative to
    the output point, the output's base spacing, the padding mode and (transposed layers) the
    width of the phase indicator."""

    offsets: tuple[float, ...]
    out_spacing: float
    mode: str
    phase: float | None = None


@dataclasses.dataclass(frozen=True)
class LayerGeometry:
    """What a converted layer recorded on the base grid."""

    path: str
    kind: str  # "nnx.Conv" or "nnx.ConvTranspose"
    periodic: bool
    base_in: tuple[int, ...]
    base_out: tuple[int, ...]
    axes: tuple[AxisTaps, ...]


def _layout(periodic: bool) -> str:
    return "periodic grid" if periodic else "node grid"


def refinement(n: int, n_base: int, periodic: bool) -> float:
    """The factor ``r = h_base / h`` by which an ``n``-point grid refines an ``n_base``-point one."""
    return n / n_base if periodic else (n - 1) / (n_base - 1)


def refined_size(n_base: int, r: float, periodic: bool) -> float:
    """Points of an ``n_base``-point grid refined by ``r`` (not rounded)."""
    return n_base * r if periodic else (n_base - 1) * r + 1


class _ConvertedMethods:
    """The call of a converted layer (copied into subclasses of nnx.Conv / nnx.ConvTranspose;
    not a base class: nnx layers can only change their class to a direct subclass)."""

    def _shapes(self, x):
        d = len(self.kernel_size)
        return tuple(int(n) for n in x.shape[x.ndim - 1 - d:-1])

    def __call__(self, x, *args, **kwargs):
        g = self.geometry
        shape = self._shapes(x)
        if _state["record"] is not None:
            _state["record"].append((self.convert_path, shape))
        if g is None or (shape == g.base_in and not _state["general"]):
            return self._original_call(x, *args, **kwargs)  # the original layer, bit for bit
        d = len(self.kernel_size)
        lead = x.shape[:x.ndim - 1 - d]
        x = x.reshape((-1,) + x.shape[x.ndim - 1 - d:])
        y = self._quadrature(x, shape)
        return y.reshape(lead + y.shape[1:])

    def output_shape(self, shape) -> tuple[int, ...]:
        """The grid this layer maps an input grid ``shape`` onto (ValueError naming the layer
        and the grid when it cannot serve it)."""
        g = self.geometry
        if g is None:
            raise ValueError(f"layer '{self.convert_path}' was never called on the example, so it has no base grid")
        if len(shape) != len(g.base_in):
            raise ValueError(f"{g.kind} layer '{g.path}' is {len(g.base_in)}-D, got a grid of shape {tuple(shape)}")
        out = []
        for a, (n, nb, mb) in enumerate(zip(shape, g.base_in, g.base_out)):
            lay = _layout(g.periodic)
            if n < (1 if g.periodic else 2):
                raise ValueError(f"{g.kind} layer '{g.path}' cannot serve a grid of {n} points along axis {a + 1}")
            r = refinement(n, nb, g.periodic)
            m = refined_size(mb, r, g.periodic)
            if g.kind == "nnx.ConvTranspose" and not g.periodic:
                # the points of the refined output lattice on the base output's extent (which
                # may overhang the input's domain, to be cropped by the model)
                m = float(np.floor(m + 1e-6))
            if abs(m - round(m)) > 1e-6 or round(m) < 1:
                cells = "points" if g.periodic else "points - 1"
                unit = nb if g.periodic else nb - 1
                out_unit = mb if g.periodic else mb - 1
                raise ValueError(
                    f"{g.kind} layer '{g.path}' cannot serve a grid of {n} points along axis {a + 1}: it was "
                    f"converted on a {lay} of {nb} points with an output of {mb}, and {n} points refine that "
                    f"grid by {r:.6g}, which would need {m:.6g} output points (its stride no longer divides "
                    f"the grid). Use grids whose {cells} is a multiple of {unit // np.gcd(unit, out_unit)} "
                    f"(e.g. the base grid refined by a power of 2).")
            out.append(round(m))
        return tuple(out)

    def _quadrature(self, x, shape):
        g = self.geometry
        out = self.output_shape(shape)
        rs = [refinement(n, nb, g.periodic) for n, nb in zip(shape, g.base_in)]
        kernel = self.kernel[...]
        if self.mask is not None:
            kernel = kernel * self.mask
        if getattr(self, "transpose_kernel", False):
            kernel = jnp.swapaxes(kernel, -1, -2)  # stored (..., out, in)
        bias = self.bias[...] if self.bias is not None else None
        x, kernel, bias = self.promote_dtype((x, kernel, bias), dtype=self.dtype)
        y = apply_quadrature_taps(x, [(m, 1.0 / r, ax.out_spacing / r, ax.offsets, ax.mode, ax.phase)
                                      for m, r, ax in zip(out, rs, g.axes)], kernel)
        if bias is not None:
            y = y + bias.astype(y.dtype)
        return y


_METHODS = {k: v for k, v in vars(_ConvertedMethods).items() if not k.startswith("__") or k == "__call__"}


class ConvertedConv(nnx.Conv):
    """An ``nnx.Conv`` read as an integral kernel of fixed physical support (see module doc)."""

    geometry: LayerGeometry | None
    convert_path: str
    _original_call = nnx.Conv.__call__
    locals().update(_METHODS)


class ConvertedConvTranspose(nnx.ConvTranspose):
    """An ``nnx.ConvTranspose`` read as an integral kernel evaluated on the finer grid."""

    geometry: LayerGeometry | None
    convert_path: str
    _original_call = nnx.ConvTranspose.__call__
    locals().update(_METHODS)


_Converted = (ConvertedConv, ConvertedConvTranspose)


def _path_str(path) -> str:
    return ".".join(str(p) for p in path) if path else "<model>"


def _type_name(obj) -> str:
    t = type(obj)
    return f"nnx.{t.__name__}" if t.__module__.startswith("flax.") else t.__name__


def _qualname(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _as_tuple(v, d):
    if v is None:
        return (1,) * d
    if isinstance(v, int):
        return (v,) * d
    return tuple(int(a) for a in v)


def _classify(model, keep):
    """``(layers to convert, kept path prefixes)``; ValueError for what cannot be converted."""
    nodes = list(nnx.iter_graph(model))
    modules = {tuple(p): n for p, n in nodes if isinstance(n, nnx.Module)}
    convert_paths, kept = [], []

    def under(path, prefixes):
        return any(path[:len(q)] == q for q in prefixes)

    for path in sorted(modules, key=len):
        node = modules[path]
        if under(path, kept):
            continue
        name = _path_str(path)
        if isinstance(node, _Converted):
            raise ValueError(f"layer '{name}' is already converted; convert the original model")  # noqa: TRY004
        if type(node) is nnx.ConvTranspose:  # exact types: a subclass may have its own __call__
            _check_conv(node, name, transposed=True)
            convert_paths.append(path)
            kept.append(path)
        elif type(node) is nnx.Conv:
            _check_conv(node, name, transposed=False)
            d = len(node.kernel_size)
            pointwise = (tuple(node.kernel_size) == (1,) * d and _as_tuple(node.strides, d) == (1,) * d
                         and node.padding in ("SAME", "VALID", "CIRCULAR", "REFLECT", 0))
            if not pointwise:
                convert_paths.append(path)
            kept.append(path)
        elif (isinstance(node, POINTWISE + RESOLUTION_AWARE + tuple(keep))
              or _qualname(node) in _RESOLUTION_AWARE_MODELS):
            kept.append(path)
    for p, n in nodes:
        if not isinstance(n, nnx.Param):
            continue
        p = tuple(p)
        if under(p, kept):
            continue
        owner = max((q for q in modules if p[:len(q)] == q and q != p), key=len)
        params = sorted(str(q[len(owner)]) for q, v in nodes if isinstance(v, nnx.Param) and tuple(q)[:len(owner)] == owner
                        and not under(tuple(q), kept) and len(q) > len(owner))
        what = f"layer '{_path_str(owner)}' ({_type_name(modules[owner])})" if owner else \
            f"the model itself ({_type_name(model)})"
        raise ValueError(
            f"convert: {what} holds parameters ({', '.join(dict.fromkeys(params))}) but there is no rule to "
            f"convert it: convert cannot tell whether it acts per grid point or depends on the grid. Build the "
            f"model from nnx.Conv (odd kernel), nnx.ConvTranspose, nnx.Linear and nnx.LayerNorm / GroupNorm, "
            f"or use a resolution-aware layer of operators.layers (DiscoConv, DiffConv, PatchEmbed, "
            f"PositionalEncoding, IntegralAttention, ...); if the layer acts per grid point, pass "
            f"keep=({type(modules[owner]).__name__},).")
    return convert_paths


def _check_conv(layer, name, transposed):
    kind = "nnx.ConvTranspose" if transposed else "nnx.Conv"
    d = len(layer.kernel_size)
    if not transposed:
        if any(k % 2 == 0 for k in layer.kernel_size):
            raise ValueError(
                f"layer '{name}' ({kind}) has the even kernel {tuple(layer.kernel_size)}: an even stencil has no "
                f"centre tap, so its basis functions cannot be centred on the grid points; use an odd kernel "
                f"size (1, 3, 5, ...)")
        if _as_tuple(layer.input_dilation, d) != (1,) * d:
            raise ValueError(f"layer '{name}' ({kind}) has input_dilation {layer.input_dilation}; "
                             "use nnx.ConvTranspose for upsampling")
        if layer.feature_group_count != 1:
            raise ValueError(f"layer '{name}' ({kind}) is a grouped convolution (feature_group_count="
                             f"{layer.feature_group_count}), which convert does not support; use feature_group_count=1")
    if isinstance(layer.padding, str) and layer.padding not in ("SAME", "VALID", "CIRCULAR", "REFLECT", "CAUSAL"):
        raise ValueError(f"layer '{name}' ({kind}) has the padding {layer.padding!r}, which convert does not know")


def _padding_mode(layer) -> str:
    return {"CIRCULAR": "wrap", "REFLECT": "reflect"}.get(layer.padding if isinstance(layer.padding, str) else "",
                                                          "zeros")


def _probe(layer, base_in, transposed):
    """Index maps of the layer on its base grid, per axis and stored tap: ``src[a][t][o]``, the
    input index output ``o`` reads through tap ``t`` (-1: none), found by running a copy of the
    layer (input channel ``a``: the index field along axis ``a``; output channel ``(a, t)``: a
    one-hot kernel at tap ``t`` of axis ``a``) once on the base grid. Also the base output shape."""
    d = len(base_in)
    ks = tuple(layer.kernel_size)
    n_out_ch = sum(ks)
    zeros = nnx.initializers.zeros_init()
    onehot = np.zeros(ks + ((n_out_ch, d) if transposed and layer.transpose_kernel else (d, n_out_ch)), np.float32)
    field = np.zeros((1, *base_in, d), np.float32)
    col = 0
    for a in range(d):
        idx = (np.arange(base_in[a], dtype=np.float32) + 1.0).reshape([base_in[a] if b == a else 1 for b in range(d)])
        field[0, ..., a] = idx
        for t in range(ks[a]):
            tap = tuple(t if b == a else ks[b] // 2 for b in range(d))
            if transposed and layer.transpose_kernel:
                onehot[tap + (col, a)] = 1.0
            else:
                onehot[tap + (a, col)] = 1.0
            col += 1
    with jax.ensure_compile_time_eval():
        if transposed:
            p = nnx.ConvTranspose(d, n_out_ch, ks, strides=layer.strides, padding=layer.padding,
                                  kernel_dilation=layer.kernel_dilation, use_bias=False, kernel_init=zeros,
                                  transpose_kernel=layer.transpose_kernel, rngs=nnx.Rngs(0))
        else:
            p = nnx.Conv(d, n_out_ch, ks, strides=layer.strides, padding=layer.padding,
                         kernel_dilation=layer.kernel_dilation, use_bias=False, kernel_init=zeros, rngs=nnx.Rngs(0))
        p.kernel.value = jnp.asarray(onehot)
        y = np.asarray(p(jnp.asarray(field)))[0]
    maps, col = [], 0
    for a in range(d):
        other = tuple(b for b in range(d) if b != a)
        per_tap = []
        for _ in range(ks[a]):
            v = y[..., col].max(axis=other) if other else y[..., col]
            per_tap.append(np.rint(v).astype(int) - 1)
            col += 1
        maps.append(per_tap)
    return maps, tuple(int(n) for n in y.shape[:-1])


def _expected(src_len, n_in, s, e, mode, transposed):
    o = np.arange(src_len)
    if transposed:
        ok = (o + e) % s == 0
        raw = (o + e) // s
    else:
        ok = np.ones(src_len, bool)
        raw = s * o + e
    if mode == "wrap":
        return np.where(ok, raw % n_in, -1)
    if mode == "reflect":
        per = 2 * (n_in - 1)
        m = np.abs(raw) % per if per else raw * 0
        m = np.where(m >= n_in, per - m, m)
        return np.where(ok, m, -1)
    return np.where(ok & (raw >= 0) & (raw < n_in), raw, -1)


def _geometry(layer, path, base_in, periodic, transposed) -> LayerGeometry:
    kind = "nnx.ConvTranspose" if transposed else "nnx.Conv"
    mode = _padding_mode(layer)
    if mode == "wrap" and not periodic:
        raise ValueError(f"layer '{path}' ({kind}) pads circularly, but convert was told the grid is a node grid "
                         "(periodic=False); pass periodic=True for periodic data")
    if mode == "reflect" and periodic:
        raise ValueError(f"layer '{path}' ({kind}) pads by reflection on a periodic grid; use padding='CIRCULAR'")
    if transposed and mode == "reflect":
        raise ValueError(f"layer '{path}' ({kind}) has reflect padding, which convert does not support")
    d = len(base_in)
    for a, n in enumerate(base_in):
        if n < (1 if periodic else 2):
            raise ValueError(f"layer '{path}' ({kind}) sees a base grid of {n} point(s) along axis {a + 1}, "
                             "too few to define its spacing")
    maps, base_out = _probe(layer, base_in, transposed)
    strides = _as_tuple(layer.strides, d)
    axes = []
    for a in range(d):
        s = strides[a]
        offsets = []
        for t, src in enumerate(maps[a]):
            o = np.nonzero(src >= 0)[0]
            if not len(o):
                raise ValueError(f"layer '{path}' ({kind}): tap {t} along axis {a + 1} reads no input on the "
                                 f"base grid {base_in}; the grid is too small for the kernel")
            cand = (s * src[o] - o) if transposed else (src[o] - s * o)
            e = Counter(cand.tolist()).most_common(1)[0][0]
            if not np.array_equal(_expected(len(src), base_in[a], s, e, mode, transposed), src):
                raise ValueError(f"layer '{path}' ({kind}): cannot read its padding {layer.padding!r} along axis "
                                 f"{a + 1} on the base grid {base_in} as zero, periodic or reflect padding")
            offsets.append(e / s if transposed else float(e))
        out_spacing = 1.0 / s if transposed else float(s)
        if periodic and mode == "wrap" and abs(base_out[a] * out_spacing - base_in[a]) > 1e-9:
            raise ValueError(f"layer '{path}' ({kind}) with stride {s} maps a periodic grid of {base_in[a]} points "
                             f"onto {base_out[a]}, which is not periodic with the same period; periodic grids need "
                             f"a number of points divisible by the stride")
        axes.append(AxisTaps(tuple(offsets), out_spacing, mode, (1.0 / s) if transposed else None))
    return LayerGeometry(path, kind, bool(periodic), tuple(base_in), base_out, tuple(axes))


def _node(model, path):
    n = model
    for p in path:
        n = n[p] if isinstance(p, int) or not hasattr(n, str(p)) else getattr(n, p)
    return n


def _eval_copy(model):
    m = nnx.clone(model)
    with contextlib.suppress(Exception):
        m.eval()
    return m


def _refined(shape, periodic):
    return tuple(2 * n if periodic else 2 * (n - 1) + 1 for n in shape)


_FORBIDDEN = {
    "reduce_window_sum": "pooling (e.g. nnx.avg_pool)",
    "reduce_window_max": "pooling (e.g. nnx.max_pool)",
    "reduce_window_min": "pooling (e.g. nnx.min_pool)",
    "reduce_window": "pooling (lax.reduce_window)",
    "conv_general_dilated": "a convolution called as a function (lax.conv_general_dilated)",
}


def _origin(eqn) -> tuple[bool, str]:
    """``(inside a layer, source line)`` of an equation: inside a layer when the innermost frame
    outside jax is in an nnx layer (``flax/nnx/nn``) or in this package's layers or converted
    layers; the source line is the innermost frame outside jax and flax (the user's code)."""
    inside, where = None, "an unknown line"
    try:
        for fr in eqn.source_info.traceback.frames:
            f = fr.file_name
            if os.sep + "jax" + os.sep in f or "jaxlib" in f:
                continue
            if inside is None:
                inside = (os.sep + os.path.join("flax", "nnx", "nn") + os.sep in f or f.startswith(_OURS[0])
                          or f == _OURS[1])
            if os.sep + "flax" + os.sep not in f:
                where = f"{f}:{fr.line_num}"
                break
    except Exception:  # noqa: BLE001, S110 - source information is a courtesy
        pass
    return bool(inside), where


def _scan(jaxpr, grid):
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        bad = _FORBIDDEN.get(name)
        if name == "slice" and eqn.params.get("strides") and any(s != 1 for s in eqn.params["strides"]):
            bad = "strided slicing (x[:, ::2])"
        inside, where = _origin(eqn) if bad else (True, "")
        if bad and not inside:
            raise ValueError(
                f"convert: the model's __call__ applies {bad} at {where} on the grid {grid}. It acts on "
                f"index windows, so its meaning changes with the grid, and convert cannot see it because it is "
                f"a function call, not a layer. Use a stride-2 nnx.Conv instead (converted to a restriction of "
                f"fixed physical support), or a resolution-aware layer of operators.layers.")
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (tuple, list)) else (v,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _scan(inner, grid)


def convert(model: nnx.Module, example, periodic: bool = False, *, keep=(), check: bool = True) -> nnx.Module:
    """A neural-operator copy of ``model`` (same parameters) that computes the same continuous
    operator on any refinement of the grid of ``example`` (see the module docstring).

    ``example``: an input ``(1, *base_grid, channels)`` at the training grid (only its shape and
    dtype are used; a ``jax.ShapeDtypeStruct`` will do); ``periodic``: whether grids are periodic
    (``s`` points, spacing ``1/s``) or node grids (``s`` points, spacing ``1/(s-1)``); ``keep``: further layer
    types to leave as they are (they must act per grid point); ``check``: verify that the copy
    runs on the base grid refined twice, with every layer on the grid it expects there and none
    of the index-space operations convert cannot follow (tracing only, nothing is computed)."""
    example = jnp.asarray(example) if not isinstance(example, jax.ShapeDtypeStruct) else example
    if example.ndim < 3:
        raise ValueError(f"example must be one input (1, *base_grid, channels), got shape {tuple(example.shape)}")
    if not jnp.issubdtype(example.dtype, jnp.floating):
        raise TypeError(f"example must be a floating array, got dtype {example.dtype}")
    periodic = bool(periodic)
    grid = tuple(int(n) for n in example.shape[1:-1])
    if min(grid) < (1 if periodic else 2):
        raise ValueError(f"example grid {grid} is too small")
    keep = tuple(keep) if isinstance(keep, (tuple, list)) else (keep,)
    new = nnx.clone(model)
    paths = _classify(new, keep)
    originals = {}
    for path in paths:
        node = _node(new, path)
        originals[path] = type(node)
        node.__class__ = ConvertedConvTranspose if isinstance(node, nnx.ConvTranspose) else ConvertedConv
        node.convert_path = _path_str(path)
        node.geometry = None

    # the grid every layer sees on the example
    probe = _eval_copy(new)
    with _recording() as rec:
        jax.eval_shape(lambda x: probe(x), example)
    seen = {}
    for name, shape in rec:
        seen.setdefault(name, set()).add(shape)
    for path in paths:
        node, name = _node(new, path), _path_str(path)
        shapes = seen.get(name)
        if not shapes:  # never called on the example: leave it as it was
            node.__class__ = originals[path]
            del node.convert_path, node.geometry
            continue
        if len(shapes) > 1:
            raise ValueError(f"layer '{name}' is applied to grids of several sizes {sorted(shapes)} on the example; "
                             "convert needs one base grid per layer (do not share a layer between levels)")
        (shape,) = shapes
        node.geometry = _geometry(node, name, shape, periodic, isinstance(node, nnx.ConvTranspose))
    if check:
        _check(new, example, periodic)
    return new


def _check(new, example, periodic):
    grid = tuple(int(n) for n in example.shape[1:-1])
    # every converted layer must see its base grid refined twice
    fine = _refined(grid, periodic)
    spec = jax.ShapeDtypeStruct((example.shape[0], *fine, example.shape[-1]), example.dtype)
    m = _eval_copy(new)
    try:
        with _recording() as rec:
            closed = jax.make_jaxpr(lambda x: m(x))(spec)
    except ValueError as e:
        if "cannot serve" in str(e):
            raise
        raise ValueError(f"convert: the converted model does not run on the refined grid {fine} "
                         f"(ValueError: {e}); its __call__ must depend on the grid only through its layers") from e
    except Exception as e:  # anything the user's __call__ raises on another grid
        raise ValueError(f"convert: the converted model does not run on the refined grid {fine} "
                         f"({type(e).__name__}: {e}); its __call__ must depend on the grid only through its "
                         f"layers (e.g. crop to the skip connection's shape, not to a fixed size)") from e
    geoms = {n.convert_path: n.geometry for _, n in nnx.iter_graph(new)
             if isinstance(n, _Converted) and n.geometry is not None}
    for name, shape in rec:
        g = geoms.get(name)
        if g is None:
            continue
        want = _refined(g.base_in, periodic)
        if shape != want:
            raise ValueError(
                f"convert: on the grid {fine} (the base grid {grid} refined twice) layer '{name}' receives the grid "
                f"{shape}, not {want} (its base grid {g.base_in} refined twice): the model's __call__ changes the "
                f"grid between layers by a fixed size or in index space (resize, crop or pad to a fixed shape), "
                f"which convert cannot follow")
    _scan(closed.jaxpr, fine)
