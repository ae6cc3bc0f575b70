"""Pictures of predictions: input, truth, prediction and error for a few samples (one PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["plot_predictions"]


def _save_atomic(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def plot_predictions(x, y, pred, path, *, title: str = "", in_names=None, out_names=None) -> Path:
    """One row per sample: first input channel, truth, prediction and |error| of the first output
    channel. ``x``, ``y``, ``pred``: ``(k, *spatial, c)`` with 1 or 2 spatial axes (3-D fields
    show their middle slice). Written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, pred = (np.asarray(a, dtype=np.float64) for a in (x, y, pred))
    if y.shape != pred.shape:
        raise ValueError(f"truth {y.shape} and prediction {pred.shape} differ in shape")
    k = x.shape[0]
    spatial = x.ndim - 2
    if spatial == 3:  # middle slice of the last spatial axis
        mid = x.shape[3] // 2
        x, y, pred = x[:, :, :, mid], y[:, :, :, mid], pred[:, :, :, mid]
        spatial = 2
    in_name = (in_names or ["input"])[0]
    out_name = (out_names or ["output"])[0]
    cols = [f"input {in_name}", f"truth {out_name}", f"prediction {out_name}", "|error|"]
    fig, axes = plt.subplots(k, 4, figsize=(14, 3.0 * k), squeeze=False)
    fig.subplots_adjust(wspace=0.45)
    for i in range(k):
        err = np.abs(pred[i, ..., 0] - y[i, ..., 0])
        panels = [x[i, ..., 0], y[i, ..., 0], pred[i, ..., 0], err]
        lo, hi = min(y[i, ..., 0].min(), pred[i, ..., 0].min()), max(y[i, ..., 0].max(), pred[i, ..., 0].max())
        for j, (ax, field) in enumerate(zip(axes[i], panels)):
            if spatial == 1:
                ax.plot(np.linspace(0, 1, field.shape[0]), field)
                if j in (1, 2):
                    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
            else:
                kw = {"vmin": lo, "vmax": hi} if j in (1, 2) else {}
                im = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis" if j < 3 else "magma", **kw)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
                ax.set_xticks([])
                ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j])
        rel = np.linalg.norm(pred[i] - y[i]) / max(np.linalg.norm(y[i]), 1e-30)
        axes[i, 0].set_ylabel(f"sample {i}\nrel L2 {rel:.3g}")
    if title:
        fig.suptitle(title)
    path = Path(path)
    try:
        _save_atomic(fig, path)
    finally:
        plt.close(fig)
    return path
