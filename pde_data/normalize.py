"""Unit-Gaussian normalisers of channel-last fields, fitted on a training split only.

``UnitGaussian`` keeps one mean / std per channel; ``PointwiseGaussian`` one per grid point and
channel (the "UnitGaussianNormalizer" of the FNO code, Li et al. 2021). ``encode(x) =
(x - mean) / std`` and ``decode(z) = z * std + mean`` are exact inverses.

What a (nearly) zero std becomes is the ``small_std`` rule, recorded in the fitted normaliser
(``n_fallback`` / ``n_floored``, :meth:`summary`, and its ``state()``):

- ``"floor"`` (outputs, which are only decoded): ``std`` is floored at ``eps``, so a constant
  field (e.g. the zero Dirichlet boundary of a Darcy solution) decodes to its constant;
- ``"fallback"`` (inputs, which are encoded): a (point, channel) whose std is below
  :data:`FALLBACK_RATIO` times its channel's std over all points and samples is scaled by the
  channel's std instead, and a channel that is constant everywhere by 1. Dividing an input
  by a floored std would blow a value the train split never showed there (a small train set,
  a two-phase coefficient) up by 1/eps = 1e6: a silent wrong prediction.

Statistics are population moments (``ddof=0``), accumulated in float64
over chunks of samples (Chan et al. parallel update), so a split larger than memory can be
fitted by streaming it.

Pointwise statistics follow the field to any resolution: when ``encode`` / ``decode`` see a
grid different from the fitted one, mean and std are resampled to it (node grids: linear
interpolation; periodic grids: trigonometric (Fourier) interpolation by default, or linear),
then std is floored again. Both normalisers are JAX pytrees (statistics are leaves), so they
can be passed into jitted functions; ``state()`` / ``from_state()`` round-trip through plain
numpy arrays for ``Run.save_arrays``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pde_data.coordinates import resample

__all__ = [
    "DEFAULT_EPS",
    "FALLBACK_RATIO",
    "SMALL_STD_RULES",
    "PointwiseGaussian",
    "UnitGaussian",
    "normalizer_from_state",
]

DEFAULT_EPS = 1e-6
#: ``small_std="fallback"``: stds below this fraction of their channel's std use the channel's
FALLBACK_RATIO = 1e-2
SMALL_STD_RULES = ("floor", "fallback")
_DEFAULT_CHUNK_BYTES = 256 * 2**20


class _hybridmethod:
    """``fit`` callable on the class (default settings) or on a configured instance."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj, cls):
        target = obj if obj is not None else cls()
        return self.func.__get__(target, cls)


def _xp(a):
    if isinstance(a, np.ndarray) or np.isscalar(a):
        return np
    import jax.numpy as jnp

    return jnp


class _Moments:
    """Running count / mean / M2 in float64 (Chan et al. 1979 pairwise combination)."""

    def __init__(self):
        self.n = 0
        self.mean = None
        self.m2 = None

    def add(self, block: np.ndarray, axes: tuple[int, ...]) -> None:
        b = np.asarray(block, dtype=np.float64)
        nb = int(np.prod([b.shape[a] for a in axes]))
        if nb == 0:
            return
        mb = b.mean(axis=axes)
        m2b = ((b - np.expand_dims(mb, axes)) ** 2).sum(axis=axes)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None:
            raise ValueError("cannot fit a normaliser on zero samples")
        return self.mean, np.sqrt(self.m2 / self.n)


def _iter_blocks(x, chunk_size: int | None):
    """Blocks of samples of ``x``: a numpy-like array, or a lazy field array with
    ``iter_chunks`` (streamed from zarr)."""
    if hasattr(x, "iter_chunks"):
        yield from x.iter_chunks(chunk_size)
        return
    a = np.asarray(x)
    if chunk_size is None:
        per = max(1, int(np.prod(a.shape[1:])) * 8)
        chunk_size = max(1, _DEFAULT_CHUNK_BYTES // per)
    for i in range(0, a.shape[0], chunk_size):
        yield a[i : i + chunk_size]


def _check_block(b: np.ndarray) -> None:
    if b.ndim < 2:
        raise ValueError(f"normaliser fit expects (n, *spatial, channels), got shape {b.shape}")
    if not np.issubdtype(b.dtype, np.number):
        raise ValueError(f"normaliser fit expects a numeric array, got dtype {b.dtype}")
    bad = ~np.isfinite(b)
    if bad.any():
        raise ValueError(
            f"cannot fit a normaliser on data with {int(bad.sum())} NaN/inf values "
            f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])} of a block of shape {b.shape})"
        )


