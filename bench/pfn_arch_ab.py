"""A/B of the PFN paper's architecture and training choices at equal CPU budget (issue 14).

Variants of one small PFN (d_model 64, 3 layers), each changing one thing against ``base``
(today's pre-LN layers, default initialisation, uniform context sizes):

- ``post``: post-LN layers (``--norm post``, the PFN reference code's layer);
- ``zero``: zero-initialised residual output projections (``--zero-init``);
- ``weighted``: the reference code's weighted context-size sampler (``--context-sampler
  weighted``, ``P(n) ~ (max_context + 1 - n)^-1``);
- ``paper`` and ``post_zero`` (``--with-paper``): all three together, and the two layer
  choices together.

Every variant trains the same number of steps from the same seed on the same prior (gp-rbf,
gp-hyper), for ``--seeds`` seeds; the process CPU seconds of each training are recorded (the
variants' steps cost the same FLOPs, so equal steps is equal budget when their CPU seconds
agree within 5%; the JSON says whether they did). Each trained model is scored by
``pfn.evaluate.evaluate_regression`` (per-point test NLL next to the exact GP for gp-rbf, the
ML-II GP for gp-hyper) on the same datasets for every variant.

    .venv/bin/python bench/pfn_arch_ab.py --out bench/pfn_arch_ab.json [--steps 250] [--seeds 2]

The JSON is rewritten (atomically) after each run; ``--resume`` continues a partial file,
``--overwrite`` replaces a finished one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "base": {"norm": "pre", "zero_init": False, "context_sampler": "uniform"},
    "post": {"norm": "post", "zero_init": False, "context_sampler": "uniform"},
    "zero": {"norm": "pre", "zero_init": True, "context_sampler": "uniform"},
    "weighted": {"norm": "pre", "zero_init": False, "context_sampler": "weighted"},
}
COMBINED = {  # --with-paper: the reference code's three choices, and its two layer choices
    "paper": {"norm": "post", "zero_init": True, "context_sampler": "weighted"},
    "post_zero": {"norm": "post", "zero_init": True, "context_sampler": "uniform"},
}
ENCODERS = {  # --encoders: the x embedding (pfn.model X_ENCODERS) on top of the paper's choices
    "paper": COMBINED["paper"],
    "paper_mlp_x": {**COMBINED["paper"], "x_encoder": "mlp"},
    "paper_fourier_x": {**COMBINED["paper"], "x_encoder": "fourier"},
}
CONTEXTS = {"gp-rbf": (5, 20, 50), "gp-hyper": (5, 10, 20)}
SMALL = {"d_model": 64, "n_heads": 4, "n_layers": 3, "d_ff": 128, "batch_size": 32,
         "max_context": 50, "n_targets": 28, "n_buckets": 500, "border_samples": 50_000,
         "lr": 1e-3, "log_every": 25}


def _write(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def one_run(prior: str, variant: dict, seed: int, steps: int, n_datasets: int) -> dict:
    from pfn.checkpoint import load_run
    from pfn.evaluate import evaluate_regression
    from pfn.train import train

    work = Path(tempfile.mkdtemp(prefix="pfn_ab_"))
    try:
        opts = dict(SMALL, steps=steps, warmup=max(1, steps // 10), seed=seed,
                    checkpoint_every=steps, **variant)
        cpu0, wall0 = time.process_time(), time.time()
        summary = train(str(work / "run"), prior, quiet=True, **opts)
        cpu, wall = time.process_time() - cpu0, time.time() - wall0
        model, cfg, stats = load_run(work / "run")
        rows = evaluate_regression(model, cfg, stats, contexts=CONTEXTS[prior],
                                   n_datasets=n_datasets, n_targets=50, seed=123)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"prior": prior, "variant": variant, "seed": seed, "steps": steps,
            "train_cpu_s": round(cpu, 2), "train_wall_s": round(wall, 2),
            "final_loss": summary["loss"], "rows": rows}


def table(runs: list[dict]) -> dict:
    """Per prior, variant and n: the mean over seeds of the NLL gap (PFN - GP baseline), its
    standard error over seeds, and the mean over seeds of the per-dataset standard error."""
    out = {}
    for prior, contexts in CONTEXTS.items():
        for name in sorted({r["name"] for r in runs if r["prior"] == prior}):
            rs = [r for r in runs if r["prior"] == prior and r["name"] == name]
            entry = {"seeds": [r["seed"] for r in rs],
                     "train_cpu_s": sum(r["train_cpu_s"] for r in rs) / len(rs)}
            for n in contexts:
                gaps = [next(row["pfn_nll"] - row["gp_nll"] for row in r["rows"] if row["n"] == n)
                        for r in rs]
                m = sum(gaps) / len(gaps)
                se = (math.sqrt(sum((g - m) ** 2 for g in gaps) / (len(gaps) - 1) / len(gaps))
                      if len(gaps) > 1 else float("nan"))
                ds = sum(next(row["pfn_nll_se"] for row in r["rows"] if row["n"] == n)
                         for r in rs) / len(rs)
                entry[f"gap_n{n}"] = round(m, 4)
                entry[f"gap_n{n}_seed_se"] = round(se, 4)
                entry[f"pfn_nll_n{n}_dataset_se"] = round(ds, 4)
            entry["gap_mean"] = round(sum(entry[f"gap_n{n}"] for n in contexts) / len(contexts), 4)
            out.setdefault(prior, {})[name] = entry
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--n-datasets", type=int, default=64)
    p.add_argument("--priors", default="gp-rbf,gp-hyper")
    p.add_argument("--with-paper", action="store_true",
                   help="also the three changes together, and post-LN with zero-init")
    p.add_argument("--encoders", action="store_true",
                   help="instead: the x encoders (linear, mlp, fourier) on top of the paper's choices")
    p.add_argument("--only", default=None, metavar="NAME,NAME",
                   help="run these variants only (e.g. to split the work over processes)")
    p.add_argument("--contexts", default=None, metavar="N,N",
                   help="context sizes to score (default: 5,20,50 for gp-rbf, 5,10,20 for gp-hyper)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not (args.resume or args.overwrite):
        print(f"{out} exists; pass --resume to continue it or --overwrite to replace it",
              file=sys.stderr)
        return 2
    variants = ENCODERS if args.encoders else dict(VARIANTS, **(COMBINED if args.with_paper else {}))
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(variants))
        if unknown:
            print(f"unknown variant(s) {unknown}; choose from {', '.join(variants)}", file=sys.stderr)
            return 2
        variants = {k: v for k, v in variants.items() if k in args.only.split(",")}
    if args.contexts:
        for prior in CONTEXTS:
            CONTEXTS[prior] = tuple(int(n) for n in args.contexts.split(","))
    priors = args.priors.split(",")
    doc = {"command": "python bench/pfn_arch_ab.py " + " ".join(argv or sys.argv[1:]),
           "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared with other jobs",
           "config": SMALL, "steps": args.steps, "runs": []}
    if args.resume and out.exists():
        doc["runs"] = json.loads(out.read_text())["runs"]
    done = {(r["prior"], r["name"], r["seed"]) for r in doc["runs"]}
    for seed in range(args.seeds):
        for prior in priors:
            for name, variant in variants.items():
                if (prior, name, seed) in done:
                    continue
                r = one_run(prior, variant, seed, args.steps, args.n_datasets)
                r["name"] = name
                doc["runs"].append(r)
                doc["table"] = table(doc["runs"])
                _write(out, doc)
                gaps = " ".join(f"n{row['n']}:{row['pfn_nll'] - row['gp_nll']:+.3f}"
                                for row in r["rows"])
                print(f"{prior} {name} seed {seed}: cpu {r['train_cpu_s']:.0f}s "
                      f"wall {r['train_wall_s']:.0f}s gap {gaps}", flush=True)
    doc["cpu_spread"] = {}  # per prior: (largest / smallest mean training CPU seconds) - 1
    for prior, entries in table(doc["runs"]).items():
        cpu = [e["train_cpu_s"] for e in entries.values()]
        doc["cpu_spread"][prior] = round(max(cpu) / min(cpu) - 1, 3)
    doc["table"] = table(doc["runs"])
    _write(out, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
