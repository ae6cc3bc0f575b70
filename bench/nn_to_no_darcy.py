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

Equal CPU budget at the registry sizes (issue 13, "Results"):

    .venv/bin/python bench/nn_to_no_darcy.py --registry-sizes --cpu-budget 240

``--registry-sizes``: every model at ~0.3 M parameters (:data:`REGISTRY_SIZES`: the registry
defaults of the NN-to-NO models; FNO, U-NO and MgNO, whose defaults are 0.4-8 M, made narrower).
``--cpu-budget SECONDS``: each model trains until it has spent SECONDS of *process CPU time*
(``time.process_time`` around its ``train`` calls: data loading, jit compilation, steps,
validation and checkpoints, every thread of the process), so a shared, loaded machine does not
change the budget as wall time would. The recipe's step schedule needs its length in advance:
the cost of one step is measured first (the run's own jitted step on a batch, outside the
budget, :func:`calibrate`), the number of epochs that fits the budget follows
(:func:`plan_epochs`), and the run is then trained in chunks (the engine resumes exactly;
``max_steps``), the CPU time checked after each: a chunk is only started when the epochs it
holds fit what is left (:func:`next_chunk`), so a run ends at its planned length or where the
budget ran out. Rows go to ``bench/nn_to_no_budget.json`` (+ ``.png``); jit compilations are
cached on disk per run folder (``jax_cache/``), so only a run's first chunk pays for them.
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
#: ``--registry-sizes``: ~0.3 M parameters each (Darcy: 3 input channels with the coordinates, 1
#: output). The NN-to-NO models at their registry defaults (cnn / cnn-no 304,129, unet / unet-no
#: 323,113, vit 331,843, vit-no 330,211, attention-no 312,257); FNO (default 2.37 M), U-NO
#: (7.96 M), MgNO (0.58 M) and mgno-conv (0.41 M) narrowed to the same size.
REGISTRY_SIZES = {
    "cnn": {}, "cnn-no": {}, "unet": {}, "unet-no": {}, "vit": {}, "vit-no": {}, "attention-no": {},
    "fno": {"width": 11}, "uno": {"width": 9, "modes": [8, 6, 4]}, "mgno": {"width": 17},
    "mgno-conv": {"width": 21},
}
#: multi-resolution training (``--resolutions 33,65``): the plain networks trained on both grids
MULTIRES = {"cnn-multires": ("cnn", [33, 65]), "unet-multires": ("unet", [33, 65])}
PLAIN = ("cnn", "unet", "vit")  # also evaluated with the interpolation baseline
RECIPE = {"lr": 1e-3, "schedule": "step", "loss": "l2", "normaliser": "pointwise", "coords": True,
          "batch_size": 10, "weight_decay": 1e-4}
STEPS_PER_EPOCH = 25  # 250 training samples, batch 10


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


