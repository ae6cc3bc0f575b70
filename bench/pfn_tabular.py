"""PFN `tabular` checkpoint vs logistic regression and a GP classifier (scikit-learn) on
sklearn's bundled datasets (iris, wine, breast cancer, digits restricted to its 20 most
variable pixels) at 20, 50, 100 training rows over 10 random stratified splits.
``--n-estimators 1,8`` scores the PFN at each test-time ensemble size (``PFNClassifier(
n_estimators=K, random_state=split)``) on the same splits (methods ``pfn`` for K = 1,
``pfn_k{K}`` otherwise), and ``--temperatures auto,1`` at each softmax temperature
(``temperature=...``; methods suffixed ``_t{T}`` unless it is ``auto``, the default), and
``--preprocess none,power,quantile`` with a scikit-learn transformer of the features in front
(``PowerTransformer()`` (Yeo-Johnson) or ``QuantileTransformer(output_distribution="normal")``
in a pipeline, as a user would add one; methods suffixed ``_power`` / ``_quantile``). Writes the JSON (one row per split and method, and a summary with
standard errors over splits and paired differences against logistic regression) and prints a
markdown table.
    python bench/pfn_tabular.py [--model tabular] [--splits 10] [--n-estimators 1]
        [--temperatures auto] [--preprocess none]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PowerTransformer, QuantileTransformer

from pfn.estimators import PFNClassifier
from pfn.evaluate import tabular_benchmark

TRANSFORMS = {"none": None, "power": PowerTransformer,
              "quantile": lambda: QuantileTransformer(n_quantiles=20, output_distribution="normal")}


def summarize(rows: list[dict]) -> list[dict]:
    """Per (dataset, rows, method): means +- SE over splits; paired difference to logreg."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["n_train"]), {}).setdefault(r["method"], {})[
            r["split"]] = r
    table = []
    for (dname, n_train), by_method in cells.items():
        ref = by_method["logreg"]
        for method, per in by_method.items():
            splits = sorted(per)
            out = {"dataset": dname, "n_train": n_train, "method": method, "splits": len(splits)}
            for key in ("accuracy", "roc_auc", "ece", "nll", "seconds"):
                v = np.array([per[s][key] for s in splits])
                out[key] = float(v.mean())
                out[f"{key}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
            d = np.array([per[s]["accuracy"] - ref[s]["accuracy"] for s in splits])
            out["accuracy_minus_logreg"] = float(d.mean())
            out["accuracy_minus_logreg_se"] = (float(d.std(ddof=1) / np.sqrt(len(d)))
                                               if len(d) > 1 else None)
            table.append(out)
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tabular")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--n-estimators", default="1",
                    help="comma-separated test-time ensemble sizes to score, e.g. 1,8")
    ap.add_argument("--temperatures", default="auto",
                    help="comma-separated softmax temperatures to score ('auto': chosen by "
                         "cross-validation on the training rows), e.g. auto,1")
    ap.add_argument("--preprocess", default="none",
                    help="comma-separated feature transforms in front of the PFN: none, power "
                         "(Yeo-Johnson), quantile (to normal scores)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("pfn_tabular.json")))
    args = ap.parse_args()
    sizes = [int(k) for k in args.n_estimators.split(",")]
    proto = PFNClassifier.from_pretrained(args.model)  # loads once; clones share the network
    temps = [t if t == "auto" else float(t) for t in args.temperatures.split(",")]
    preprocess = args.preprocess.split(",")
    unknown = set(preprocess) - set(TRANSFORMS)
    if unknown:
        ap.error(f"--preprocess: unknown {sorted(unknown)}; choose from {sorted(TRANSFORMS)}")

    def maker(k, t, pre):
        def make(split):
            pfn = clone(proto).set_params(n_estimators=k, random_state=split, temperature=t)
            return pfn if pre == "none" else make_pipeline(TRANSFORMS[pre](), pfn)
        return make

    makers = {("pfn" if k == 1 else f"pfn_k{k}") + ("" if t == "auto" else f"_t{t:g}")
              + ("" if pre == "none" else f"_{pre}"): maker(k, t, pre)
              for k in sizes for t in temps for pre in preprocess}
    rows = tabular_benchmark(makers, n_splits=args.splits)
    table = summarize(rows)
    Path(args.out).write_text(json.dumps({"model": args.model, "splits": args.splits,
                                          "n_estimators": sizes, "temperatures": temps,
                                          "preprocess": preprocess, "rows": rows,
                                          "summary": table}, indent=1))
    print("| dataset | n_train | method | accuracy | - logreg (paired) | ROC AUC | ECE | NLL | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['dataset']} | {r['n_train']} | {r['method']} | {r['accuracy']:.3f} +- "
              f"{r['accuracy_se'] or 0:.3f} | {r['accuracy_minus_logreg']:+.3f} +- "
              f"{r['accuracy_minus_logreg_se'] or 0:.3f} | {r['roc_auc']:.3f} | {r['ece']:.3f} | "
              f"{r['nll']:.3f} | "
              f"{r['seconds']:.3f} |")


if __name__ == "__main__":
    main()
