"""Command line of ``neural_processes``: ``python -m neural_processes VERB ...``.

  python -m neural_processes train --model mpanp --data rbf --out runs/mpanp-rbf --steps 2000
  python -m neural_processes train --model anp --data tasks.nc --out runs/anp-mine
  python -m neural_processes evaluate --run runs/mpanp-rbf [--data matern] [--json]
  python -m neural_processes evaluate --model anp-rbf          # a shipped name or an export
  python -m neural_processes export runs/mpanp-rbf mpanp-rbf [--dest DIR] [--overwrite]
  python -m neural_processes predict --model RUN_OR_NAME --data tasks.nc --n-context 10 \\
      --out pred.nc [--overwrite]
  python -m neural_processes list

``--data`` of ``train`` / ``evaluate`` is a built-in dataset or a point-set file (``.nc`` /
``.zarr`` with ``x (task, point, feature)`` and ``y (task, point)``). A re-run of ``train`` on the
same ``--out`` resumes; the same command with a larger ``--steps`` continues a finished run.
Errors follow the one policy of every opbayes command (``pde_data.runs.cli``): exit status 2
and one line naming the problem; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json

from pde_data.runs.cli import (
    CommandParser,
    add_distributed_arguments,
    init_distributed,
    integer,
    number,
    run_command,
)

PROG = "python -m neural_processes"
MODEL_NAMES = ["cnp", "canp", "np", "anp", "neubnp", "neubanp", "mpnp", "mpanp"]
BUILT_IN = ("rbf", "matern", "periodic", "t_noise", "digits", "darcy")


def _int(minimum: int):
    return integer(minimum)


def _float(minimum_exclusive: float | None = 0.0):
    return number(above=minimum_exclusive)


def _parser() -> CommandParser:
    p = CommandParser(prog=PROG, description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True, parser_class=CommandParser)
    data_help = f"{', '.join(BUILT_IN)}, or a point-set file (.nc / .zarr)"

    t = sub.add_parser("train", help="train a model (re-running on the same --out resumes)")
    t.add_argument("--model", required=True, choices=MODEL_NAMES)
    t.add_argument("--data", required=True, help=data_help)
    t.add_argument("--out", required=True, help="run folder")
    add_distributed_arguments(t)
    t.add_argument("--steps", type=_int(1), default=2000,
                   help="total steps (larger on a finished run: continue it)")
    t.add_argument("--batch-size", type=_int(1), default=16)
    t.add_argument("--lr", type=_float(), default=5e-4)
    t.add_argument("--seed", type=_int(0), default=0)
    t.add_argument("--width", type=_int(1), default=None, help="hidden width (default 128)")
    t.add_argument("--enc-depth", type=_int(1), default=None, help="encoder layers (default 5)")
    t.add_argument("--dec-depth", type=_int(1), default=None, help="decoder layers (default 3)")
    t.add_argument("--heads", type=_int(1), default=None, help="attention heads (default 8)")
    t.add_argument("--min-std", type=_float(None), default=None,
                   help="minimum std (default 0.1)")
    t.add_argument("--train-samples", type=_int(1), default=None,
                   help="K: samples per task in the bootstrap / martingale losses (default 10)")
    t.add_argument("--n-inducing", type=_int(1), default=None,
                   help="ISAB inducing points (MP*)")
    t.add_argument("--noise-dim", type=_int(1), default=None, help="generator noise size (MP*)")
    t.add_argument("--pseudo-average", default=None, choices=("logmeanexp", "mean"),
                   help="average over the K sets in L_pseudo (MP*, default logmeanexp)")
    t.add_argument("--loss-weights", type=_loss_weights, default=None, metavar="M,A,P",
                   help="weights of L_marg, L_amort, L_pseudo (MP*; default 1,1,1)")
    t.add_argument("--pseudo-per-point", type=_int(1), default=None,
                   help="pseudo context points generated per real one (MP*; default 1)")
    t.add_argument("--n-points", type=_int(2), default=None,
                   help="point-set file only: points per training task (default: all)")
    t.add_argument("--min-context", type=_int(1), default=None,
                   help="point-set file only: fewest context points (default 3)")
    t.add_argument("--max-context", type=_int(1), default=None,
                   help="point-set file only: most context points (default n_points - 3)")
    t.add_argument("--log-every", type=_int(1), default=50)
    t.add_argument("--ckpt-every", type=_int(1), default=500)
    t.add_argument("--time-limit", type=_float(), default=None,
                   help="stop (after a checkpoint) once this many seconds have passed")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="context/target log-likelihood on a fixed test set")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a run folder (results and plot are written into it)")
    which.add_argument("--model", help="a shipped name or an export folder (nothing is written)")
    e.add_argument("--data", default=None, help=f"{data_help}; default: the training data")
    e.add_argument("--n-tasks", type=_int(1), default=3000)
    e.add_argument("--seed", type=_int(0), default=0)
    e.add_argument("--num-samples", type=_int(1), default=None,
                   help="predictive samples for stochastic models (default 50)")
    e.add_argument("--no-plot", action="store_true")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--no-progress", action="store_true")

    x = sub.add_parser("export", help="write a run's model as a shipped-model folder")
    x.add_argument("run")
    x.add_argument("name", help="model name (letters, digits, '.', '_', '-')")
    x.add_argument("--dest", default=None, help="folder to write (default ./exports/NAME)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing export")

    r = sub.add_parser("predict", help="predict at the points after the first K of each task")
    r.add_argument("--model", required=True,
                   help="a run folder, an export folder or a shipped name (see `list`)")
    r.add_argument("--data", required=True, help="point-set file (.nc / .zarr)")
    r.add_argument("--n-context", type=_int(1), required=True,
                   help="K: the first K points of each task are its context")
    r.add_argument("--out", required=True, help="prediction file (.nc)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    r.add_argument("--num-samples", type=_int(1), default=None,
                   help="predictive samples for stochastic models (default 50)")
    r.add_argument("--seed", type=_int(0), default=0)

    sub.add_parser("list", help="list the shipped pretrained models")
    return p


def _loss_weights(text: str) -> tuple[float, float, float]:
    """``"1,1,0.5"``: the three MPNP loss weights (L_marg, L_amort, L_pseudo)."""
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 3:
        raise argparse.ArgumentTypeError(
            f"--loss-weights takes three comma-separated numbers (L_marg,L_amort,L_pseudo), "
            f"got {text!r}")
    return weights


def _train(args) -> None:
    init_distributed(args)
    from neural_processes.train import make_config, train
    from pde_data.runs import jsonable

    options = {"n_points": args.n_points, "min_context": args.min_context,
               "max_context": args.max_context}
    config = make_config(
        args.model, args.data, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, data_options={k: v for k, v in options.items() if v is not None},
        width=args.width, enc_depth=args.enc_depth, dec_depth=args.dec_depth, heads=args.heads,
        min_std=args.min_std, train_samples=args.train_samples, n_inducing=args.n_inducing,
        noise_dim=args.noise_dim, pseudo_average=args.pseudo_average,
        loss_weights=args.loss_weights, pseudo_per_point=args.pseudo_per_point)
    last = train(args.out, config, log_every=args.log_every, ckpt_every=args.ckpt_every,
                 time_limit=args.time_limit, progress=not args.no_progress)
    print(json.dumps(jsonable(last), sort_keys=True))


def _evaluate(args) -> None:
    from neural_processes.evaluate import evaluate_run, evaluate_shipped

    common = {"data": args.data, "n_tasks": args.n_tasks, "seed": args.seed,
              "num_samples": args.num_samples, "progress": not args.no_progress}
    if args.run is not None:
        res = evaluate_run(args.run, plot=not args.no_plot, **common)
    else:
        res = evaluate_shipped(args.model, **common)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print(f"{res['model']} on {res['data']} ({res['n_tasks']} tasks, step {res['step']}): "
              f"context ll {res['context_ll']:.3f} +- {res['context_ll_se']:.3f}, "
              f"target ll {res['target_ll']:.3f} +- {res['target_ll_se']:.3f}")


def _predict(args) -> None:
    from neural_processes.checkpoint import load_any
    from neural_processes.predict import check_output_path, predict_point_sets, write_prediction

    check_output_path(args.out, args.overwrite)  # before any work
    model = load_any(args.model)
    ds = predict_point_sets(model, args.data, args.n_context, num_samples=args.num_samples,
                            seed=args.seed, attrs={"model_source": str(args.model)})
    print(write_prediction(ds, args.out, overwrite=args.overwrite))


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "train":
        _train(args)
    elif args.verb == "evaluate":
        _evaluate(args)
    elif args.verb == "export":
        from neural_processes.checkpoint import export

        print(export(args.run, args.name, dest=args.dest, overwrite=args.overwrite))
    elif args.verb == "predict":
        _predict(args)
    elif args.verb == "list":
        from neural_processes.checkpoint import available

        print("\n".join(available()) or "(no shipped checkpoints)")
    return 0


def main(argv=None) -> int:
    """``python -m neural_processes`` (and ``opbayes np``): exit status 0, or 2 and one line."""
    return run_command(_main, argv, prog=PROG)


if __name__ == "__main__":
    raise SystemExit(main())
