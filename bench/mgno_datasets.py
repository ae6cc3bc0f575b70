"""MgNO on every dataset of the paper (Darcy smooth / rough / multiscale, Helmholtz, Navier-Stokes
nu = 1e-5), beside MgNO-conv and FNO: a short CPU run, resumable.

    .venv/bin/python bench/mgno_datasets.py [--n-train 200] [--epochs 20] [--n-test 100]
        [--datasets darcy darcy-rough ...] [--variants mgno-reference mgno-conv fno]
        [--grid-scale 1] [--train-seed 0] [--cache DIR] [--json OUT] [--png OUT]

Per dataset, the data come from ``python -m pde_data generate`` (cached in ``--cache``): train +
10% validation (seed 0) and ``--n-test`` test samples (seed 1) at a grid this CPU affords
(:data:`DATASETS`). Per variant, one ``python -m operators train`` subprocess (the command a user
runs, printed), then ``python -m operators evaluate --json`` of the best-validation checkpoint on
the test file. Variants: the dataset's MgNO model (``mgno`` for Darcy, ``mgno-helmholtz``,
``mgno-ns``) with ``--recipe mgno-reference``; ``mgno-conv`` and ``fno`` (width chosen so its
parameter count is near that MgNO's) with their defaults. Navier-Stokes is trained on one-step
pairs (``--one-step 10``, as the reference) on ``n_train / 10`` trajectories, so every dataset has
the same ``n_train`` training samples per epoch; its test error is the 10-step rollout's.
``--train-seed N`` trains with ``--seed N`` (initialisation, validation split, batch order; the data stay those
of seed 0 / 1), in run folders of their own, to tell a difference between variants from seed noise.

Resumable: a finished variant (its ``result.json`` in the cache) is not rerun; an interrupted
``train`` resumes from its last checkpoint. A generator or training failure is recorded with its
command and message instead of the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS_STEPS = 10  # one-step pairs per trajectory and rollout length (the reference's navier.py)
#: per dataset: the generator's arguments (grid: ``resolution``, solved on ``solve``), the MgNO
#: model of the paper, the FNO width whose parameter count is near that MgNO's at this grid
#: (Darcy: MgNO 492,021 at 33 vs FNO-15 521,597; NS: mgno-ns 1,579,594 at 32 vs FNO-26
#: 1,564,001; Helmholtz: mgno-helmholtz 4,057,323 at 51 vs FNO-42 4,077,281).
DATASETS = {
    "darcy": {"resolution": 33, "solve": 65, "mgno": "mgno", "fno_width": 15},
    "darcy-rough": {"resolution": 33, "solve": 65, "mgno": "mgno", "fno_width": 15},
    "darcy-multiscale": {"resolution": 33, "solve": 129, "mgno": "mgno", "fno_width": 15},
    # the reference's discrete problem (solved on 101 nodes, kh = 0.5), every second node: 51
    # nodes keep ~6 points per wavelength (33 would need a coarser, different solve)
    "helmholtz": {"resolution": 51, "solve": 101, "mgno": "mgno-helmholtz", "fno_width": 42},
    # periodic grid 32 solved at 64 (the FNO data: 64 from 256), T = 1..11 (the 10 one-step
    # pairs and the rollout use no later snapshot), dt 1e-3 (10x the FNO's 1e-4, measured to
    # change the data by little at this grid; see --ns-dt)
    "navier_stokes": {"resolution": 32, "solve": 64, "mgno": "mgno-ns", "fno_width": 26,
                      "extra": ["--nu", "1e-5", "--times", f"1:{NS_STEPS + 1}:1"]},
}
VARIANTS = ("mgno-reference", "mgno-conv", "fno")


def _env() -> dict:
    env = dict(os.environ, OPBAYES_PROGRESS="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("$", shlex.join(cmd[2:] if cmd[0] == sys.executable else cmd), file=sys.stderr,
          flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, check=False)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def grid(name: str, scale: float) -> tuple[int, int]:
    """(stored, solve) grid of ``name`` shrunk by ``scale`` (1: :data:`DATASETS`'); node grids
    keep ``solve - 1`` a multiple of ``stored - 1``, the periodic one a multiple of ``stored``."""
    d = DATASETS[name]
    if scale == 1:
        return d["resolution"], d["solve"]
    if name == "navier_stokes":
        s = max(8, round(d["resolution"] * scale / 4) * 4)
        return s, 2 * s
    s = max(5, round((d["resolution"] - 1) * scale) + 1)
    return s, (d["solve"] - 1) // (d["resolution"] - 1) * (s - 1) + 1


def make_data(name: str, n: int, seed: int, scale: float, cache: Path, dt: float) -> dict:
    """The dataset file (generated once into ``cache``): ``{"path", "seconds", "command"}``, or
    ``{"error", "command"}`` when the generator fails."""
    res, solve = grid(name, scale)
    extra = list(DATASETS[name].get("extra", []))
    if name == "navier_stokes":
        extra += ["--dt", repr(dt)]
    tag = f"_dt{dt:g}" if name == "navier_stokes" else ""
    path = cache / "data" / f"{name}_s{res}from{solve}{tag}_seed{seed}_n{n}.nc"
    cmd = [sys.executable, "-m", "pde_data", "generate", name, "--n", str(n), "--resolution",
           str(res), "--solve-resolution", str(solve), "--seed", str(seed), *extra,
           "--out", str(path), "--no-progress"]
    out = {"command": shlex.join(["python", *cmd[1:]])}
    done = path.with_suffix(".json")
    if path.exists() and done.exists():
        return {**out, "path": str(path), **json.loads(done.read_text())}
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = _run([*cmd, "--overwrite"])
    if proc.returncode:
        return {**out, "error": (proc.stderr or proc.stdout).strip()[-1500:]}
    info = {"seconds": time.perf_counter() - t0, "resolution": res, "solve_resolution": solve}
    done.write_text(json.dumps(info))
    return {**out, "path": str(path), **info}


def variant_args(name: str, variant: str) -> list[str]:
    """The model / recipe flags of ``variant`` on dataset ``name``."""
    d = DATASETS[name]
    if variant == "mgno-reference":
        args = ["--model", d["mgno"], "--recipe", "mgno-reference"]
        if name == "navier_stokes":  # the reference's batch 500 exceeds our train split
            args += ["--batch-size", "8"]
    elif variant == "mgno-conv":
        args = ["--model", "mgno-conv"]
    elif variant == "fno":
        args = ["--model", "fno", "--hparam", f"width={d['fno_width']}"]
    else:
        raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")
    if name == "navier_stokes":
        args += ["--one-step", str(NS_STEPS)]
    return args


def run_variant(name: str, variant: str, train: str, test: str, n_train: int, n_val: int,
                epochs: int, out: Path, seed: int = 0) -> dict:
    """Train (resuming ``out``) and evaluate one variant; its result, or ``{"error", ...}``."""
    cmd = [sys.executable, "-m", "operators", "train", "--data", train, "--out", str(out),
           "--epochs", str(epochs), "--n-train", str(n_train), "--n-val", str(n_val),
           "--no-progress", *variant_args(name, variant), *(["--seed", str(seed)] if seed else [])]
    res = {"command": shlex.join(["python", *cmd[1:]]), "test_data": test}
    t0 = time.perf_counter()
    proc = _run(cmd)
    wall = time.perf_counter() - t0
    if proc.returncode:
        return {**res, "error": (proc.stderr or proc.stdout).strip()[-1500:], "wall_s": wall}
    trained = json.loads(_last_line(proc.stdout))
    ev_cmd = [sys.executable, "-m", "operators", "evaluate", "--run", str(out), "--data", test,
              "--json"]
    proc = _run(ev_cmd)
    if proc.returncode:
        return {**res, "error": "evaluate: " + (proc.stderr or proc.stdout).strip()[-1500:],
                "wall_s": wall}
    ev = json.loads(_last_line(proc.stdout))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epoch_s = sorted(r["seconds"] for r in rows if "loss" in r and "seconds" in r)
    res.update(params=trained["params"], epochs=epochs, best_epoch=trained["best_epoch"],
               wall_s=wall, median_epoch_s=epoch_s[len(epoch_s) // 2] if epoch_s else None,
               best_val_rel_l2=trained["best_val"], test_rel_l2=ev["rel_l2"],
               test_rel_h1=ev.get("rel_h1"))
    if "rollout_rel_l2" in ev:  # NS: the one-step pairs' errors above, the rollout's here
        res.update(test_one_step_rel_l2=ev["rel_l2"], test_one_step_rel_h1=ev.get("rel_h1"),
                   test_rel_l2=ev["rollout_rel_l2"], test_rel_h1=None,
                   rollout_rel_l2_per_step=ev.get("rollout_rel_l2_per_step"))
    return res


def plot(res: dict, path: str) -> None:
    """Grouped bars: test relative L2 (log scale) and wall time, one group per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["datasets"])
    variants = res["config"]["variants"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(variants)
    for ax, key, label in ((axes[0], "test_rel_l2", "test relative L2 (NS: 10-step rollout)"),
                           (axes[1], "wall_s", "train wall time (s)")):
        for j, v in enumerate(variants):
            vals = [res["datasets"][n]["runs"].get(v, {}).get(key) for n in names]
            xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(names))]
            ok = [(x, y) for x, y in zip(xs, vals) if y is not None and math.isfinite(y)]
            ax.bar([x for x, _ in ok], [y for _, y in ok], width, label=v)
            for x, y in zip(xs, vals):
                if y is None or not math.isfinite(y):
                    ax.text(x, 0.02, "failed", rotation=90, ha="center", va="bottom",
                            transform=ax.get_xaxis_transform(), fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{n}\n{res['datasets'][n].get('grid', '')}" for n in names],
                           fontsize=8)
        ax.set_ylabel(label)
        if key == "test_rel_l2":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    c = res["config"]
    fig.suptitle(f"MgNO datasets, {c['n_train']} train samples, {c['epochs']} epochs, "
                 f"{c['cpu_count']}-core CPU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(path: str, text: str) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--n-train", type=int, default=200,
                   help="training samples per dataset (NS: one-step pairs, n_train / 10 "
                        "trajectories)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--n-test", type=int, default=100, help="test samples (NS: pairs)")
    p.add_argument("--grid-scale", type=float, default=1.0,
                   help="shrink the grids (e.g. 0.25 for a smoke test)")
    p.add_argument("--train-seed", type=int, default=0,
                   help="training seed (initialisation, batch order); the data do not change")
    p.add_argument("--ns-dt", type=float, default=1e-3, help="largest NS time step")
    p.add_argument("--budget-min", type=float, default=60.0,
                   help="the wall-time budget the sizes were chosen for (recorded)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "opbayes_bench_mgno_datasets"))
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--png", help="write the bar plot to this file")
    args = p.parse_args(argv)
    for flag in ("n_train", "epochs", "n_test"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if not 0 < args.grid_scale <= 1:
        raise ValueError(f"--grid-scale must be in (0, 1], got {args.grid_scale}")
    if args.n_train < NS_STEPS and "navier_stokes" in args.datasets:
        raise ValueError(f"--n-train {args.n_train} < {NS_STEPS}: Navier-Stokes needs at least "
                         "one trajectory")
    cache = Path(args.cache)
    t_start = time.perf_counter()
    res = {"config": {"n_train": args.n_train, "epochs": args.epochs, "n_test": args.n_test,
                      "grid_scale": args.grid_scale, "ns_dt": args.ns_dt,
                      "budget_min": args.budget_min, "variants": args.variants,
                      "train_seed": args.train_seed,
                      "cpu_count": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
                      "date": time.strftime("%Y-%m-%d")},
           "datasets": {}}
    for name in args.datasets:
        ns = name == "navier_stokes"
        group = NS_STEPS if ns else 1  # samples per generated trajectory
        n_train = args.n_train // group
        n_val = max(1, n_train // 10)
        n_test = max(1, args.n_test // group)
        res_s, solve = grid(name, args.grid_scale)
        entry = {"grid": f"{res_s} (solved {solve})", "n_train": n_train, "n_val": n_val,
                 "n_test": n_test, "unit": "trajectories" if ns else "samples", "runs": {}}
        res["datasets"][name] = entry
        train = make_data(name, n_train + n_val, 0, args.grid_scale, cache, args.ns_dt)
        test = make_data(name, n_test, 1, args.grid_scale, cache, args.ns_dt)
        entry["data"] = {"train": train, "test": test}
        for v in args.variants:
            if "error" in train or "error" in test:
                entry["runs"][v] = {"error": "data generation failed (see data)"}
                continue
            key = name + (f"_dt{args.ns_dt:g}" if ns and args.ns_dt != 1e-3 else "")
            seed = f"_s{args.train_seed}" if args.train_seed else ""
            out = (cache / "runs" / f"n{args.n_train}_e{args.epochs}_g{args.grid_scale:g}{seed}"
                   / key / v)
            done = out / "result.json"
            if done.exists() and json.loads(done.read_text()).get("test_data", test["path"]) \
                    == test["path"]:  # finished, and evaluated on this test file
                print(f"{name} {v}: cached ({done})", file=sys.stderr, flush=True)
                entry["runs"][v] = json.loads(done.read_text())
                continue
            r = run_variant(name, v, train["path"], test["path"], n_train, n_val, args.epochs, out,
                            args.train_seed)
            if "error" not in r:
                done.write_text(json.dumps(r))
            entry["runs"][v] = r
            shown = {k: r.get(k) for k in ("params", "wall_s", "test_rel_l2", "test_rel_h1", "error")}
            print(name, v, json.dumps(shown), file=sys.stderr, flush=True)
    res["config"]["loadavg_at_end"] = os.getloadavg()
    res["config"]["wall_min_this_invocation"] = (time.perf_counter() - t_start) / 60
    res["config"]["wall_min_total"] = sum(  # generation + training, cached ones included
        [d.get("seconds", 0) for e in res["datasets"].values() for d in e["data"].values()]
        + [r.get("wall_s", 0) for e in res["datasets"].values() for r in e["runs"].values()]) / 60
    res["table"] = [{"dataset": n, "variant": v, **{k: r.get(k) for k in (
        "params", "test_rel_l2", "test_rel_h1", "wall_s", "median_epoch_s", "best_epoch",
        "error")}} for n, e in res["datasets"].items() for v, r in e["runs"].items()]
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        _write(args.json, text)
    if args.png:
        plot(res, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
