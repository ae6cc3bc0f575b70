"""Command line: ``python -m neural_processes {train,evaluate,export,list}``.

  python -m neural_processes train --model mpanp --data rbf --out runs/mpanp-rbf --steps 2000
  python -m neural_processes evaluate --run runs/mpanp-rbf [--data matern] [--json]
  python -m neural_processes export runs/mpanp-rbf mpanp-rbf
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    from neural_processes.data import DATASETS

    models = ["cnp", "canp", "np", "anp", "neubnp", "neubanp", "mpnp", "mpanp"]
    p = argparse.ArgumentParser(prog="python -m neural_processes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)

    t = sub.add_parser("train", help="train a model (re-running on the same --out resumes)")
    t.add_argument("--model", required=True, choices=models)
    t.add_argument("--data", required=True, choices=DATASETS)
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--width", type=int, default=None, help="hidden width (default 128)")
    t.add_argument("--enc-depth", type=int, default=None, help="encoder layers (default 5)")
    t.add_argument("--dec-depth", type=int, default=None, help="decoder layers (default 3)")
    t.add_argument("--heads", type=int, default=None, help="attention heads (default 8)")
    t.add_argument("--min-std", type=float, default=None, help="minimum std (default 0.1)")
    t.add_argument("--train-samples", type=int, default=None,
                   help="K: samples per task in the bootstrap / martingale losses (default 10)")
    t.add_argument("--n-inducing", type=int, default=None, help="ISAB inducing points (MP*)")
    t.add_argument("--noise-dim", type=int, default=None, help="generator noise size (MP*)")
    t.add_argument("--pseudo-average", default=None, choices=("logmeanexp", "mean"),
                   help="average over the K sets in L_pseudo (MP*, default logmeanexp)")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--ckpt-every", type=int, default=500)
    t.add_argument("--time-limit", type=float, default=None,
                   help="stop (after a checkpoint) once this many seconds have passed")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="context/target log-likelihood on a fixed test set")
    e.add_argument("--run", required=True)
    e.add_argument("--data", default=None, choices=DATASETS, help="default: the training data")
    e.add_argument("--n-tasks", type=int, default=3000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--num-samples", type=int, default=None,
                   help="predictive samples for stochastic models (default 50)")
    e.add_argument("--no-plot", action="store_true")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--no-progress", action="store_true")

    x = sub.add_parser("export", help="copy a run's weights into neural_processes/checkpoints")
    x.add_argument("run")
    x.add_argument("name")
    x.add_argument("--dest", default=None, help="folder instead of the package's checkpoints/")

    sub.add_parser("list", help="list the shipped pretrained models")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "train":
        from neural_processes.train import make_config, train

        config = make_config(
            args.model, args.data, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, width=args.width, enc_depth=args.enc_depth, dec_depth=args.dec_depth,
            heads=args.heads, min_std=args.min_std, train_samples=args.train_samples,
            n_inducing=args.n_inducing, noise_dim=args.noise_dim,
            pseudo_average=args.pseudo_average)
        last = train(args.out, config, log_every=args.log_every, ckpt_every=args.ckpt_every,
                     time_limit=args.time_limit, progress=not args.no_progress)
        print(json.dumps(last))
    elif args.verb == "evaluate":
        from neural_processes.evaluate import evaluate_run

        res = evaluate_run(args.run, data=args.data, n_tasks=args.n_tasks, seed=args.seed,
                           num_samples=args.num_samples, plot=not args.no_plot,
                           progress=not args.no_progress)
        if args.json:
            print(json.dumps(res))
        else:
            print(f"{res['model']} on {res['data']} ({res['n_tasks']} tasks, step {res['step']}): "
                  f"context ll {res['context_ll']:.3f} +- {res['context_ll_se']:.3f}, "
                  f"target ll {res['target_ll']:.3f} +- {res['target_ll_se']:.3f}")
    elif args.verb == "export":
        from neural_processes.pretrained import export

        print(export(args.run, args.name, dest=args.dest))
    elif args.verb == "list":
        from neural_processes.pretrained import available

        print("\n".join(available()) or "(no shipped checkpoints)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as err:  # bad input: one clear line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
