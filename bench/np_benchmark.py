"""Neural-process benchmark: train every model on every dataset with the same budget (steps x
batch size), evaluate each on its fixed seeded test set, and write one JSON of results plus a
markdown table.

    python bench/np_benchmark.py --root runs/np_bench --steps 2000 --batch-size 64 \
        --parallel 8 --results bench/np_results.json

Each (model, dataset) pair is one run folder ``ROOT/MODEL-DATA`` trained and evaluated through
the package's own command line (``python -m neural_processes train / evaluate``), several at a
time (``--parallel``); re-running resumes unfinished runs. ``--time-limit`` bounds each training
run's wall time (the run then stops after a checkpoint and the table reports the steps reached).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODELS = ["cnp", "np", "anp", "neubanp", "mpnp", "mpanp"]
DATASETS = ["rbf", "matern", "periodic", "t_noise", "digits"]


def run_pair(model: str, data: str, args) -> dict:
    out = Path(args.root) / f"{model}-{data}"
    py = sys.executable
    env = dict(os.environ, OPBAYES_PROGRESS="0")
    train = [py, "-m", "neural_processes", "train", "--model", model, "--data", data,
             "--out", str(out), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--log-every", str(args.log_every), "--ckpt-every", str(args.ckpt_every),
             "--no-progress"]
    for flag in ("width", "enc_depth", "dec_depth", "heads", "train_samples"):
        if getattr(args, flag):
            train += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    if args.time_limit:
        train += ["--time-limit", str(args.time_limit)]
    t0 = time.time()
    res = {"model": model, "data": data}
    p = subprocess.run(train, capture_output=True, text=True, env=env, check=False)
    res["train_seconds"] = time.time() - t0
    if p.returncode:
        res["error"] = p.stderr[-2000:]
        return res
    ev = [py, "-m", "neural_processes", "evaluate", "--run", str(out), "--json",
          "--n-tasks", str(args.n_tasks), "--no-progress"]
    if not args.plots:
        ev.append("--no-plot")
    if args.num_samples:
        ev += ["--num-samples", str(args.num_samples)]
    p = subprocess.run(ev, capture_output=True, text=True, env=env, check=False)
    if p.returncode:
        res["error"] = p.stderr[-2000:]
        return res
    res.update(json.loads(p.stdout.strip().splitlines()[-1]))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # the engine logs steps_per_s per logging interval (the first includes compilation)
    times = [1.0 / r["steps_per_s"] for r in rows
             if isinstance(r.get("steps_per_s"), (int, float)) and r["steps_per_s"] > 0]
    res["step_time"] = sorted(times)[len(times) // 2] if times else None  # median
    for name, dest in args.export:
        if name == f"{model}-{data}":
            p = subprocess.run([py, "-m", "neural_processes", "export", str(out), dest,
                                "--overwrite",
                                *(["--dest", str(Path(args.export_dest) / dest)]
                                  if args.export_dest else [])],
                               capture_output=True, text=True, env=env, check=False)
            res["exported"] = p.stdout.strip() if not p.returncode else p.stderr[-500:]
    print(json.dumps(res), flush=True)
    return res


def table(results: list[dict]) -> str:
    """Markdown table: context / target log-likelihood, per dataset (rows = models)."""
    by = {(r["model"], r["data"]): r for r in results}
    datasets = [d for d in DATASETS if any(k[1] == d for k in by)]
    head = "| model | " + " | ".join(f"{d} ctx | {d} tar" for d in datasets) + " | step time (ms) |"
    sep = "|---" * (2 * len(datasets) + 2) + "|"
    lines = [head, sep]
    for m in MODELS:
        cells = []
        for d in datasets:
            r = by.get((m, d), {})
            if "target_ll" in r:
                cells += [f"{r['context_ll']:.3f}", f"{r['target_ll']:.3f}"]
            else:
                cells += ["-", "-"]
        st = [by[(m, d)].get("step_time") for d in datasets if by.get((m, d), {}).get("step_time")]
        cells.append(f"{1000 * sorted(st)[len(st) // 2]:.1f}" if st else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="runs/np_bench")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--enc-depth", type=int, default=None)
    p.add_argument("--dec-depth", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--train-samples", type=int, default=None)
    p.add_argument("--num-samples", type=int, default=None,
                   help="predictive samples at evaluation (default: the package's 50)")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--time-limit", type=float, default=None)
    p.add_argument("--n-tasks", type=int, default=3000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--plots", action="store_true")
    p.add_argument("--export", default="", help="RUN=NAME,... e.g. anp-rbf=anp-rbf")
    p.add_argument("--export-dest", default=None,
                   help="folder of the exports (default ./exports, one NAME folder each)")
    p.add_argument("--results", default="bench/np_results.json")
    args = p.parse_args(argv)
    args.export = [tuple(s.split("=")) for s in args.export.split(",") if s]
    pairs = [(m, d) for m in args.models.split(",") for d in args.datasets.split(",")]
    # dataset by dataset (RBF first), slowest model first within a dataset
    order = {m: i for i, m in enumerate(reversed(MODELS))}
    dorder = {d: i for i, d in enumerate(DATASETS)}
    pairs.sort(key=lambda md: (dorder.get(md[1], 0), order.get(md[0], 0)))
    partial = Path(args.results).with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)

    def job(md):
        res = run_pair(*md, args)
        with open(partial, "a") as f:
            f.write(json.dumps(res) + "\n")
        return res

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(job, pairs))
    config = {k: v for k, v in vars(args).items() if k not in ("export",)}
    blob = {"config": config, "results": results, "table": table(results)}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(blob, indent=2) + "\n")
    print(blob["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
