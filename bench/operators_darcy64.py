"""Darcy at s = 64 (our FNO-recipe generator): MgNO, MgNO-conv, FNO and U-NO at similar parameter
counts, trained with the CLI defaults, tested at 64 and zero-shot at 128 and 256.

    .venv/bin/python bench/operators_darcy64.py [--data-dir DIR] [--runs DIR] [--epochs mgno=1,fno=4,...]

Data (generated when missing, seeds fixed): 1100 training samples (1000 train + 100 validation)
and 100 test samples at 64 x 64, 100 test samples at 128 x 128 and 50 at 256 x 256, each solved
on the twice finer node grid (127, 255, 511) and subsampled. Every model is trained by
``python -m operators train`` (its paper recipe: MgNO AdamW 5e-4 one-cycle, H1 loss, batch 8;
FNO / U-NO AdamW 1e-3 step schedule, L2 loss, batch 20) and evaluated with
``python -m operators evaluate --json`` on each test file (best validation checkpoint).
Writes ``RUNS/summary.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {  # name: (seed, n, resolution, solve_resolution)
    "darcy64_train.nc": (0, 1100, 64, 127),
    "darcy64_test.nc": (1, 100, 64, 127),
    "darcy128_test.nc": (2, 100, 128, 255),
    "darcy256_test.nc": (3, 50, 256, 511),
}
# hyper-parameters bringing FNO and U-NO to the ~0.5 M parameters of MgNO (paper defaults otherwise)
MODELS = {"mgno": {}, "mgno-conv": {}, "fno": {"width": 16}, "uno": {"width": 8}}
EPOCHS = {"mgno": 1, "mgno-conv": 1, "fno": 4, "uno": 4}  # the 2-core CPU budget; 500 on a GPU


def ensure_data(d: Path, names) -> None:
    import pde_data

    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        seed, n, s, solve = FILES[name]
        if not (d / name).exists():
            t = time.time()
            pde_data.save(pde_data.darcy.generate(seed, n, s, solve_resolution=solve, progress=True), d / name)
            print(f"generated {name} in {time.time() - t:.0f} s", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(ROOT / "runs" / "data"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "darcy64"))
    p.add_argument("--epochs", default="", help="per-model epochs, e.g. mgno=2,fno=10")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--resolutions", default="64,128,256", help="test resolutions (files of FILES)")
    p.add_argument("--summary", help="summary JSON path (default RUNS/summary.json)")
    args = p.parse_args(argv)
    epochs = dict(EPOCHS)
    for item in filter(None, args.epochs.split(",")):
        k, v = item.split("=")
        epochs[k] = int(v)
    data, runs = Path(args.data_dir), Path(args.runs)
    res_list = [int(r) for r in args.resolutions.split(",")]
    tests = [f"darcy{r}_test.nc" for r in res_list]
    ensure_data(data, ["darcy64_train.nc", *tests])
    summary_path = Path(args.summary) if args.summary else runs / "summary.json"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, OPBAYES_PROGRESS="0")
    import jax

    summary = {"machine": f"{os.cpu_count()} CPU cores, jax {jax.__version__} on {jax.devices()[0].device_kind}",
               "rows": []}
    for model in args.models.split(","):
        out = runs / model
        hp = [f"--hparam={k}={json.dumps(v)}" for k, v in MODELS[model].items()]
        cmd = [sys.executable, "-m", "operators", "train", "--data", str(data / "darcy64_train.nc"),
               "--model", model, "--out", str(out), "--epochs", str(epochs[model]), "--n-val", "100", *hp]
        load0 = os.getloadavg()[0]
        t = time.time()
        proc = subprocess.run(cmd, env=env, cwd=ROOT, check=False, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        secs = [r["seconds"] for r in rows if "epoch" in r]
        row = {"model": model, "params": res["params"], "epochs": epochs[model],
               "seconds_per_epoch": sum(secs) / len(secs), "wall_s": time.time() - t,
               "loadavg_start": load0, "loadavg_end": os.getloadavg()[0], "best_epoch": res["best_epoch"]}
        for r, name in zip(res_list, tests):
            ev = subprocess.run([sys.executable, "-m", "operators", "evaluate", "--run", str(out), "--data",
                                 str(data / name), "--json", "--plot", str(out / f"predictions_{name[:-3]}.png")],
                                env=env, cwd=ROOT, check=False, capture_output=True, text=True)
            if ev.returncode:
                print(ev.stderr[-3000:], file=sys.stderr)
                return ev.returncode
            m = json.loads(ev.stdout)
            row[f"rel_l2_{r}"], row[f"rel_h1_{r}"] = m["rel_l2"], m["rel_h1"]
        summary["rows"].append(row)
        print(json.dumps(row), flush=True)
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print("| model | params | epochs | s/epoch | " + " | ".join(f"L2 @{r} | H1 @{r}" for r in res_list) + " |")
    print("|---|---|---|---|" + "---|---|" * len(res_list))
    for r in summary["rows"]:
        print(f"| {r['model']} | {r['params']:,} | {r['epochs']} | {r['seconds_per_epoch']:.0f} | "
              + " | ".join(f"{r[f'rel_{k}_{s}']:.4f}" for s in res_list for k in ("l2", "h1")) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
