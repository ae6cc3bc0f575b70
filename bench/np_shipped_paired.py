"""The shipped neural processes side by side on the same test tasks, paired per task (issue 14).

Per-task context / target log-likelihood of each shipped model on the seeded test tasks of
``python -m neural_processes evaluate`` (same tasks, same sampling keys, so each model's mean
equals that command's), and the paired difference of every pair of models with its standard
error over tasks: the unpaired standard errors of two close means say little about their order.

    python bench/np_shipped_paired.py [--models anp-rbf,mpanp-rbf] [--data rbf]
        [--n-tasks 3000] [--num-samples 50] [--out bench/np_shipped_paired.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from itertools import combinations
from pathlib import Path

import jax
import numpy as np

import neural_processes
from neural_processes.evaluate import _eval_batch, _source


def per_task(model, source, n_tasks, seed, num_samples, batch_size=100):
    """(context ll, target ll) per task, as ``evaluate_model`` averages them."""
    key = jax.random.key(seed + 1)
    ctx, tar = [], []
    for i, b in enumerate(source.test_batches(n_tasks, seed, batch_size)):
        c, t = _eval_batch(model, b, jax.random.fold_in(key, i), num_samples)
        ctx.append(np.asarray(c))
        tar.append(np.asarray(t))
    return np.concatenate(ctx), np.concatenate(tar)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="anp-rbf,mpanp-rbf")
    ap.add_argument("--data", default="rbf")
    ap.add_argument("--n-tasks", type=int, default=3000)
    ap.add_argument("--num-samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("np_shipped_paired.json")))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        ap.error(f"{out} exists; pass --overwrite to replace it")
    source = _source(args.data)
    se = lambda v: float(v.std(ddof=1) / np.sqrt(len(v)))
    scores, result = {}, {"data": args.data, "n_tasks": args.n_tasks, "seed": args.seed,
                          "num_samples": args.num_samples, "date": time.strftime("%Y-%m-%d"),
                          "machine": "2-core CPU VM shared with other jobs",
                          "jax": jax.__version__, "models": {}, "paired": []}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        ctx, tar = per_task(neural_processes.from_pretrained(name), source, args.n_tasks,
                            args.seed, args.num_samples)
        scores[name] = tar
        result["models"][name] = {"context_ll": float(ctx.mean()), "context_ll_se": se(ctx),
                                  "target_ll": float(tar.mean()), "target_ll_se": se(tar),
                                  "seconds": round(time.perf_counter() - t0, 1)}
        print(name, result["models"][name], flush=True)
    for a, b in combinations(scores, 2):
        d = scores[b] - scores[a]
        result["paired"].append({"a": a, "b": b, "target_ll_b_minus_a": float(d.mean()),
                                 "se": se(d), "b_better_fraction": float((d > 0).mean())})
        print(result["paired"][-1])
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