def plan_epochs(budget: float, step_cpu: float, overhead_cpu: float, steps_per_epoch: int = STEPS_PER_EPOCH,
                val_fraction: float = 0.1) -> int:
    """Epochs that fit ``budget`` CPU seconds: ``overhead_cpu`` once (compilation, data) plus,
    per epoch, its steps at ``step_cpu`` each and the validation pass (about ``val_fraction`` of
    the steps' cost: 50 forward passes against 250 forward and backward); at least one."""
    if not budget > 0 or not step_cpu > 0 or overhead_cpu < 0:
        raise ValueError(f"need budget > 0, step_cpu > 0 and overhead_cpu >= 0, got {budget!r}, "
                         f"{step_cpu!r}, {overhead_cpu!r}")
    per_epoch = step_cpu * steps_per_epoch * (1.0 + val_fraction)
    return max(1, int((budget - overhead_cpu) // per_epoch))


def next_chunk(done: int, planned: int, spent: float, budget: float, epoch_cpu: float) -> int:
    """The epoch the next chunk of a budgeted run trains to (``done`` epochs trained, ``spent``
    CPU seconds used, ``epoch_cpu`` the measured cost of one epoch); ``done`` when the run is
    over: at its ``planned`` length, or when not one more epoch fits what is left of the budget.
    The first chunk is half the plan (a measurement of the epoch cost under this run's load),
    later ones everything that fits."""
    if done >= planned:
        return done
    if done == 0:
        return max(1, planned // 2)
    fits = int((budget - spent) // epoch_cpu) if epoch_cpu > 0 else planned
    return min(planned, done + fits) if fits >= 1 else done


def calibrate(data_path: Path, model: str, hparams: dict, repeats: int = 3) -> dict:
    """CPU seconds of one training step of ``model`` (the run's own config, loss, optimiser and
    the engine's jitted step, on one batch of the training data): ``{"compile_cpu_s",
    "step_cpu_s"}`` (median of ``repeats`` steps after the compiling one). Outside the budget;
    the persistent compilation cache is off meanwhile, so the run compiles for itself."""
    import jax
    import numpy as np
    from flax import nnx

    from operators.config import make_optimizer, run_config, training_options
    from operators.fields import open_data, open_dataset
    from operators.run import model_from_config
    from operators.step import make_loss
    from pde_data.runs.loop import make_step

    ds, _ = open_dataset(data_path)
    full = open_data(ds)
    train_data, _, _ = full.split(250, 50, 0, seed=0)
    opts = training_options(model, epochs=1, seed=0, **RECIPE)
    opts.update(n_train=250, n_val=50, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_every=STEPS_PER_EPOCH)
    config = run_config(model, full, ds, str(data_path), hparams, opts)
    net = model_from_config(config)
    xn, yn = train_data.fit_normalizers(config["normaliser"])
    tx, _ = make_optimizer(config)
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    step = make_step(graphdef, tx, make_loss(config, {"x": xn, "y": yn}))
    with train_data.batches(RECIPE["batch_size"], seed=0, epoch=0) as it:
        batch = next(iter(it))
    key = jax.random.key(0)
    cached = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        state = (params, tx.init(params))
        c = time.process_time()
        state, value, _ = step(state, rest, batch, key)
        value.block_until_ready()
        compile_s = time.process_time() - c
        times = []
        for _ in range(repeats):
            c = time.process_time()
            state, value, _ = step(state, rest, batch, key)
            value.block_until_ready()
            times.append(time.process_time() - c)
    finally:
        jax.config.update("jax_enable_compilation_cache", cached)
    return {"compile_cpu_s": round(compile_s, 2), "step_cpu_s": round(float(np.median(times)), 3)}


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def train_budgeted(data_path: Path, model: str, run_dir: Path, hparams: dict, budget: float,
                   resolutions=None, calibration: dict | None = None) -> dict:
    """Train ``model`` in ``run_dir`` until ``budget`` process CPU seconds are spent (see the
    module doc); resumable: the plan and the CPU spent so far are kept in ``run_dir/budget.json``.
    ``calibration``: a step cost measured before (:func:`calibrate`'s dict), else measured now.
    Returns the plan with ``train``'s last result."""
    from operators.train import train

    state_path = run_dir / "budget.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["budget_cpu_s"] != budget:
            raise SystemExit(f"{run_dir} was trained with --cpu-budget {state['budget_cpu_s']}, not {budget}: "
                             "use another --runs folder")
    else:
        t = time.time()
        cal = calibration or calibrate(data_path, model, hparams)
        # the run compiles the train step, the validation pass and the checkpoint writer: about
        # twice what the calibration's one step costs, plus reading the data
        overhead = round(2.0 * cal["compile_cpu_s"] + 5.0, 1)
        planned = plan_epochs(budget, cal["step_cpu_s"], overhead)
        state = {"budget_cpu_s": budget, "calibration": cal, "overhead_cpu_s": overhead, "calibration_wall_s": round(time.time() - t, 1),
                 "planned_epochs": planned, "epochs_done": 0, "train_cpu_s": 0.0, "train_wall_s": 0.0,
                 "chunks": []}
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state_path, state)
    res = None
    while True:
        done, planned, spent = state["epochs_done"], state["planned_epochs"], state["train_cpu_s"]
        chunks = state["chunks"]
        first = chunks[0] if chunks else None  # its cost less the estimated compilation, data reading
        epoch_cpu = max(first["cpu_s"] - state["overhead_cpu_s"], 0.5 * first["cpu_s"]) / first["epochs"] \
            if first else 0.0
        if len(chunks) > 1:  # later chunks: the measured cost without the first one's compilation
            later = chunks[1:]
            epoch_cpu = sum(c["cpu_s"] for c in later) / sum(c["epochs"] for c in later)
        target = next_chunk(done, planned, spent, budget, epoch_cpu)
        if target == done:
            break
        load0, c0, t0 = os.getloadavg()[0], time.process_time(), time.time()
        res = train(data_path, model, run_dir, epochs=planned, n_train=250, n_val=50, hparams=hparams,
                    progress=False, resolutions=resolutions, max_steps=target * STEPS_PER_EPOCH, **RECIPE)
        cpu, wall = time.process_time() - c0, time.time() - t0
        chunks.append({"epochs": target - done, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                       "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]})
        state.update(epochs_done=target, train_cpu_s=round(spent + cpu, 1),
                     train_wall_s=round(state["train_wall_s"] + wall, 1), last=res)
        write_json_atomic(state_path, state)
        print(f"{model}: {target}/{planned} epochs, {state['train_cpu_s']:.0f}/{budget:.0f} CPU s "
              f"({wall:.0f} s wall, load {load0:.1f})", flush=True)
    state["schedule_finished"] = state["epochs_done"] >= state["planned_epochs"]
    return state


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "nn_to_no"))
    p.add_argument("--runs", default=None, help="folder of the runs under --out (default: small, or "
                   "budget<SECONDS> with --cpu-budget)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of 25 steps (batch 10, 250 samples)")
    p.add_argument("--cpu-budget", type=float, default=None, metavar="SECONDS",
                   help="train each model for this many process CPU seconds instead of --epochs")
    p.add_argument("--registry-sizes", action="store_true",
                   help="the ~0.3 M parameter sizes of REGISTRY_SIZES instead of ~0.1 M")
    p.add_argument("--models", default=None, help="comma-separated (default: every model of the size table)")
    p.add_argument("--json", default=None, help="default bench/nn_to_no_darcy.json, with --cpu-budget "
                   "bench/nn_to_no_budget.json")
    p.add_argument("--plot", default=None, help="default: --json with .png")
    p.add_argument("--calibration", default=None, metavar="JSON",
                   help="step costs measured before ({'calibration': {model: calibrate(...)}}, e.g. "
                   "bench/nn_to_no_budget_calibration.json) instead of measuring each model first")
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    if args.cpu_budget is not None and not args.cpu_budget > 0:
        p.error(f"--cpu-budget must be a positive number of seconds, got {args.cpu_budget}")
    sizes = REGISTRY_SIZES if args.registry_sizes else MODELS
    models = args.models.split(",") if args.models else list(sizes)
    unknown = [m for m in models if MULTIRES.get(m, (m,))[0] not in sizes]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {sorted(sizes) + sorted(MULTIRES)}")
    budget = args.cpu_budget
    json_path = Path(args.json or ROOT / "bench" / ("nn_to_no_budget.json" if budget else "nn_to_no_darcy.json"))
    plot_path = Path(args.plot or json_path.with_suffix(".png"))
    runs = args.runs or (f"budget{budget:g}" if budget else "small")
    out = Path(args.out)
    summary = json.loads(json_path.read_text()) if json_path.exists() else {"rows": []}
    calibrations = json.loads(Path(args.calibration).read_text())["calibration"] if args.calibration else {}
    if not args.plot_only:
        os.environ.setdefault("OPBAYES_PROGRESS", "0")
        import jax

        from operators.evaluate import evaluate
        from operators.train import train

        data = out / "data"
        ensure_data(data)
        if budget:  # a run's later chunks load its compilations instead of redoing them
            jax.config.update("jax_compilation_cache_dir", str(out / runs / "jax_cache"))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        summary.update(machine=f"{os.cpu_count()} CPU cores (shared with other jobs), jax {jax.__version__}",
                       recipe=RECIPE, n_train=250, n_val=50, n_test=16,
                       **({"cpu_budget_s": budget, "budget_clock": "time.process_time of the train calls"}
                          if budget else {"epochs": args.epochs}))
        done = {r["model"] for r in summary["rows"]}
        for model in models:
            if model in done:
                continue
            load0, c0, t0 = os.getloadavg()[0], time.process_time(), time.time()
            name, resolutions = MULTIRES.get(model, (model, None))
            run_dir = out / runs / model
            if budget:
                st = train_budgeted(data / TRAIN, name, run_dir, sizes[name], budget, resolutions,
                                    calibrations.get(name))
                res = st["last"]
                row = {"model": model, "params": res["params"], "hparams": sizes[name], "steps": res["step"],
                       "best_val": res["best_val"], "train_cpu_s": st["train_cpu_s"],
                       "train_wall_s": st["train_wall_s"], "planned_epochs": st["planned_epochs"],
                       "epochs": st["epochs_done"], "schedule_finished": st["schedule_finished"],
                       "calibration": st["calibration"], "chunks": st["chunks"]}
            else:
                res = train(data / TRAIN, name, run_dir, epochs=args.epochs, n_train=250, n_val=50,
                            hparams=sizes[name], progress=False, resolutions=resolutions, **RECIPE)
                row = {"model": model, "params": res["params"], "steps": res["step"], "best_val": res["best_val"],
                       "train_wall_s": round(time.time() - t0, 1),
                       "train_cpu_s": round(time.process_time() - c0, 1),
                       "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]}
            for mode in ("plain", "interpolate") if model in PLAIN else ("plain",):
                key = "" if mode == "plain" else "interp_"
                for s in GRIDS:
                    if mode == "interpolate" and s == 65 and budget:
                        row[f"{key}rel_l2_{s}"] = row["rel_l2_65"]  # at its own grid: the plain network
                        continue
                    t = time.time()
                    m = evaluate(run_dir, data / f"darcy{s}_test.nc", batch_size=4,
                                 interpolate=mode == "interpolate")
                    row[f"{key}rel_l2_{s}"] = m["rel_l2"]
                    row[f"{key}eval_s_{s}"] = round(time.time() - t, 1)
                    print(model, mode, s, m["rel_l2"], flush=True)
            summary["rows"].append(row)
            write_json_atomic(json_path, summary)
            print(json.dumps({k: v for k, v in row.items() if k != "chunks"}), flush=True)
    plot(summary, plot_path)
    table(summary)
    return 0


def table(summary) -> None:
    print("| model | params | steps | CPU s | wall s | " + " | ".join(f"L2 @{s}" for s in GRIDS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(GRIDS))
    for r in summary["rows"]:
        steps = f"{r['steps']}" + ("" if r.get("schedule_finished", True) else f" (of {r['planned_epochs'] * 25})")
        print(f"| {r['model']} | {r['params']:,} | {steps} | {r['train_cpu_s']:.0f} | {r['train_wall_s']:.0f} | "
              + " | ".join(f"{r[f'rel_l2_{s}']:.4f}" for s in GRIDS) + " |")
        if "interp_rel_l2_65" in r:
            print(f"| {r['model']} + interpolation | | | | | "
                  + " | ".join(f"{r[f'interp_rel_l2_{s}']:.4f}" for s in GRIDS) + " |")


def plot(summary, path: Path) -> None:
    """Left: each plain network (dashed), its neural-operator version (solid), the interpolation
    baseline (dotted) and multi-resolution training (dash-dot), one colour per family; right: the
    other neural operators."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["model"]: r for r in summary["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    colours = {"cnn": "C0", "unet": "C1", "vit": "C2"}
    for fam, c in colours.items():
        for name, style, label in ((fam, "o--", fam), (f"{fam}-no", "o-", f"{fam}-no"),
                                   (f"{fam}-multires", "s-.", f"{fam} trained on 33+65")):
            if name in rows:
                axes[0].plot(GRIDS, [rows[name][f"rel_l2_{s}"] for s in GRIDS], style, color=c, label=label)
        if fam in rows and "interp_rel_l2_65" in rows[fam]:
            axes[0].plot(GRIDS, [rows[fam][f"interp_rel_l2_{s}"] for s in GRIDS], "x:", color=c,
                         label=f"{fam} + interpolation")
    for i, name in enumerate(("attention-no", "fno", "uno", "mgno", "mgno-conv")):
        if name in rows:
            axes[1].plot(GRIDS, [rows[name][f"rel_l2_{s}"] for s in GRIDS], "o-", color=f"C{i + 3}", label=name)
    for ax, title in zip(axes, ("plain (dashed) vs converted (solid)", "other neural operators")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(GRIDS, [str(s) for s in GRIDS])
        ax.set_xlabel("test grid (points per axis); trained at 65")
        ax.set_title(f"Darcy: {title}")
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative L2 error (16 test samples)")
    if summary.get("cpu_budget_s"):
        fig.suptitle(f"equal budget: {summary['cpu_budget_s']:g} process CPU seconds of training per model",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
