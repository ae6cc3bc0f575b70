"""PFN `tabular` checkpoint vs logistic regression and a GP classifier (scikit-learn) on
sklearn's bundled datasets (iris, wine, breast cancer, digits restricted to its 20 most
variable pixels) at 20, 50, 100 training rows over 10 random stratified splits.
Writes bench/pfn_tabular.json and prints a markdown table (mean over splits).
    python bench/pfn_tabular.py [--model tabular] [--splits 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.base import clone

from pfn.estimators import PFNClassifier
from pfn.evaluate import summarize_tabular, tabular_benchmark


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tabular")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).with_name("pfn_tabular.json")))
    args = ap.parse_args()
    proto = PFNClassifier.from_pretrained(args.model)  # loads once; clones share the network
    make = lambda: clone(proto)
    rows = tabular_benchmark(make, n_splits=args.splits)
    table = summarize_tabular(rows)
    Path(args.out).write_text(json.dumps({"model": args.model, "splits": args.splits,
                                          "rows": rows, "summary": table}, indent=1))
    print("| dataset | n_train | method | accuracy | ROC AUC | ECE | fit+predict s |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['dataset']} | {r['n_train']} | {r['method']} | {r['accuracy']:.3f} | "
              f"{r['roc_auc']:.3f} | {r['ece']:.3f} | {r['seconds']:.3f} |")


if __name__ == "__main__":
    main()
