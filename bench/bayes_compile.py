"""Seconds per prediction call when the number of points changes (issue 14): a shipped neural
process (anp-rbf, mpanp-rbf) and the shipped gp-rbf PFN, through their public interfaces.

For each model: the first call (compiles from nothing), then calls each with a context size not
seen before (``new_context``), with a target count not seen before (``new_target``), and the same
sizes again (``repeat``). Before the size buckets every new size compiled again (seconds); with
them a new size inside a bucket already compiled costs what a repeat costs (milliseconds).

    python bench/bayes_compile.py                     # this checkout -> "after"
    python bench/bayes_compile.py --before /tmp/old   # also a checkout of the old code ->
                                                      # "before" (git worktree add /tmp/old HEAD)

Each measurement runs in a fresh subprocess with its checkout first on ``sys.path``; the table
goes to stdout and the numbers to ``bench/bayes_compile.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# context sizes in the order they are used: the first warms up, each later one is new; they fall
# in a few buckets (16, 32, 64, 128), so a bucketed model compiles at most four times
CONTEXTS = [10, 7, 13, 22, 29, 37, 45, 51, 58, 66, 74, 83, 91, 97]
TARGETS = [50, 41, 63, 77, 120, 150, 199]
N_REPEAT = 7


def _measure(kind: str, name: str) -> dict:
    """Runs inside the subprocess: timings of one model."""
    import numpy as np

    rng = np.random.default_rng(0)
    if kind == "pfn":
        import pfn

        reg = pfn.from_pretrained(name)

        def call(n_ctx, n_tgt):
            x = rng.uniform(0, 1, (n_ctx, 1))
            xt = rng.uniform(0, 1, (n_tgt, 1))
            reg.fit(x, np.sin(6 * x[:, 0]))
            d = reg.predict_distribution(xt)
            return np.asarray(d.mean)
    else:
        import neural_processes

        model = neural_processes.from_pretrained(name)

        def call(n_ctx, n_tgt):
            x = rng.uniform(-2, 2, (n_ctx, 1))
            xt = rng.uniform(-2, 2, (n_tgt, 1))
            mean, _std = model.predict(x, np.sin(2 * x), xt)
            return np.asarray(mean)

    def timed(n_ctx, n_tgt):
        t = time.perf_counter()
        call(n_ctx, n_tgt)
        return time.perf_counter() - t

    first = timed(CONTEXTS[0], TARGETS[0])
    new_ctx = [timed(n, TARGETS[0]) for n in CONTEXTS[1:]]
    new_tgt = [timed(CONTEXTS[0], m) for m in TARGETS[1:]]
    repeat = [timed(CONTEXTS[0], TARGETS[0]) for _ in range(N_REPEAT)]
    return {
        "first_call_s": first,
        "new_context_s": new_ctx,
        "new_context_median_s": statistics.median(new_ctx),
        "new_context_max_s": max(new_ctx),
        "new_target_s": new_tgt,
        "new_target_median_s": statistics.median(new_tgt),
        "repeat_median_s": statistics.median(repeat),
    }


MODELS = [("np", "anp-rbf"), ("np", "mpanp-rbf"), ("pfn", "gp-rbf")]


def measure_checkout(root: str | None) -> dict:
    """Every model's timings from a fresh interpreter importing ``root`` (default: here)."""
    root = str(Path(root).resolve()) if root else str(HERE.parent)
    out = {}
    for kind, name in MODELS:
        code = (f"import sys, json; sys.path.insert(0, {root!r}); "
                f"sys.path.insert(1, {str(HERE)!r}); import bayes_compile as b; "
                f"print('RESULT', json.dumps(b._measure({kind!r}, {name!r})))")
        env = {**os.environ, "OPBAYES_PROGRESS": "0", "PYTHONPATH": root}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=root, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"{name} from {root} failed:\n{proc.stderr[-3000:]}")
        out[name] = json.loads(lines[-1][len("RESULT "):])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="a checkout of the code before the size buckets")
    p.add_argument("--out", default=str(HERE / "bayes_compile.json"))
    args = p.parse_args(argv)
    result = {"contexts": CONTEXTS, "targets": TARGETS, "repeats": N_REPEAT,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
              "after": measure_checkout(None)}
    if args.before:
        result["before"] = measure_checkout(args.before)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'model':10s} {'version':7s} {'first':>7s} {'new ctx (median/max)':>21s} "
          f"{'new tgt':>8s} {'repeat':>8s}")
    for label in ("before", "after"):
        for name, r in result.get(label, {}).items():
            print(f"{name:10s} {label:7s} {r['first_call_s']:7.3f} "
                  f"{r['new_context_median_s']:10.4f} / {r['new_context_max_s']:7.4f} "
                  f"{r['new_target_median_s']:8.4f} {r['repeat_median_s']:8.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
