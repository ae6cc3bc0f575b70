"""Command line of ``operators``: ``python -m operators train|evaluate|predict|models ...``.

    python -m operators train --data FILE --model NAME --out RUN [--epochs E] [--test FILE ...]
    python -m operators evaluate --run RUN --data FILE [--json] [--plot P.png [--overwrite]] [--interpolate]
    python -m operators predict --run RUN --data IN --out OUT.nc [--overwrite]
    python -m operators models

Errors follow the one policy of every opbayes command (``pde_data.runs.cli``): exit status 2
and one line naming the problem; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from pde_data.runs.cli import (
    CommandParser,
    add_distributed_arguments,
    init_distributed,
    integer,
    number,
    run_command,
)

PROG = "python -m operators"


def _resolutions(text: str) -> list[int]:
    """``--resolutions 33,65``: grid points per axis, comma-separated."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--resolutions expects grid sizes like 33,65, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--resolutions expects positive grid sizes like 33,65, got {text!r}")
    return values


def _hparam(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--hparam expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


positive_int, nonnegative_int = integer(1), integer(0)
positive_float, nonnegative_float = number(above=0.0), number(at_least=0.0)


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog=PROG,
                      description="Train, evaluate and apply neural operators (MgNO, FNO, U-NO).")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    t = sub.add_parser("train", help="train (or resume, or extend) a run on a stored dataset",
                       description="Train a neural operator; re-running the same command on the "
                                   "same --out folder resumes from the last checkpoint, and with a "
                                   "larger --epochs continues a finished run.")
    t.add_argument("--data", required=True, help="training dataset (.nc, .zarr, .mat, .h5, .pt)")
    t.add_argument("--model", required=True, help="model name (see `python -m operators models`)")
    t.add_argument("--out", required=True, help="run folder (created; resumed if it exists)")
    add_distributed_arguments(t)
    t.add_argument("--epochs", type=positive_int,
                   help="epochs (default: 500, the papers'); larger on a finished run continues it")
    t.add_argument("--test", nargs="+", action="extend", default=[], metavar="FILE",
                   help="datasets evaluated at the end, each at its own resolution (PNG each)")
    t.add_argument("--batch-size", type=positive_int, help="global batch size (default: 8 MgNO, 20 FNO/U-NO)")
    t.add_argument("--lr", type=positive_float, help="peak learning rate (default: 5e-4 MgNO, 1e-3 FNO/U-NO)")
    t.add_argument("--weight-decay", type=nonnegative_float,
                   help="weight decay (AdamW) or L2 coefficient (adam-l2) (default 1e-4)")
    t.add_argument("--optimizer", choices=["adamw", "adam-l2"],
                   help="adamw: decoupled weight decay (default); adam-l2: L2 added to the "
                        "gradient of the batch-summed loss before Adam (the MgNO reference)")
    t.add_argument("--schedule", choices=["onecycle", "cosine", "step", "constant"],
                   help="learning-rate schedule over the run (default: onecycle MgNO, step FNO/U-NO)")
    t.add_argument("--pct-start", type=positive_float,
                   help="with --schedule onecycle: fraction of the run spent warming up, in (0, 1) "
                        "(default 0.2; the MgNO reference's Navier-Stokes run: 0.1)")
    t.add_argument("--final-div-factor", type=positive_float,
                   help="with --schedule onecycle: the last learning rate is the first divided by "
                        "this (default 100; the MgNO reference's Navier-Stokes run: 50)")
    t.add_argument("--schedule-every", choices=["step", "epoch"],
                   help="step the schedule every optimiser step (default) or once per epoch")
    t.add_argument("--cycle-momentum", action=argparse.BooleanOptionalAction, default=None,
                   help="with --schedule onecycle: Adam's beta1 0.95 -> 0.85 -> 0.95 against the "
                        "learning rate, as PyTorch's OneCycleLR (default off)")
    t.add_argument("--recipe", choices=["mgno-reference"],
                   help="set the training options of a reference recipe at once (flags given "
                        "explicitly win); mgno-reference: Adam + L2 1e-4, one-cycle 5e-4 stepped "
                        "per epoch with beta1 cycling, batch 8, H1 loss, 500 epochs (Darcy; "
                        "mgno-helmholtz and mgno-ns get their scripts' values, see "
                        "operators.config)")
    t.add_argument("--loss", choices=["l2", "h1", "h1-helmholtz"],
                   help="relative L2 or H1 loss (default: h1 MgNO, l2 FNO/U-NO); h1-helmholtz: the "
                        "MgNO reference's absolute Helmholtz loss sqrt(sum 10 e^2 + |grad e|^2)")
    t.add_argument("--h1-loss", choices=["spectral", "fd"],
                   help="with --loss h1: spectral (FFT, the MgNO reference on every grid) or finite "
                        "differences (default: spectral on periodic grids, fd on node grids)")
    t.add_argument("--normaliser", choices=["unit", "pointwise", "none"],
                   help="normaliser of the input (and of the output unless --output-normaliser), "
                        "fitted on the train split: one Gaussian per channel, one per grid point, "
                        "or none")
    t.add_argument("--output-normaliser", choices=["unit", "pointwise", "none"],
                   help="normaliser of the output (default: as --normaliser)")
    t.add_argument("--one-step", type=positive_int, metavar="STEPS",
                   help="--data is a trajectory dataset (e.g. navier_stokes w0 -> w): train on its "
                        "one-step pairs w(t) -> w(t+1), STEPS per trajectory from the first "
                        "snapshot (the MgNO reference: 10); --n-train / --n-val count trajectories "
                        "and --test files are scored by the autoregressive rollout too")
    t.add_argument("--coords", action=argparse.BooleanOptionalAction, default=None,
                   help="append coordinate channels to the input (default: on for FNO/U-NO)")
    t.add_argument("--n-train", type=positive_int, help="training samples (default: all but the validation split)")
    t.add_argument("--n-val", type=nonnegative_int, help="validation samples (default: 10%%)")
    t.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the initialisation, split and batch order")
    t.add_argument("--checkpoint-every", type=positive_int, help="steps between checkpoints (default: each epoch)")
    t.add_argument("--hparam", type=_hparam, action="append", default=[], metavar="KEY=VALUE",
                   help="model hyper-parameter (JSON value), e.g. --hparam width=32")
    t.add_argument("--inputs", help="input variables (default: the dataset's input_vars)")
    t.add_argument("--outputs", help="output variables (default: the dataset's output_vars)")
    t.add_argument("--max-steps", type=positive_int, help="stop (resumable) after this many global steps")
    t.add_argument("--resolutions", type=_resolutions, metavar="S1,S2,...",
                   help="train on several grids: each step's batch restricted from the stored grid to "
                        "one of these (points per axis, e.g. 33,65; every k-th point), chosen by (seed, step)")
    t.add_argument("--plot-samples", type=nonnegative_int, default=3, help="samples per test PNG")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="relative L2 / H1 of a run on a dataset",
                       description="Evaluate a trained run on a dataset at that dataset's resolution.")
    e.add_argument("--run", required=True, help="run folder")
    e.add_argument("--data", required=True, help="dataset file")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--batch-size", type=positive_int, help="evaluation batch size (default: the run's)")
    e.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    e.add_argument("--plot", help="also write a PNG of a few predictions to this path (.png)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    e.add_argument("--interpolate", nargs="?", const="auto", choices=["auto", "linear", "fourier"],
                   help="baseline: run the model at its training grid, interpolating the inputs there "
                        "and the prediction back (auto: linear on node grids, Fourier on periodic ones)")

    r = sub.add_parser("predict", help="apply a run to new inputs and write the prediction",
                       description="Predict the run's output variables from the inputs of a "
                                   "dataset (no targets needed), at the dataset's resolution; "
                                   "writes a dataset with the inputs, the prediction and the "
                                   "input's coordinates and attributes.")
    r.add_argument("--run", required=True, help="run folder")
    r.add_argument("--data", required=True, help="dataset with the run's input variables")
    r.add_argument("--out", required=True, help="output dataset (.nc or .zarr)")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    r.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    r.add_argument("--batch-size", type=positive_int, help="prediction batch size (default: the run's)")

    sub.add_parser("models", help="list the model names and their default hyper-parameters")
    return p


def _check_plot_path(plot, overwrite: bool) -> None:
    """``--plot`` names a new ``.png`` file (an existing one only with ``--overwrite``)."""
    from pathlib import Path

    if plot is None:
        return
    path = Path(plot)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--plot {path}: the plot is a PNG image; give a path ending in .png")
    if path.is_dir():
        raise IsADirectoryError(f"--plot {path} is a directory; give a .png file path")
    if path.exists() and not overwrite:
        raise FileExistsError(f"--plot {path} exists; pass --overwrite to replace it")


def _main(argv) -> int:
    args = parser().parse_args(argv)
    if args.verb == "train":
        init_distributed(args)
        from operators.train import train

        res = train(args.data, args.model, args.out, epochs=args.epochs, tests=args.test,
                    batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                    schedule=args.schedule, loss=args.loss, normaliser=args.normaliser,
                    coords=args.coords, optimizer=args.optimizer,
                    schedule_every=args.schedule_every, cycle_momentum=args.cycle_momentum,
                    recipe=args.recipe, pct_start=args.pct_start,
                    final_div_factor=args.final_div_factor,
                    output_normaliser=args.output_normaliser, h1_loss=args.h1_loss,
                    one_step=args.one_step, n_train=args.n_train, n_val=args.n_val, seed=args.seed,
                    checkpoint_every=args.checkpoint_every, hparams=dict(args.hparam),
                    inputs=args.inputs, outputs=args.outputs, max_steps=args.max_steps,
                    plot_samples=args.plot_samples, progress=not args.no_progress,
                    resolutions=args.resolutions)
        print(json.dumps(res, default=str))
    elif args.verb == "evaluate":
        from operators.evaluate import evaluate

        _check_plot_path(args.plot, args.overwrite)  # before any work

        res = evaluate(args.run, args.data, batch_size=args.batch_size, which=args.checkpoint,
                       plot=bool(args.plot), plot_path=args.plot, interpolate=args.interpolate or False)
        if args.json:
            print(json.dumps(res))
        else:
            line = f"{res['data']}: n={res['n']} resolution={'x'.join(map(str, res['resolution']))} " \
                   f"rel_l2={res['rel_l2']:.5g}"
            if "rel_h1" in res:
                line += f" rel_h1={res['rel_h1']:.5g}"
            if "rollout_rel_l2" in res:
                line += f" rollout_rel_l2={res['rollout_rel_l2']:.5g} ({res['rollout_steps']} steps)"
            if res.get("interpolate"):
                line += f" (model run at {'x'.join(map(str, res['model_resolution']))}, {res['interpolate']} " \
                        "interpolation in and out)"
            print(line)
    elif args.verb == "predict":
        from operators.predict import check_output_path, write_prediction
        from operators.run import load_run

        check_output_path(args.out, args.overwrite)  # before any work
        ds = load_run(args.run, which=args.checkpoint).predict(args.data, batch_size=args.batch_size)
        path = write_prediction(ds, args.out, overwrite=args.overwrite)
        sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
        print(f"wrote {path}: {', '.join(map(str, ds.attrs['output_vars']))} predicted ({sizes})")
    else:
        from operators.registry import MODELS, default_hparams

        for name in sorted(MODELS):
            print(name, json.dumps(default_hparams(name)))
    return 0


def main(argv=None) -> int:
    """``python -m operators ...`` under the opbayes error policy (exit 2, one line)."""
    return run_command(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
