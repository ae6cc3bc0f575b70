"""MgNO (He, Liu, Xu, ICLR 2024): layers ``u <- GELU(W^Mg u + W u + b)`` and a bias-free 1x1 head.

No lifting or projection MLPs: the first V-cycle maps the input channels (``c_f``) to ``width``
channels (``c_u``).

Prolongation kernels: the reference code uses a transposed convolution with kernel 4 where the
finer level has an even number of points and kernel 3 where it is odd, so the parameter count
depends on the grid the model is built for. ``prolongation_kernel="auto"`` (the default) derives
the kernels from ``grid_size`` (points per axis of the training grid, an int or one per axis) with
:func:`~operators.layers.multigrid.reference_prolongation_kernels`; an int or a per-level list
overrides it. The model still runs on any grid at call time. Reference configurations (1 input
channel, 24 channels, 6 levels, smoothing ``[(1, 0)] * 5 + [(2, 0)]``, zero padding):

* Darcy rough, ``grid_size=256`` (the default), 4 layers: 572,661 parameters;
* Darcy smooth, ``grid_size=211``, 5 layers: 678,093 parameters.

The reference's Navier-Stokes model (``MgNO_NS``, registry name ``mgno-ns``) is this class with
options: layers ``u <- GELU(W^Mg u)`` (``linear=False``), biases on the smoothers
(``bias=True``), periodic smoothers (``padding="wrap"``), a layer norm after every prolongation
(``layer_norm=True``, tied to ``grid_size``: 64) and the output ``head(u) + u_0``
(``residual=True``): 32 channels, 5 layers, smoothing ``[(1, 0)] * 3 + [(2, 0)] * 2``,
2,885,194 parameters (the reference's 2.885 M). Its Helmholtz model (``MgNO_helm``,
``mgno-helmholtz``) is :class:`MgNOHelmholtz`. The prolongation zero-pads the coarse field on every grid, as the
reference's ``ConvTranspose2d`` does (``prolongation_padding="wrap"`` makes it periodic).
"""

from __future__ import annotations

from flax import nnx

from ..layers.grid import check_field, check_padding
from ..layers.multigrid import MgConv, normalise_smoothing, reference_prolongation_kernels
from ..layers.norm import GridLayerNorm
from ..layers.pointwise import Pointwise
from ..layers.pointwise import activation as get_activation

__all__ = ["MGNO_DEFAULTS", "MGNO_HELMHOLTZ_DEFAULTS", "MGNO_NS_DEFAULTS", "MgNO", "MgNOHelmholtz",
           "MgNOStack", "legacy_hparams", "prolongation_kernels"]

MGNO_DEFAULTS = {
    "width": 24,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 5 + [[2, 0]],
    "padding": "zeros",
    "grid_size": 256,
    "prolongation_kernel": "auto",
    "prolongation_padding": "zeros",
    "activation": "gelu",
    "bias": False,
    "linear": True,
    "layer_norm": False,
    "residual": False,
}

#: the reference's Navier-Stokes MgNO (``MgNO_NS``, README "NS2" command): 2,885,194 parameters
MGNO_NS_DEFAULTS = {**MGNO_DEFAULTS, "width": 32, "n_layers": 5, "smoothing": [[1, 0]] * 3 + [[2, 0]] * 2,
                    "padding": "wrap", "grid_size": 64, "bias": True, "linear": False, "layer_norm": True,
                    "residual": True}

#: the reference's Helmholtz MgNO (``MgNO_helm``, README command): 101 x 101 grid, 20 channels
MGNO_HELMHOLTZ_DEFAULTS = {
    "width": 20,
    "n_layers": 4,
    "smoothing": [[1, 0]] * 4 + [[2, 0]],
    "padding": "reflect",
    "grid_size": 101,
    "activation": "gelu",
}


