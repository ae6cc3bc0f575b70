"""NN-to-NO on Darcy (Berner et al. 2025): plain networks against their neural-operator versions,
trained at 65 x 65 and evaluated zero-shot at 33 / 65 / 129 / 257.

    .venv/bin/python bench/nn_to_no_darcy.py [--out runs/nn_to_no] [--epochs 4] [--models cnn,cnn-no,...]

Data (generated when missing, seeds fixed, ``pde_data.darcy``, node grids): 300 samples at 65
(solved at 129, every other node kept) for training (250) and validation (50); 16 test samples
solved at 257, and the same 16 restricted to 129 / 65 / 33 by taking every 2nd / 4th / 8th node
(so every resolution sees the same functions). Every model is trained with one recipe (AdamW
1e-3 halved every fifth of the steps, relative L2 loss, pointwise normaliser, coordinate
channels, batch 10, the same number of steps) at about 0.1 M parameters, then evaluated on each
test grid (best-validation checkpoint); the plain networks also with ``interpolate=True`` (the
input/output interpolation baseline: run at 65, linear interpolation in and out), and the plain
CNN and U-Net once more trained on 33 and 65 (``--models cnn-multires,unet-multires``:
``train(resolutions=[33, 65])``, each step's batch on one of the two grids). Rows are
appended to ``--json`` as they finish (re-running skips finished models); ``--plot`` draws the
relative L2 against the grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEST = "darcy257_test.nc"
TRAIN = "darcy65_train.nc"
GRIDS = (33, 65, 129, 257)
#: hyper-parameters bringing every model to ~0.1 M parameters (a quarter of the registry defaults:
#: what this 2-core machine, shared with other jobs, could train in the time)
MODELS = {
    "cnn": {"width": 32}, "cnn-no": {"width": 32}, "unet": {"width": 12}, "unet-no": {"width": 12},
    "vit": {"embed": 48}, "vit-no": {"embed": 48},
    "attention-no": {"width": 48, "mlp_hidden": 96, "projection_hidden": 64},
    "fno": {"width": 6}, "mgno": {"width": 10}, "mgno-conv": {"width": 12},
}
#: multi-resolution training (``--resolutions 33,65``): the plain networks trained on both grids
MULTIRES = {"cnn-multires": ("cnn", [33, 65]), "unet-multires": ("unet", [33, 65])}
PLAIN = ("cnn", "unet", "vit")  # also evaluated with the interpolation baseline
RECIPE = {"lr": 1e-3, "schedule": "step", "loss": "l2", "normaliser": "pointwise", "coords": True,
          "batch_size": 10, "weight_decay": 1e-4}


def ensure_data(d: Path) -> None:
    import pde_data

    d.mkdir(parents=True, exist_ok=True)
    for name, seed, n, s, solve in ((TEST, 1, 16, 257, 257), (TRAIN, 0, 300, 65, 129)):
        if not (d / name).exists():
            t = time.time()
            pde_data.save(pde_data.darcy.generate(seed, n, s, solve_resolution=solve, progress=False), d / name)
            print(f"generated {name} in {time.time() - t:.0f} s", flush=True)
    full = pde_data.load(d / TEST)
    for s in GRIDS[:-1]:
        path = d / f"darcy{s}_test.nc"
        if not path.exists():
            k = (257 - 1) // (s - 1)
            sub = full.isel(x=slice(None, None, k), y=slice(None, None, k))
            sub.attrs.update(resolution=s, subsampled_from=f"{TEST} (every {k}-th node)")
            pde_data.save(sub, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "nn_to_no"))
    p.add_argument("--runs", default="small", help="folder of the runs under --out")
    p.add_argument("--epochs", type=int, default=2, help="epochs of 25 steps (batch 10, 250 samples)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--json", default=str(ROOT / "bench" / "nn_to_no_darcy.json"))
    p.add_argument("--plot", default=str(ROOT / "bench" / "nn_to_no_darcy.png"))
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    out, json_path = Path(args.out), Path(args.json)
    summary = json.loads(json_path.read_text()) if json_path.exists() else {"rows": []}
    if not args.plot_only:
        os.environ.setdefault("OPBAYES_PROGRESS", "0")
        import jax

        from operators.evaluate import evaluate
        from operators.train import train

        data = out / "data"
        ensure_data(data)
        summary.update(machine=f"{os.cpu_count()} CPU cores (shared with other jobs), jax {jax.__version__}",
                       recipe=RECIPE, epochs=args.epochs, n_train=250, n_val=50, n_test=16)
        done = {r["model"] for r in summary["rows"]}
        for model in args.models.split(","):
            if model in done:
                continue
            load0, c0, t0 = os.getloadavg()[0], time.process_time(), time.time()
            name, resolutions = MULTIRES.get(model, (model, None))
            res = train(data / TRAIN, name, out / args.runs / model, epochs=args.epochs, n_train=250, n_val=50,
                        hparams=MODELS[name], progress=False, resolutions=resolutions, **RECIPE)
            row = {"model": model, "params": res["params"], "steps": res["step"], "best_val": res["best_val"],
                   "train_wall_s": round(time.time() - t0, 1), "train_cpu_s": round(time.process_time() - c0, 1),
                   "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]}
            for mode in ("plain", "interpolate") if model in PLAIN else ("plain",):
                for s in GRIDS:
                    t = time.time()
                    m = evaluate(out / args.runs / model, data / f"darcy{s}_test.nc", batch_size=4,
                                 interpolate=mode == "interpolate")
                    key = "" if mode == "plain" else "interp_"
                    row[f"{key}rel_l2_{s}"] = m["rel_l2"]
                    row[f"{key}eval_s_{s}"] = round(time.time() - t, 1)
                    print(model, mode, s, m["rel_l2"], flush=True)
            summary["rows"].append(row)
            json_path.write_text(json.dumps(summary, indent=2) + "\n")
            print(json.dumps(row), flush=True)
    plot(summary, Path(args.plot))
    table(summary)
    return 0


def table(summary) -> None:
    print("| model | params | steps | train s | " + " | ".join(f"L2 @{s}" for s in GRIDS) + " |")
    print("|---|---|---|---|" + "---|" * len(GRIDS))
    for r in summary["rows"]:
        print(f"| {r['model']} | {r['params']:,} | {r['steps']} | {r['train_wall_s']:.0f} | "
              + " | ".join(f"{r[f'rel_l2_{s}']:.4f}" for s in GRIDS) + " |")
        if "interp_rel_l2_65" in r:
            print(f"| {r['model']} + interpolation | | | | "
                  + " | ".join(f"{r[f'interp_rel_l2_{s}']:.4f}" for s in GRIDS) + " |")


def plot(summary, path: Path) -> None:
    """Left: each plain network (dashed), its neural-operator version (solid), the interpolation
    baseline (dotted) and multi-resolution training (dash-dot), one colour per family; right: the
    other neural operators."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["model"]: r for r in summary["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colours = {"cnn": "C0", "unet": "C1", "vit": "C2"}
    for fam, c in colours.items():
        for name, style, label in ((fam, "o--", fam), (f"{fam}-no", "o-", f"{fam}-no"),
                                   (f"{fam}-multires", "s-.", f"{fam} trained on 33+65")):
            if name in rows:
                axes[0].plot(GRIDS, [rows[name][f"rel_l2_{s}"] for s in GRIDS], style, color=c, label=label)
        if fam in rows and "interp_rel_l2_65" in rows[fam]:
            axes[0].plot(GRIDS, [rows[fam][f"interp_rel_l2_{s}"] for s in GRIDS], "x:", color=c,
                         label=f"{fam} + interpolation")
    for i, name in enumerate(("attention-no", "fno", "mgno", "mgno-conv")):
        if name in rows:
            axes[1].plot(GRIDS, [rows[name][f"rel_l2_{s}"] for s in GRIDS], "o-", color=f"C{i + 3}", label=name)
    for ax, title in zip(axes, ("plain (dashed) vs converted (solid)", "other neural operators")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(GRIDS, [str(s) for s in GRIDS])
        ax.set_xlabel("test grid (points per axis); trained at 65")
        ax.set_title(f"Darcy: {title}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative L2 error (16 test samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
