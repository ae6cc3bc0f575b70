"""scikit-learn estimators of a PFN (docs/design.md): ``PFNRegressor`` and ``PFNClassifier``.

They are plain scikit-learn citizens: keyword parameters stored by ``__init__`` and nothing
else (``model``: a shipped name of ``pfn.available()``, an export folder or a training run
folder), ``get_params`` / ``set_params`` / ``clone``, ``score`` from the mixins,
``n_features_in_`` and ``feature_names_in_`` (DataFrame input), ``NotFittedError`` before
``fit``; they work in pipelines, ``GridSearchCV`` and ``cross_val_score`` and pass
``check_estimator`` except the checks listed by :func:`expected_failed_checks` (each with its
reason: data beyond the network's row / feature / class limits).

``fit`` loads the network (once per ``model`` value per process: :func:`load_model` keeps a
small cache, so clones and grid searches do not read the disk again), validates the training
set and stores it: the network does the inference. ``predict*`` runs one forward pass with the
training rows as context. Inputs and targets are normalised inside the estimator as the
checkpoint's config says (TabPFN does the same): ``x_transform`` none / minmax (the estimated
support of a uniform law to [0, 1], the GP priors' domain: :func:`uniform_support`) / standardize, and ``y_transform`` none / standardize (to the prior's typical
per-dataset std). Every limit of the network (training rows, features, classes) is checked
with an error naming it, never truncated silently.

Test-time ensembles (``n_estimators``, TabPFN's trick): the network sees up to that many views
of the data under symmetries of its prior (``pfn.ensemble``) in one batched forward pass, and the
estimator averages their predictive distributions (class probabilities; bar-distribution bucket
probabilities, so the mixture is again a bar distribution on the same borders).

Compilation: the context is padded to a size bucket (powers of two from 16) with a key mask
and the targets to their own bucket, so a new number of rows costs one compilation per bucket,
not per size (``pfn.model.PFN`` ignores the padded context slots exactly).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from pfn import calibration

__all__ = ["LoadedPFN", "PFNClassifier", "PFNRegressor", "PredictiveDistribution",
           "bucket_size", "expected_failed_checks", "load_model"]

MIN_BUCKET = 16  # smallest padded size of a context
# Targets never attend to each other: any number, in chunks of exactly this many rows (the last
# one padded), so a row's outputs never depend on how many rows came with it (bit for bit: XLA
# may sum in another order at another shape) and no target count compiles anew.
TARGET_CHUNK = 256
CACHE_SIZE = 8  # loaded networks kept per process (by model value)


def bucket_size(n: int, largest: int | None = None) -> int:
    """The padded size of ``n`` points: the next power of two, at least :data:`MIN_BUCKET`;
    with ``largest``, the next multiple of ``largest`` instead."""
    if largest is not None:
        return max(1, -(-n // largest)) * largest
    return max(MIN_BUCKET, 1 << (max(n, 1) - 1).bit_length())


# -- loaded networks -----------------------------------------------------------------------------
class LoadedPFN:
    """A loaded PFN checkpoint: the network, its config and prior stats (``borders``,
    ``y_std``), and its jitted, size-bucketed forward pass. Immutable: copies (``clone``,
    ``deepcopy``) share it; pickles carry its weights."""

    def __init__(self, network, config: dict, stats: dict, source: str | None = None):
        self.network = network
        self.config = dict(config)
        self.stats = {k: np.asarray(v, np.float32) for k, v in stats.items()}
        self.source = source
        self.task = self.config.get("task")
        self.max_rows = int(self.config["max_context"])
        self.max_features = int(self.config["num_features"])
        self.max_classes = int(self.config.get("n_classes") or 0)
        self._forward = self._jit = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoadedPFN({self.source or self.task!r})"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        import jax
        from flax import nnx

        params = jax.tree_util.tree_map(
            np.asarray, nnx.to_pure_dict(nnx.state(self.network, nnx.Param)))
        return (_rebuild, (self.config, self.stats, params, self.source))

    def check_task(self, task: str) -> None:
        if self.task != task:
            raise ValueError(f"{self.source or 'this checkpoint'} is a {self.task} model, not a "
                             f"{task} one: use "
                             f"{'PFNClassifier' if self.task == 'classification' else 'PFNRegressor'}")

    def _get_forward(self):
        with self._lock:
            if self._forward is None:
                import jax
                from flax import nnx

                graphdef, params, rest = nnx.split(self.network, nnx.Param, ...)

                @jax.jit
                def forward(params, rest, xc, yc, mc, xt):
                    net = nnx.merge(graphdef, params, rest)
                    return net.predict(xc, yc, xt, mc)

                self._jit = forward  # (its compilation cache is what the tests look at)
                self._forward = lambda *a: forward(params, rest, *a)
            return self._forward

    def outputs(self, x_ctx: np.ndarray, y_ctx: np.ndarray, x_tgt: np.ndarray, ctx_len=None,
                target_chunk: int = TARGET_CHUNK):
        """Network outputs for the targets given the context, padded: ``(chunks, n)``, a list
        of jax arrays ``(TARGET_CHUNK, n_outputs)`` whose first ``n`` rows (concatenated) are
        the ``n`` targets'. Inputs are already encoded (``max_features`` columns).
        With a leading member axis (``x_ctx (k, n_ctx, F)``, ``y_ctx (k, n_ctx)``, ``x_tgt
        (k, n, F)``: the views of a test-time ensemble) all members run in one batch and each
        chunk is ``(k, TARGET_CHUNK, n_outputs)``. ``ctx_len (k,)``: the number of real context
        rows of each member (the rest padding; default: all). ``target_chunk``: rows per chunk.
        One compilation per context bucket (:func:`bucket_size`), none per target count."""
        import jax.numpy as jnp

        single = x_ctx.ndim == 2
        if single:
            x_ctx, y_ctx, x_tgt = x_ctx[None], y_ctx[None], x_tgt[None]
        forward = self._get_forward()
        k, n_ctx, n = x_ctx.shape[0], x_ctx.shape[1], x_tgt.shape[1]
        nb = bucket_size(n_ctx)
        xc = np.zeros((k, nb, x_ctx.shape[2]), np.float32)
        xc[:, :n_ctx] = x_ctx
        yc = np.zeros((k, nb), y_ctx.dtype)
        yc[:, :n_ctx] = y_ctx
        lengths = np.full(k, n_ctx) if ctx_len is None else np.asarray(ctx_len)
        mc = (np.arange(nb)[None, :] < lengths[:, None]).astype(np.float32)
        xc, yc, mc = jnp.asarray(xc), jnp.asarray(yc), jnp.asarray(mc)
        chunks = []
        for lo in range(0, max(n, 1), target_chunk):
            part = x_tgt[:, lo:lo + target_chunk]
            xt = np.zeros((k, target_chunk, x_tgt.shape[2]), np.float32)
            xt[:, :part.shape[1]] = part
            out = forward(xc, yc, mc, jnp.asarray(xt))
            chunks.append(out[0] if single else out)
        return chunks, n


def _rebuild(config, stats, params, source):
    """Unpickle a :class:`LoadedPFN`: the network of ``config`` with the pickled weights."""
    from flax import nnx

    from pfn.checkpoint import build_model

    network = build_model(config)
    state = nnx.state(network, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(network, state)
    return LoadedPFN(network, config, stats, source)


_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cache_key(model) -> tuple:
    """What identifies a loaded model: a shipped name, or a folder with the times and sizes of
    its files (an export replaced, a run trained further: loaded again)."""
    folder = Path(model)
    if not (folder / "config.json").is_file():
        return ("name", str(model))
    folder = folder.resolve()
    sig = []
    for name in ("config.json", "weights.npz"):
        f = folder / name
        if f.is_file():
            st = f.stat()
            sig.append((name, st.st_mtime_ns, st.st_size))
    ckpts = folder / "checkpoints"
    if ckpts.is_dir():
        sig.append(tuple(sorted(p.name for p in ckpts.iterdir())))
    return ("folder", str(folder), tuple(sig))


def load_model(model) -> LoadedPFN:
    """The :class:`LoadedPFN` of ``model`` (a shipped name, an export or run folder, or a
    ``LoadedPFN`` itself), from a per-process cache of the last :data:`CACHE_SIZE` loaded."""
    if isinstance(model, LoadedPFN):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a shipped name ({', '.join(_available())}), a model "
                        f"folder or a LoadedPFN, got {type(model).__name__}")
    key = _cache_key(model)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    from pfn.checkpoint import load_any

    loaded = LoadedPFN(*load_any(model), source=str(model))
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def _available() -> list[str]:
    from pfn.checkpoint import available

    return available()


# -- predictive distribution ---------------------------------------------------------------------
_JITTED: dict = {}


def _jitted(name: str):
    """Jitted Riemann computations on padded logits (one compilation per row bucket)."""
    fn = _JITTED.get(name)
    if fn is None:
        import jax

        from pfn.riemann import RiemannDistribution as R

        fns = {
            "moments": lambda lg, b: (R(lg, b).mean, R(lg, b).std),
            "quantile": lambda lg, b, q: R(lg[:, None, :], b).quantile(q[None, :]),
            "logpdf": lambda lg, b, z: R(lg, b).logpdf(z),
            "cdf": lambda lg, b, z: R(lg, b).cdf(z),
        }
        fn = _JITTED[name] = jax.jit(fns[name])
    return fn


class PredictiveDistribution:
    """Per-row predictive distribution in the user's units: an affine map ``y = a + s z`` of
    the network's Riemann distribution over normalised targets z.

    ``logits``: an array ``(n, K)``, or a list of ``(TARGET_CHUNK, K)`` chunks whose rows after
    the first ``n`` are padding (what the estimators' forward pass gives). Every computation
    runs jitted on chunks of :data:`TARGET_CHUNK` rows (one compilation, whatever ``n``); every
    result has ``n`` rows."""

    def __init__(self, logits, borders, shift: float, scale: float, n: int | None = None):
        import jax.numpy as jnp

        if isinstance(logits, (list, tuple)):
            chunks = [jnp.asarray(c, jnp.float32) for c in logits]
        else:
            arr = np.asarray(logits, np.float32)
            if arr.ndim != 2:
                raise ValueError(f"logits must be (n, K), got shape {arr.shape}")
            rows = bucket_size(len(arr), TARGET_CHUNK)
            arr = np.pad(arr, ((0, rows - len(arr)), (0, 0)))
            chunks = [jnp.asarray(arr[i:i + TARGET_CHUNK]) for i in range(0, rows, TARGET_CHUNK)]
            n = len(logits) if n is None else n
        self._chunks = chunks
        self._borders = jnp.asarray(borders, jnp.float32)
        k = chunks[0].shape[-1]
        if k + 1 != self._borders.shape[0]:
            raise ValueError(f"{k} logits need {k + 1} borders, got {self._borders.shape[0]}")
        self.n = int(sum(len(c) for c in chunks) if n is None else n)
        self._shift, self._scale = float(shift), float(scale)
        self._moments = None

    def __len__(self) -> int:
        return self.n

    def _map(self, name: str, *per_row) -> np.ndarray:
        """``name`` of every chunk (``per_row`` arrays padded alongside), rows ``[:n]``."""
        fn = _jitted(name)
        out = []
        for i, chunk in enumerate(self._chunks):
            extra = [r[i * TARGET_CHUNK:(i + 1) * TARGET_CHUNK] for r in per_row]
            out.append(fn(chunk, self._borders, *extra))
        if isinstance(out[0], tuple):
            return tuple(np.concatenate([np.asarray(o[j], np.float64) for o in out])[:self.n]
                         for j in range(len(out[0])))
        return np.concatenate([np.asarray(o, np.float64) for o in out])[:self.n]

    @property
    def logits(self) -> np.ndarray:
        """The network's logits over the normalised-target buckets, ``(n, K)``."""
        return np.concatenate([np.asarray(c) for c in self._chunks])[:self.n]

    def _mean_std(self):
        if self._moments is None:
            self._moments = self._map("moments")
        return self._moments

    @property
    def mean(self) -> np.ndarray:
        return self._shift + self._scale * self._mean_std()[0]

    @property
    def std(self) -> np.ndarray:
        return self._scale * self._mean_std()[1]

    @property
    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def quantile(self, q) -> np.ndarray:
        """Quantiles at level(s) q: shape (n,) for a scalar q, (n, len(q)) for a list."""
        import jax.numpy as jnp

        q = np.asarray(q, np.float64)
        if q.ndim > 1:
            raise ValueError(f"q must be a level or a 1-D list of levels, got shape {q.shape}")
        if not np.all(np.isfinite(q)) or np.any((q <= 0) | (q >= 1)):
            raise ValueError("quantile levels must lie strictly between 0 and 1")
        levels = jnp.asarray(q.reshape(-1), jnp.float32)
        fn = _jitted("quantile")
        z = np.concatenate([np.asarray(fn(c, self._borders, levels), np.float64)
                            for c in self._chunks])[:self.n]
        out = self._shift + self._scale * z
        return out[:, 0] if q.ndim == 0 else out

    def _per_row(self, name: str, y) -> np.ndarray:
        """``name`` (logpdf / cdf) of the normalised y, broadcast against the rows."""
        y = np.asarray(y, np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")
        z = (y - self._shift) / self._scale
        shape = np.broadcast_shapes(z.shape, (self.n,))
        rows = np.broadcast_to(z, shape).reshape(-1, self.n)
        pad = len(self._chunks) * TARGET_CHUNK - self.n
        out = [self._map(name, np.pad(r, (0, pad)).astype(np.float32)) for r in rows]
        return np.stack(out).reshape(shape)

    def logpdf(self, y) -> np.ndarray:
        """log density of y (one value per row, or broadcastable to the rows)."""
        return self._per_row("logpdf", y) - np.log(self._scale)

    def cdf(self, y) -> np.ndarray:
        return self._per_row("cdf", y)


# -- input scaling and ensembles -----------------------------------------------------------------
def uniform_support(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` per column mapping the estimated support of a uniform law to [0, 1]:
    from n draws with range r, the unbiased ends min - r / (n - 1) and max + r / (n - 1) (the
    GP priors draw x ~ U[0, 1]; mapping the sample's own min and max to 0 and 1 would put two
    context points at the domain's ends whatever their distance). A constant column (or one
    row) is centred at 1/2 with scale 1."""
    n = len(X)
    lo, hi = X.min(0), X.max(0)
    r = hi - lo
    ok = (r > 0) & (n > 1)
    gap = np.where(ok, r / max(n - 1, 1), 0.0)
    scale = np.where(ok, r + 2 * gap, 1.0)
    shift = np.where(ok, lo - gap, lo - 0.5)
    return shift, scale


def mixture_logits(member_logits):
    """Logits of the equal-weight mixture of bar distributions on shared borders: ``(k, rows,
    K) -> (rows, K)``, log of the mean of the members' bucket probabilities."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(jnp.asarray(member_logits, jnp.float32), axis=-1)
    return jax.scipy.special.logsumexp(logp, axis=0) - jnp.log(logp.shape[0])


# -- the estimators ------------------------------------------------------------------------------
class _PFNBase(BaseEstimator):
    _task = ""

    @classmethod
    def from_pretrained(cls, name_or_folder):
        """An estimator of a shipped model (a name of ``pfn.available()``), an export folder
        (``python -m pfn export``) or a training run folder (its latest checkpoint); the model
        is loaded (and its task checked) now, into the cache ``fit`` reads."""
        load_model(name_or_folder).check_task(cls._task)
        return cls(model=name_or_folder)

    @classmethod
    def from_run(cls, run_path):
        """The latest checkpoint of a training run folder."""
        return cls.from_pretrained(run_path)

    # -- helpers -------------------------------------------------------------------------------
    def _load(self) -> LoadedPFN:
        loaded = load_model(self.model)
        loaded.check_task(self._task)
        return loaded

    def _check_fit_data(self, X, y, loaded: LoadedPFN, **kw):
        """Validated (X, y) within the network's limits; ``n_features_in_`` and
        ``feature_names_in_`` set only when they pass."""
        X_in = X
        X, y = check_X_y(X, y, dtype=np.float64, **kw)
        if X.shape[1] > loaded.max_features:
            raise ValueError(f"X has {X.shape[1]} features; this model ({loaded.source}) takes "
                             f"at most {loaded.max_features} (max_features)")
        if X.shape[0] > loaded.max_rows:
            raise ValueError(f"X has {X.shape[0]} training rows; this model ({loaded.source}) "
                             f"takes at most {loaded.max_rows} (max_rows); subsample the "
                             "training set")
        validate_data(self, X_in, reset=True, skip_check_array=True)
        return X, y

    def _fit_x_transform(self, X, kind: str):
        if kind == "none":
            shift, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        elif kind == "minmax":
            shift, scale = uniform_support(X)
        elif kind == "standardize":
            sd = X.std(0)
            shift, scale = X.mean(0), np.where(sd > 0, sd, 1.0)
        else:
            raise ValueError(f"unknown x_transform {kind!r} in the checkpoint config")
        self._x_shift, self._x_scale = shift, scale

    def _encode_x(self, X) -> np.ndarray:
        """Scaled features ``(n, d)``; with a test-time ensemble, every member's view of them
        ``(k, n, d)``; zero-padded to the network's ``max_features`` columns."""
        Z = (X - self._x_shift) / self._x_scale
        members = getattr(self, "_members", None)
        if members is not None and len(members) > 1:
            Z = members.transform_x(Z)
        pad = self._loaded.max_features - Z.shape[-1]
        return np.pad(Z, [(0, 0)] * (Z.ndim - 1) + [(0, pad)]).astype(np.float32)

    def _draw_members(self, n_features: int, n_classes: int = 0) -> None:
        """The test-time ensemble of ``n_estimators`` views (``pfn.ensemble``), seeded by
        ``random_state``."""
        from pfn.ensemble import draw_members, symmetries

        self._members = draw_members(self.n_estimators, n_features, n_classes,
                                     symmetries(self._loaded.config), self._rng(0))

    def _rng(self, stream: int) -> np.random.Generator:
        """A generator seeded by ``random_state``, one ``stream`` per use (0: the ensemble's
        views, 1: the classifier's folds)."""
        from sklearn.utils import check_random_state

        return np.random.default_rng(check_random_state(self.random_state).randint(2 ** 31) + stream)

    def _outputs(self, X):
        """Padded network outputs and the number of test rows given the stored context
        (chunks ``(k, TARGET_CHUNK, n_outputs)`` for an ensemble of k > 1 members)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        x_test = self._encode_x(X)
        y_ctx = self._y_ctx
        if x_test.ndim == 3 and y_ctx.ndim == 1:  # members share the regression targets
            y_ctx = np.broadcast_to(y_ctx, x_test.shape[:1] + y_ctx.shape)
        chunks, n = self._loaded.outputs(self._x_ctx, y_ctx, x_test)
        if not all(np.isfinite(np.asarray(c)).all() for c in chunks):
            # name what the network saw that is large: the features or the targets of the fit
            x_max = float(max(np.abs(x_test).max(), np.abs(self._x_ctx).max()))
            y_max = float(np.abs(self._y_ctx).max())
            what = ("y (the targets given to fit)", y_max) if y_max > x_max else (
                "X (the features, after the model's own scaling)", x_max)
            raise FloatingPointError(
                f"the network's outputs are not finite: {what[0]} reach magnitude "
                f"{what[1]:.3g} and overflow its float32 computation; rescale "
                f"{what[0].split()[0]} first (e.g. with a StandardScaler)")
        return chunks, n

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_x_ctx")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # the network has no missing-value embedding
        tags.input_tags.sparse = False
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False  # one target (one bar distribution) per row
        tags.non_deterministic = False  # one deterministic forward pass
        return tags


class PFNRegressor(RegressorMixin, _PFNBase):
    """Posterior predictive regression with a PFN trained on a GP / BNN prior.

    ``model``: a shipped regression model (``"gp-rbf"``: 1-D inputs on [0, 1]; ``"gp-hyper"``:
    up to 5 features, any range), an export folder or a run folder. ``predict`` gives the
    posterior predictive mean (``return_std=True``: and its std), ``predict_quantiles`` its
    quantiles, ``predict_distribution`` the whole distribution. ``n_estimators``: the
    test-time ensemble's size (``pfn.ensemble``: the mixture of the predictive distributions of
    up to that many views with permuted features and inputs reflected across the prior's domain,
    one batched forward pass; 1-D data has two views; it lowered the test NLL at every context
    size of bench/pfn_gp_rbf_exact.py and bench/pfn_gp_hyper_sklearn.py); ``random_state``
    seeds the views."""

    _task = "regression"

    def __init__(self, *, model="gp-rbf", n_estimators=8, random_state=0):
        self.model = model
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X, y):
        loaded = self._load()
        X, y = self._check_fit_data(X, y, loaded, y_numeric=True)
        cfg = loaded.config
        self._loaded = loaded
        self._draw_members(X.shape[1])
        self._fit_x_transform(X, cfg.get("x_transform", "none"))
        if cfg.get("y_transform", "none") == "standardize":
            sd = y.std()
            self._y_shift = float(y.mean())
            self._y_scale = float((sd if sd > 0 else 1.0) / float(loaded.stats["y_std"]))
        else:
            self._y_shift, self._y_scale = 0.0, 1.0
        self._x_ctx = self._encode_x(X)
        self._y_ctx = ((y - self._y_shift) / self._y_scale).astype(np.float32)
        if cfg.get("standardise"):  # the network standardises y by the context itself
            # (the members' views change x only: they share this affine)
            from pfn.model import context_affine

            m, s = (float(np.asarray(a).ravel()[0]) for a in context_affine(
                self._y_ctx[None, :, None], np.ones((1, len(self._y_ctx)), np.float32)))
            self._y_shift, self._y_scale = self._y_shift + self._y_scale * m, self._y_scale * s
        return self

    def predict_distribution(self, X) -> PredictiveDistribution:
        """The posterior predictive distribution of every row of X (mean, std, median,
        quantile, logpdf, cdf; numpy arrays in the units of y)."""
        chunks, n = self._outputs(X)
        if chunks[0].ndim == 3:  # an ensemble: the mixture of the members' bar distributions
            chunks = [mixture_logits(c) for c in chunks]
        return PredictiveDistribution(chunks, self._loaded.stats["borders"], self._y_shift,
                                      self._y_scale, n=n)

    def predict(self, X, return_std: bool = False):
        """Posterior predictive mean; with ``return_std`` also its standard deviation."""
        dist = self.predict_distribution(X)
        return (dist.mean, dist.std) if return_std else dist.mean

    def predict_quantiles(self, X, q=(0.05, 0.5, 0.95)) -> np.ndarray:
        """Posterior predictive quantiles: (n, len(q)) for a list of levels, (n,) for one."""
        return self.predict_distribution(X).quantile(q)


def _check_temperature(value) -> float:
    """A positive, finite softmax temperature (``"auto"`` is handled by the caller)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"temperature must be 'auto' or a positive number, got {value!r}")
    return float(value)


class PFNClassifier(ClassifierMixin, _PFNBase):
    """Tabular classification with a PFN trained on the classification prior.

    ``model``: ``"tabular"`` (up to 200 training rows, 20 features, 10 classes), an export
    folder or a run folder. ``n_estimators``: the test-time ensemble's size (``pfn.ensemble``:
    probabilities averaged over views with permuted and reflected features and renamed classes,
    one batched forward pass; 8 raised accuracy in 11 of 12 cells of bench/pfn_tabular.py, by up
    to 0.08 on digits); ``random_state`` seeds the views and the folds (an int: the same
    predictions every fit). ``temperature``: the softmax temperature of every member's logits,
    a positive number or ``"auto"`` (the default): inferred in ``fit`` from the held-out
    likelihood of the training rows (``pfn.calibration``: 10 stratified folds, one batched
    forward pass; a posterior over a grid of temperatures, ``temperature_posterior_ =
    (temperatures, weights)``, whose mixture ``predict_proba`` returns; ``temperature_``: its
    geometric mean). It changes the confidence, hardly the ranking of the classes: the network
    is underconfident on real tables, and on bench/pfn_tabular.py "auto" lowered the test NLL
    in 12 of 12 cells (k = 8) and the ECE from 0.25 to 0.08 on average."""

    _task = "classification"

    def __init__(self, *, model="tabular", n_estimators=8, random_state=0, temperature="auto"):
        self.model = model
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.temperature = temperature

    def fit(self, X, y):
        loaded = self._load()
        X, y = self._check_fit_data(X, y, loaded)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) > loaded.max_classes:
            raise ValueError(f"y has {len(classes)} classes; this model ({loaded.source}) "
                             f"takes at most {loaded.max_classes} (max_classes)")
        self._loaded = loaded
        self.classes_ = classes
        self._draw_members(X.shape[1], len(classes))
        self._fit_x_transform(X, loaded.config.get("x_transform", "none"))
        self._x_ctx = self._encode_x(X)
        codes = codes.astype(np.int32)
        self._y_ctx = self._members.transform_y(codes) if len(self._members) > 1 else codes
        if isinstance(self.temperature, str) and self.temperature == "auto":
            self.temperature_posterior_ = self._cv_temperatures(codes)
        else:
            self.temperature_posterior_ = (np.array([_check_temperature(self.temperature)]), np.ones(1))
        temps, weights = self.temperature_posterior_
        self.temperature_ = float(np.exp(weights @ np.log(temps)))
        return self

    def _cv_temperatures(self, codes) -> tuple[np.ndarray, np.ndarray]:
        """``pfn.calibration``: the posterior over temperatures from the held-out likelihood of
        stratified folds of the training rows (T = 1 below ``MIN_ROWS`` rows or with one
        class)."""
        if len(codes) < calibration.MIN_ROWS or len(self.classes_) < 2:
            return np.ones(1), np.ones(1)
        untransform = self._members.untransform_proba if len(self._members) > 1 else None
        return calibration.temperature_posterior(*self._cv_logits(codes), untransform)

    def _cv_logits(self, codes):
        """Per stratified fold of the training rows: the members' logits ``(k, m, C)`` of its
        m held-out rows with the other folds as context (all folds and members in one forward
        pass), their labels ``(m,)`` and whether each row's class is in that context."""
        n, n_classes = len(codes), len(self.classes_)
        folds = calibration.stratified_folds(codes, min(calibration.MAX_FOLDS, n), self._rng(1))
        keeps = [np.setdiff1d(np.arange(n), held) for held in folds]
        x = self._x_ctx if self._x_ctx.ndim == 3 else self._x_ctx[None]  # (k, n, F)
        y = self._y_ctx if self._y_ctx.ndim == 2 else self._y_ctx[None]  # (k, n)
        k, F = x.shape[0], x.shape[2]
        n_ctx, m_max = n - min(map(len, folds)), max(map(len, folds))
        xc = np.zeros((len(folds), k, n_ctx, F), np.float32)
        yc = np.zeros((len(folds), k, n_ctx), y.dtype)
        xt = np.zeros((len(folds), k, m_max, F), np.float32)
        lengths = np.zeros((len(folds), k), np.intp)
        for f, (held, keep) in enumerate(zip(folds, keeps)):
            xc[f, :, :len(keep)], yc[f, :, :len(keep)] = x[:, keep], y[:, keep]
            xt[f, :, :len(held)] = x[:, held]
            lengths[f] = len(keep)
        chunks, _ = self._loaded.outputs(xc.reshape(-1, n_ctx, F), yc.reshape(-1, n_ctx),
                                         xt.reshape(-1, m_max, F), ctx_len=lengths.ravel(),
                                         target_chunk=bucket_size(m_max, 8))
        logits = np.asarray(chunks[0])[:, :m_max, :n_classes].reshape(len(folds), k, m_max, n_classes)
        seen = [np.isin(codes[held], codes[keep]) for held, keep in zip(folds, keeps)]
        return ([logits[f, :, :len(held)].astype(np.float64) for f, held in enumerate(folds)],
                [codes[held] for held in folds], seen)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        chunks, n = self._outputs(X)
        logits = np.concatenate([np.asarray(c) for c in chunks], axis=-2)
        logits = logits[..., :n, :len(self.classes_)].astype(np.float64)
        temps, weights = self.temperature_posterior_
        if logits.ndim == 2:
            return calibration.mixture_proba(logits[None], temps, weights)
        # an ensemble: each member's classes back in order, probabilities averaged
        return calibration.mixture_proba(logits, temps, weights, self._members.untransform_proba)

    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


# -- scikit-learn's estimator checks that a PFN cannot pass by nature ----------------------------
# The largest training set (rows, features, classes) that each check of
# ``sklearn.utils.estimator_checks`` (scikit-learn 1.9) fits and expects to succeed; measured by
# recording every ``fit`` of ``check_estimator`` (checks that expect ``fit`` to raise, such as
# ``check_supervised_y_no_nan``, are not listed: a PFN raises the error they want first).
_CHECK_DATA = {
    "check_classifier_data_not_an_array": (12, 2, 2),
    "check_classifiers_classes": (30, 2, 3),
    "check_classifiers_one_label": (10, 3, 1),
    "check_classifiers_train": (300, 2, 3),
    "check_dict_unchanged": (20, 3, 3),
    "check_dont_overwrite_parameters": (20, 3, 3),
    "check_dtype_object": (56, 10, 4),
    "check_estimators_dtypes": (20, 5, 2),
    "check_estimators_fit_returns_self": (21, 2, 3),
    "check_estimators_nan_inf": (10, 3, 2),
    "check_estimators_overwrite_params": (21, 2, 3),
    "check_estimators_pickle": (30, 3, 2),
    "check_f_contiguous_array_estimator": (20, 3, 3),
    "check_fit2d_1feature": (10, 1, 2),
    "check_fit2d_1sample": (1, 10, 1),
    "check_fit2d_predict1d": (20, 3, 3),
    "check_fit_check_is_fitted": (100, 2, 2),
    "check_fit_idempotent": (80, 2, 2),
    "check_fit_score_takes_y": (30, 3, 3),
    "check_methods_sample_order_invariance": (20, 3, 3),
    "check_methods_subset_invariance": (20, 3, 3),
    "check_n_features_in": (100, 2, 2),
    "check_n_features_in_after_fitting": (15, 4, 3),
    "check_pipeline_consistency": (30, 3, 2),
    "check_positive_only_tag_during_fit": (150, 4, 3),
    "check_readonly_memmap_input": (21, 2, 3),
    "check_regressor_data_not_an_array": (200, 10, 0),
    "check_regressors_int": (50, 10, 0),
    "check_regressors_no_decision_function": (10, 4, 0),
    "check_regressors_train": (200, 10, 0),
    "check_supervised_y_2d": (30, 3, 3),
}


def expected_failed_checks(estimator) -> dict[str, str]:
    """``{check name: reason}`` of the ``sklearn.utils.estimator_checks`` checks that
    ``estimator`` cannot pass because its network's limits (training rows, features, classes)
    are below the data the check fits; for ``check_estimator(est, expected_failed_checks=...)``
    and ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``."""
    loaded = load_model(estimator.model)
    classifier = loaded.task == "classification"
    out = {}
    for name, (rows, features, classes) in _CHECK_DATA.items():
        if ("classifier" in name and not classifier) or ("regressor" in name and classifier):
            continue  # checks of the other kind of estimator
        over = []
        if rows > loaded.max_rows:
            over.append(f"{rows} rows > max_rows {loaded.max_rows}")
        if features > loaded.max_features:
            over.append(f"{features} features > max_features {loaded.max_features}")
        if classifier and classes > loaded.max_classes:
            over.append(f"{classes} classes > max_classes {loaded.max_classes}")
        if over:
            out[name] = (f"fits a training set beyond the network's limits ({'; '.join(over)}):"
                         " a PFN refuses data larger than it was trained for")
    return out