def legacy_hparams(hparams: dict) -> dict:
    """``hparams`` of an ``mgno`` run stored before ``prolongation_padding`` existed, completed
    with the prolongation it trained with (periodic where the smoothers were)."""
    hp = dict(hparams)
    if "prolongation_padding" not in hp:
        hp["prolongation_padding"] = "wrap" if check_padding(hp.get("padding", "zeros")) == "wrap" else "zeros"
    return hp


def prolongation_kernels(prolongation_kernel, grid_size, levels: int, restriction: str = "same") -> list[int]:
    """Per-level prolongation kernels (finest first): derived from ``grid_size`` when
    ``prolongation_kernel`` is ``"auto"`` (or None), else the given int (all levels) or list."""
    if prolongation_kernel is None or (isinstance(prolongation_kernel, str)
                                       and prolongation_kernel.lower() == "auto"):
        if grid_size is None:
            raise ValueError("prolongation_kernel='auto' needs grid_size (points per axis of the training grid)")
        sizes = [int(grid_size)] if isinstance(grid_size, (int, float)) else [int(g) for g in grid_size]
        if any(g < 2 for g in sizes):
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        per_axis = [reference_prolongation_kernels(g, levels, restriction) for g in sizes]
        # one k^d kernel per level: where the axes of a non-square grid disagree, kernel 4 (the
        # transposed convolution is cropped to the fine grid, so it fits either parity)
        return [max(ks) for ks in zip(*per_axis)]
    if isinstance(prolongation_kernel, str):
        raise ValueError(f"prolongation_kernel must be 'auto', an int or a list, got {prolongation_kernel!r}")  # noqa: TRY004 (an unknown option value, not a wrong type)
    if isinstance(prolongation_kernel, (int, float)):
        return [int(prolongation_kernel)] * (levels - 1)
    return [int(k) for k in prolongation_kernel]


class MgNOStack(nnx.Module):
    """The layers ``u <- act(W^Mg_i u + W_i u + b_i)``, i = 1..n_layers, and the bias-free 1x1
    head, for any multigrid convolution ``W^Mg`` (MgNO's and mgno-conv's). ``linear=False``
    drops the 1x1 path ``W_i u + b_i``; ``residual=True`` adds the input's first
    ``out_channels`` channels to the output (the reference Navier-Stokes model's ``u + u_0``)."""

    def _build_stack(self, make_mg, in_channels: int, out_channels: int, dim: int, width: int,
                     n_layers: int, activation: str, rngs: nnx.Rngs, *, linear: bool = True,
                     residual: bool = False, dtype=None, param_dtype="float32"):
        """``make_mg(c_in, c_out)``: one multigrid convolution."""
        if n_layers < 1 or width < 1:
            raise ValueError(f"{type(self).__name__} needs n_layers >= 1 and width >= 1, got {n_layers}, {width}")
        if residual and in_channels < out_channels:
            raise ValueError(f"residual=True adds the input to the output: needs in_channels >= out_channels, "
                             f"got {in_channels} < {out_channels}")
        get_activation(activation)
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.act, self.residual = activation, bool(residual)
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        self.mg = nnx.List([make_mg(in_channels if i == 0 else width, width) for i in range(n_layers)])
        self.linear = (nnx.List([Pointwise(in_channels if i == 0 else width, width, **kw) for i in range(n_layers)])
                       if linear else None)
        self.head = Pointwise(width, out_channels, use_bias=False, **kw)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        act = get_activation(self.act)
        u = x
        for i, mg in enumerate(self.mg):
            u = act(mg(u) + self.linear[i](u)) if self.linear is not None else act(mg(u))
        y = self.head(u)
        return y + x[..., :self.out_channels].astype(y.dtype) if self.residual else y