class _Gaussian:
    """Shared encode / decode / state logic; subclasses fix which axes the moments reduce."""

    kind = ""

    def __init__(self, mean=None, std=None, eps: float = DEFAULT_EPS, periodic: bool = False,
                 method: str = "auto", small_std: str = "floor", n_fallback: int = 0,
                 n_floored: int = 0):
        if eps <= 0 or not math.isfinite(eps):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        if small_std not in SMALL_STD_RULES:
            raise ValueError(f"unknown small_std rule {small_std!r}; use one of {SMALL_STD_RULES}")
        self.small_std = small_std
        self.n_fallback = int(n_fallback)
        self.n_floored = int(n_floored)
        if method not in ("auto", "linear", "fourier"):
            raise ValueError(f"unknown resampling method {method!r}; use 'auto', 'linear' or 'fourier'")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.eps = float(eps)
        self.periodic = bool(periodic)
        self.method = method
        self.mean = None if mean is None else mean
        self.std = None if std is None else std
        if mean is not None and tuple(np.shape(mean)) != tuple(np.shape(std)):
            raise ValueError(f"mean shape {np.shape(mean)} != std shape {np.shape(std)}")

    # -- fitting ---------------------------------------------------------------------------
    def _reduce_axes(self, ndim: int) -> tuple[int, ...]:
        raise NotImplementedError

    @_hybridmethod
    def fit(self, x, *, passthrough: int = 0, chunk_size: int | None = None, periodic: bool | None = None):
        """Fit on training fields ``x`` of shape ``(n, *spatial, c)`` (array or streamed lazy
        field array) and return the fitted normaliser. The last ``passthrough`` channels (e.g.
        coordinate channels) get mean 0, std 1, i.e. pass unchanged. ``periodic`` (default: the
        ``periodic`` attribute of ``x`` if it has one, else this normaliser's) sets how
        pointwise statistics are resampled to other resolutions."""
        if periodic is None:
            periodic = getattr(x, "periodic", None)
            periodic = self.periodic if periodic is None else bool(periodic)
        mom = _Moments()
        shape = None
        for block in _iter_blocks(x, chunk_size):
            block = np.asarray(block)
            _check_block(block)
            if shape is None:
                shape = block.shape[1:]
            mom.add(block, self._reduce_axes(block.ndim))
        mean, std = mom.result()
        c = shape[-1]
        if not 0 <= passthrough <= c:
            raise ValueError(f"passthrough={passthrough} must be between 0 and the channel count {c}")
        n_fallback = n_floored = 0
        if self.small_std == "fallback":
            # the channel's std over all points and samples, from the per-point moments
            axes = tuple(range(std.ndim - 1))
            chan_mean = mean.mean(axis=axes, keepdims=True)
            chan_std = np.sqrt((std**2 + (mean - chan_mean) ** 2).mean(axis=axes, keepdims=True))
            chan_std = np.broadcast_to(chan_std, std.shape)
            constant = chan_std <= self.eps
            small = ~constant & (std < FALLBACK_RATIO * chan_std)
            if passthrough:
                constant[..., c - passthrough :] = small[..., c - passthrough :] = False
            n_fallback = int(constant.sum() + small.sum())
            std = np.where(constant, 1.0, np.where(small, chan_std, std))
        else:
            n_floored = int((std < self.eps).sum())
        if passthrough:
            mean[..., c - passthrough :] = 0.0
            std[..., c - passthrough :] = 1.0
        std = np.maximum(std, self.eps)
        return type(self)(mean.astype(np.float32), std.astype(np.float32), eps=self.eps,
                          periodic=bool(periodic), method=self.method, small_std=self.small_std,
                          n_fallback=n_fallback, n_floored=n_floored)

    def summary(self) -> dict:
        """What the fit did with small stds: ``{"kind", "small_std", "entries", "n_fallback",
        "n_floored", "note"}`` (``entries``: the number of (point, channel) statistics)."""
        entries = int(np.size(self.std)) if self.std is not None else 0
        if self.n_fallback:
            note = (f"{self.n_fallback} of {entries} stds were below {FALLBACK_RATIO:g} x their "
                    "channel's std (constant over the train split there) and use the channel's "
                    "std (1 for a constant channel) instead of a floored one")
        elif self.n_floored:
            note = (f"{self.n_floored} of {entries} stds are below eps={self.eps:g} (constant "
                    "there, e.g. a Dirichlet boundary) and are floored at eps")
        else:
            note = "no std needed a floor or a fallback"
        return {"kind": self.kind, "small_std": self.small_std, "entries": entries,
                "n_fallback": self.n_fallback, "n_floored": self.n_floored, "note": note}

    # -- applying --------------------------------------------------------------------------
    def _stats_for(self, x):
        if self.mean is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call .fit(train_x) first")
        return self.mean, self.std

    def encode(self, x):
        """``(x - mean) / std``, broadcast over leading batch axes; jit-friendly."""
        mean, std = self._stats_for(x)
        xp = _xp(x)
        mean = xp.asarray(mean, dtype=x.dtype)
        std = xp.asarray(std, dtype=x.dtype)
        return (x - mean) / std

    def decode(self, z):
        """``z * std + mean``: the exact inverse of :meth:`encode`."""
        mean, std = self._stats_for(z)
        xp = _xp(z)
        mean = xp.asarray(mean, dtype=z.dtype)
        std = xp.asarray(std, dtype=z.dtype)
        return z * std + mean

    __call__ = encode

    # -- persistence -----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects; loadable with ``allow_pickle=False``)."""
        if self.mean is None:
            raise ValueError(f"{type(self).__name__} is not fitted; nothing to save")
        return {
            "kind": np.array(self.kind),
            "mean": np.asarray(self.mean, dtype=np.float32),
            "std": np.asarray(self.std, dtype=np.float32),
            "eps": np.array(self.eps, dtype=np.float64),
            "periodic": np.array(self.periodic),
            "method": np.array(self.method),
            "small_std": np.array(self.small_std),
            "n_fallback": np.array(self.n_fallback, dtype=np.int64),
            "n_floored": np.array(self.n_floored, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]):
        """Rebuild from :meth:`state` (e.g. ``Run.load_arrays(name)``)."""
        missing = {"mean", "std"} - set(state)
        if missing:
            raise ValueError(f"normaliser state lacks {sorted(missing)}; got keys {sorted(state)}")
        kind = str(np.asarray(state.get("kind", cls.kind)))
        if kind != cls.kind:
            raise ValueError(f"state is of a {kind!r} normaliser, not {cls.kind!r}")
        mean = np.asarray(state["mean"], dtype=np.float32)
        std = np.asarray(state["std"], dtype=np.float32)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("corrupt normaliser state: mean/std must be finite and std > 0")
        return cls(mean, std, eps=float(np.asarray(state.get("eps", DEFAULT_EPS))),
                   periodic=bool(np.asarray(state.get("periodic", False))),
                   method=str(np.asarray(state.get("method", "auto"))),
                   small_std=str(np.asarray(state.get("small_std", "floor"))),
                   n_fallback=int(np.asarray(state.get("n_fallback", 0))),
                   n_floored=int(np.asarray(state.get("n_floored", 0))))

    # -- pytree ----------------------------------------------------------------------------
    def tree_flatten(self):
        return (self.mean, self.std), (self.eps, self.periodic, self.method, self.small_std,
                                       self.n_fallback, self.n_floored)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = cls.__new__(cls)
        obj.mean, obj.std = children
        obj.eps, obj.periodic, obj.method, obj.small_std, obj.n_fallback, obj.n_floored = aux
        return obj

    def __repr__(self) -> str:
        shape = None if self.mean is None else tuple(np.shape(self.mean))
        return f"{type(self).__name__}(stats shape={shape}, eps={self.eps}, periodic={self.periodic})"


