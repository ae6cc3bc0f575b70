"""scikit-learn style PFN estimators (docs/design.md): ``PFNRegressor`` and ``PFNClassifier``.

``fit`` only validates and stores the training set (the network does the inference);
``predict*`` runs one forward pass with the training rows as context. Inputs and targets are
normalised inside the estimator as the checkpoint's config says (TabPFN does the same):
``x_transform`` none / minmax (to [0, 1], the GP priors' domain) / standardize, and
``y_transform`` none / standardize (to the prior's typical per-dataset std). Every limit of the
network (training rows, features, classes) is checked with an error naming it, never
truncated silently. Numpy or pandas in, numpy out.
"""

from __future__ import annotations

import numpy as np

from pfn.riemann import RiemannDistribution

TARGET_CHUNK = 2048  # targets never attend to each other: any number, in chunks
_FORWARD_CACHE: dict = {}  # id(model) -> (model, jitted forward): one compilation per model


def _forward_for(model):
    """A jitted ``forward(x_ctx, y_ctx, x_tgt)`` shared by every estimator of ``model``."""
    import jax
    from flax import nnx

    hit = _FORWARD_CACHE.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def forward(params, x_ctx, y_ctx, x_tgt):
        m = nnx.merge(graphdef, params, rest)
        return m.predict(x_ctx[None], y_ctx[None], x_tgt[None])[0]

    fn = lambda *a: forward(params, *a)
    _FORWARD_CACHE[id(model)] = (model, fn)
    return fn


def _as_2d_float(X, what="X") -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numeric (encode categorical columns first): {err}") \
            from None
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
                         "use X.reshape(-1, 1) for a single feature")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s); impute them first")
    return arr


class _PFNBase:
    task = ""

    def __init__(self, model, config: dict, stats: dict):
        if config.get("task") != self.task:
            raise ValueError(f"this checkpoint is for {config.get('task')}, not {self.task}")
        self.model_ = model
        self.config_ = dict(config)
        self.stats_ = stats
        self.max_rows = int(config["max_context"])
        self.max_features = int(config["num_features"])
        self._forward = None

    @classmethod
    def from_pretrained(cls, name_or_folder: str):
        """A shipped model (a name of ``pfn.available()``), an export folder
        (``python -m pfn export``) or a training run folder (its latest checkpoint)."""
        from pfn.checkpoint import load_any

        return cls(*load_any(name_or_folder))

    @classmethod
    def from_run(cls, run_path: str):
        """The latest checkpoint of a training run folder."""
        from pfn.checkpoint import load_run

        return cls(*load_run(run_path))

    # -- input handling --------------------------------------------------------------------
    def _check_X(self, X, fitting: bool) -> np.ndarray:
        X = _as_2d_float(X)
        if X.shape[1] > self.max_features:
            raise ValueError(f"X has {X.shape[1]} features; this model takes at most "
                             f"{self.max_features} (max_features)")
        if fitting:
            if X.shape[0] < 1:
                raise ValueError("fit needs at least one training row")
            if X.shape[0] > self.max_rows:
                raise ValueError(f"X has {X.shape[0]} training rows; this model takes at most "
                                 f"{self.max_rows} (max_rows); subsample the training set")
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but the estimator was fitted with "
                             f"{self.n_features_in_}")
        return X

    def _fit_x_transform(self, X):
        kind = self.config_.get("x_transform", "none")
        if kind == "none":
            self._x_shift, self._x_scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        elif kind == "minmax":
            lo, hi = X.min(0), X.max(0)
            span = np.where(hi > lo, hi - lo, 1.0)
            self._x_shift, self._x_scale = lo, span
        elif kind == "standardize":
            sd = X.std(0)
            self._x_shift, self._x_scale = X.mean(0), np.where(sd > 0, sd, 1.0)
        else:
            raise ValueError(f"unknown x_transform {kind!r} in the checkpoint config")

    def _encode_x(self, X) -> np.ndarray:
        Z = (X - self._x_shift) / self._x_scale
        pad = self.max_features - Z.shape[1]
        return np.pad(Z, ((0, 0), (0, pad))).astype(np.float32)

    def _check_fitted(self):
        if not hasattr(self, "_x_ctx"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X, y)")

    def _outputs(self, X) -> np.ndarray:
        """Raw network outputs (n_test, n_outputs) for test rows given the stored context."""
        import jax.numpy as jnp

        self._check_fitted()
        X = self._check_X(X, fitting=False)
        xt = self._encode_x(X)
        if self._forward is None:
            self._forward = _forward_for(self.model_)
        out = [np.asarray(self._forward(jnp.asarray(self._x_ctx), jnp.asarray(self._y_ctx),
                                        jnp.asarray(xt[i:i + TARGET_CHUNK])))
               for i in range(0, len(xt), TARGET_CHUNK)]
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.config_["n_outputs"]))


