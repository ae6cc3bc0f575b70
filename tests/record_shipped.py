"""Re-record the shipped models' reference predictions after a shipped checkpoint is replaced.

``tests/pfn/shipped_predictions.npz`` and ``tests/neural_processes/data/shipped_outputs.npz``
hold fixed inputs and what each shipped model predicts for them; the checkpoint tests hold every
later version of the model code and loader to those numbers. Only the outputs of the models named
are rewritten (the inputs stay)::

    python -m tests.record_shipped gp-rbf tabular anp-rbf mpanp-rbf
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
PFN_FILE = HERE / "pfn" / "shipped_predictions.npz"
NP_FILE = HERE / "neural_processes" / "data" / "shipped_outputs.npz"
PFN_KEYS = {"gp-rbf": "rbf", "gp-hyper": "hyper", "tabular": "tab"}


def record_pfn(names: list[str]) -> None:
    from pfn.estimators import PFNClassifier, PFNRegressor

    f = dict(np.load(PFN_FILE))
    for name in names:
        key = PFN_KEYS[name]
        if name == "tabular":
            f["tab_proba"] = PFNClassifier.from_pretrained(name).set_params(n_estimators=1, temperature=1.0).fit(
                f["tab_x"], f["tab_y"]).predict_proba(f["tab_xt"])
            continue
        dist = PFNRegressor.from_pretrained(name).set_params(n_estimators=1).fit(f[f"{key}_x"], f[f"{key}_y"]) \
            .predict_distribution(f[f"{key}_xt"])
        f[f"{key}_mean"], f[f"{key}_std"] = np.asarray(dist.mean), np.asarray(dist.std)
        f[f"{key}_logpdf"] = np.asarray(dist.logpdf(f[f"{key}_yt"]))
    np.savez(PFN_FILE, **f)


def record_np(names: list[str]) -> None:
    from neural_processes.checkpoint import from_pretrained

    f = dict(np.load(NP_FILE))
    for name in names:
        model, k = from_pretrained(name), name.replace("-", "_")
        f[f"{k}_mean"], f[f"{k}_std"] = model.predict(f["xc"], f["yc"], f["xt"], num_samples=8,
                                                      key=3)
        f[f"{k}_ll"] = model.log_likelihood(f["xc"], f["yc"], f["xt"], f["yt"], num_samples=8,
                                            key=3)
    np.savez(NP_FILE, **{k: np.asarray(v) for k, v in f.items()})


def main(argv: list[str]) -> int:
    unknown = sorted(set(argv) - set(PFN_KEYS) - {"anp-rbf", "mpanp-rbf"})
    if not argv or unknown:
        print(f"usage: python -m tests.record_shipped NAME...; unknown {unknown}", file=sys.stderr)
        return 2
    record_pfn([n for n in argv if n in PFN_KEYS])
    record_np([n for n in argv if n not in PFN_KEYS])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