class MgNO(MgNOStack):
    """Multigrid neural operator ``(b, *n, in_channels) -> (b, *n, out_channels)``, 1-D or 2-D."""

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 24,
                 n_layers: int = 4, smoothing=MGNO_DEFAULTS["smoothing"], padding: str = "zeros",
                 grid_size: int | None = 256, prolongation_kernel="auto", prolongation_padding: str = "zeros",
                 activation: str = "gelu", bias: bool = False, linear: bool = True, layer_norm: bool = False,
                 residual: bool = False, dtype=None, param_dtype="float32", rngs: nnx.Rngs):
        smoothing = normalise_smoothing(smoothing)
        self.grid_size = grid_size
        kernels = prolongation_kernels(prolongation_kernel, grid_size, len(smoothing))
        if layer_norm and grid_size is None:
            raise ValueError("layer_norm=True needs grid_size (its scale and shift live on that grid)")
        kw = {"dim": dim, "padding": check_padding(padding), "prolongation_kernel": kernels,
              "prolongation_padding": prolongation_padding, "bias": bool(bias),
              "norm_grid": grid_size if layer_norm else None, "dtype": dtype, "param_dtype": param_dtype,
              "rngs": rngs}
        self._build_stack(lambda ci, co: MgConv(ci, co, smoothing, **kw), in_channels, out_channels, dim,
                          width, n_layers, activation, rngs, linear=linear, residual=residual, dtype=dtype,
                          param_dtype=param_dtype)


class MgNOHelmholtz(nnx.Module):
    """The reference's Helmholtz MgNO ``(b, *n, in_channels) -> (b, *n, out_channels)``:
    ``u <- act(LayerNorm_i(W^Mg_i u))`` for i = 1..n_layers, then a V-cycle ``width -> out`` as
    the head. Its V-cycles have reflect-padded smoothers with biases, unpadded restrictions
    (101 -> 50 -> 24 -> 11 -> 5), unpadded prolongations (kernels 3, 4, 4, 3 from ``grid_size``)
    and ``(l + 1)`` times the channels on level ``l``; the layer norms tie it to ``grid_size``.

    Parameters: 5,340,565 for the README configuration (1 -> 1, 20 channels, 4 layers,
    smoothing ``[1, 1, 1, 1, 2]``, 101 x 101). The reference counts 11,241 more (5,351,806): the
    first smoothing step of each of its V-cycles builds an ``A`` it never applies (``u = S(f)``);
    every parameter that acts on the output is here, weight for weight.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dim: int = 2, width: int = 20,
                 n_layers: int = 4, smoothing=MGNO_HELMHOLTZ_DEFAULTS["smoothing"], padding: str = "reflect",
                 grid_size=101, activation: str = "gelu", dtype=None, param_dtype="float32",
                 rngs: nnx.Rngs):
        if n_layers < 1 or width < 1:
            raise ValueError(f"MgNOHelmholtz needs n_layers >= 1 and width >= 1, got {n_layers}, {width}")
        if grid_size is None:
            raise ValueError("MgNOHelmholtz needs grid_size (its layer norms live on that grid)")
        get_activation(activation)
        smoothing = normalise_smoothing(smoothing)
        self.dim, self.in_channels, self.out_channels, self.act = dim, in_channels, out_channels, activation
        self.grid_size = grid_size
        kernels = prolongation_kernels("auto", grid_size, len(smoothing), "valid")
        dt = {"dtype": dtype, "param_dtype": param_dtype}
        kw = {"dim": dim, "padding": check_padding(padding), "prolongation_kernel": kernels, "bias": True,
              "restriction": "valid", "growth": True, "rngs": rngs, **dt}
        grid = (int(grid_size),) * dim if isinstance(grid_size, (int, float)) else tuple(int(g) for g in grid_size)
        self.mg = nnx.List([MgConv(in_channels if i == 0 else width, width, smoothing, **kw) for i in range(n_layers)])
        self.norms = nnx.List([GridLayerNorm(width, grid, **dt) for _ in range(n_layers)])
        self.head = MgConv(width, out_channels, smoothing, **kw)

    def __call__(self, x):
        check_field(x, self.dim, self.in_channels)
        act = get_activation(self.act)
        u = x
        for mg, norm in zip(self.mg, self.norms):
            u = act(norm(mg(u)))
        return self.head(u)