class PredictiveDistribution:
    """Per-row predictive distribution in the user's units: an affine map ``y = a + s z`` of
    the network's Riemann distribution over normalised targets z."""

    def __init__(self, logits, borders, shift: float, scale: float):
        self._dist = RiemannDistribution(logits, borders)
        self._shift, self._scale = float(shift), float(scale)

    @property
    def mean(self) -> np.ndarray:
        return self._shift + self._scale * np.asarray(self._dist.mean, np.float64)

    @property
    def std(self) -> np.ndarray:
        return self._scale * np.asarray(self._dist.std, np.float64)

    @property
    def median(self) -> np.ndarray:
        return self.quantile(0.5)

    def quantile(self, q) -> np.ndarray:
        """Quantiles at level(s) q: shape (n,) for a scalar q, (n, len(q)) for a list."""
        q = np.asarray(q, np.float64)
        if np.any((q <= 0) | (q >= 1)):
            raise ValueError("quantile levels must lie strictly between 0 and 1")
        if q.ndim == 0:
            z = self._dist.quantile(q)
        else:  # (n, 1, K) logits against (L,) levels -> (n, L)
            z = RiemannDistribution(self._dist.logits[:, None, :], self._dist.borders).quantile(
                q.reshape(-1))
        return self._shift + self._scale * np.asarray(z, np.float64)

    def _z(self, y):
        y = np.asarray(y, np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")
        return (y - self._shift) / self._scale

    def logpdf(self, y) -> np.ndarray:
        """log density of y (one value per row, or broadcastable to the rows)."""
        return np.asarray(self._dist.logpdf(self._z(y)), np.float64) - np.log(self._scale)

    def cdf(self, y) -> np.ndarray:
        return np.asarray(self._dist.cdf(self._z(y)), np.float64)


class PFNRegressor(_PFNBase):
    """Posterior predictive regression with a PFN trained on a GP / BNN prior."""

    task = "regression"

    def fit(self, X, y):
        X = self._check_X(X, fitting=True)
        y = np.asarray(y, np.float64).reshape(-1) if np.ndim(y) <= 1 or np.shape(y)[-1] == 1 \
            else np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one target), got shape {np.shape(y)}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")
        self.n_features_in_ = X.shape[1]
        self._fit_x_transform(X)
        if self.config_.get("y_transform", "none") == "standardize":
            sd = y.std()
            self._y_shift = y.mean()
            self._y_scale = (sd if sd > 0 else 1.0) / float(self.stats_["y_std"])
        else:
            self._y_shift, self._y_scale = 0.0, 1.0
        self._x_ctx = self._encode_x(X)
        self._y_ctx = ((y - self._y_shift) / self._y_scale).astype(np.float32)
        return self

    def predict_distribution(self, X) -> PredictiveDistribution:
        logits = self._outputs(X)
        return PredictiveDistribution(logits, self.stats_["borders"], self._y_shift,
                                      self._y_scale)

    def predict(self, X) -> np.ndarray:
        """Posterior predictive mean."""
        return self.predict_distribution(X).mean


class PFNClassifier(_PFNBase):
    """Tabular classification with a PFN trained on the classification prior."""

    task = "classification"

    def fit(self, X, y):
        X = self._check_X(X, fitting=True)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) > int(self.config_["n_classes"]):
            raise ValueError(f"y has {len(self.classes_)} classes; this model takes at most "
                             f"{self.config_['n_classes']} (max_classes)")
        self.n_features_in_ = X.shape[1]
        self._fit_x_transform(X)
        self._x_ctx = self._encode_x(X)
        self._y_ctx = codes.astype(np.int32)
        return self

    def predict_proba(self, X) -> np.ndarray:
        logits = self._outputs(X)[:, : len(self.classes_)].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