class UnitGaussian(_Gaussian):
    """Global mean / std per channel over samples and grid points; resolution-independent."""

    kind = "unit"

    def _reduce_axes(self, ndim):
        return tuple(range(ndim - 1))

    def _stats_for(self, x):
        mean, std = super()._stats_for(x)
        if x.shape[-1] != np.shape(mean)[-1]:
            raise ValueError(f"{type(self).__name__} was fitted on {np.shape(mean)[-1]} channels, got input with shape {tuple(x.shape)}")
        return mean, std


class PointwiseGaussian(_Gaussian):
    """Mean / std per grid point and channel, shape ``(*spatial, c)``; resampled to the grid of
    the input when its resolution differs from the fitted one."""

    kind = "pointwise"

    def _reduce_axes(self, ndim):
        return (0,)

    def _stats_for(self, x):
        mean, std = super()._stats_for(x)
        stat_shape = tuple(np.shape(mean))
        d = len(stat_shape) - 1
        if x.ndim < d + 1 or x.shape[-1] != stat_shape[-1]:
            raise ValueError(
                f"PointwiseGaussian fitted on grid x channels {stat_shape} cannot encode an input "
                f"of shape {tuple(x.shape)} (needs (..., {d} spatial axes, {stat_shape[-1]} channels))"
            )
        grid = tuple(int(s) for s in x.shape[x.ndim - 1 - d : x.ndim - 1])
        if grid != stat_shape[:-1]:
            xp = _xp(x)
            mean = resample(xp.asarray(mean), grid, self.periodic, self.method)
            std = resample(xp.asarray(std), grid, self.periodic, self.method)
            std = xp.maximum(std, self.eps)
        return mean, std


def normalizer_from_state(state: dict[str, Any]) -> _Gaussian:
    """Rebuild whichever normaliser :meth:`state` came from (dispatch on ``state['kind']``)."""
    if "kind" not in state:
        raise ValueError(f"normaliser state has no 'kind'; got keys {sorted(state)}")
    kind = str(np.asarray(state["kind"]))
    for cls in (UnitGaussian, PointwiseGaussian):
        if cls.kind == kind:
            return cls.from_state(state)
    raise ValueError(f"unknown normaliser kind {kind!r}; expected 'unit' or 'pointwise'")


def _register_pytrees() -> None:
    try:
        import jax
    except ImportError:  # pragma: no cover - jax is a hard dependency, but keep numpy use cheap
        return
    for cls in (UnitGaussian, PointwiseGaussian):
        jax.tree_util.register_pytree_node_class(cls)


_register_pytrees()
