"""``python -m pfn {train, evaluate, export}``: the PFN command line."""

from __future__ import annotations

import argparse
import json
import sys


def _train(args):
    from pfn.train import train

    opts = {k: getattr(args, k) for k in (
        "steps", "batch_size", "lr", "warmup", "clip", "min_context", "max_context", "n_targets",
        "d_model", "n_heads", "n_layers", "d_ff", "n_buckets", "seed", "checkpoint_every",
        "log_every", "loss", "init_from")}
    if args.prior_option:
        prior_options = {}
        for item in args.prior_option:
            key, _, value = item.partition("=")
            prior_options[key] = json.loads(value)
        opts["prior_options"] = prior_options
    summary = train(args.out, args.prior, **opts)
    print(json.dumps(summary))


def _export(args):
    from pfn.export import export

    print(export(args.run, args.name, dest=args.dest))


def _evaluate(args):
    from pfn.evaluate import main as evaluate_main

    evaluate_main(args)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pfn", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("train", help="fit a PFN to a prior (resumes if --out exists)")
    t.add_argument("--prior", required=True, help="gp-rbf, gp-hyper, tabular, bnn, gp-matern12...")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--prior-option", action="append", metavar="KEY=JSON",
                   help="override a prior field, e.g. lengthscale=0.2 (repeatable)")
    for name, typ in [("steps", int), ("batch-size", int), ("lr", float), ("warmup", int),
                      ("clip", float), ("min-context", int), ("max-context", int),
                      ("n-targets", int), ("d-model", int), ("n-heads", int),
                      ("n-layers", int), ("d-ff", int), ("n-buckets", int), ("seed", int),
                      ("checkpoint-every", int), ("log-every", int)]:
        t.add_argument(f"--{name}", type=typ, default=None)
    t.add_argument("--loss", choices=["nll", "expected-nll"], default=None,
                   help="nll: of the sampled targets (default); expected-nll: averaged over the "
                        "exact GP predictive of each target (GP priors; same optimum, less noise)")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this model's weights and bucket borders (shipped name, "
                        "export or run folder; same architecture and prior), new schedule")
    t.set_defaults(func=_train)
    e = sub.add_parser("export", help="copy a run's weights + config into pfn/checkpoints/NAME")
    e.add_argument("run")
    e.add_argument("name")
    e.add_argument("--dest", default=None, help="folder to write instead of pfn/checkpoints/NAME")
    e.set_defaults(func=_export)
    v = sub.add_parser("evaluate", help="PFN vs exact / ML-II GP on fresh prior datasets")
    v.add_argument("--model", required=True, help="shipped checkpoint name, export folder or run")
    v.add_argument("--n-datasets", type=int, default=256)
    v.add_argument("--n-targets", type=int, default=50)
    v.add_argument("--contexts", default="2,5,10,20,50,100")
    v.add_argument("--seed", type=int, default=123)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--plot", default=None, help="write a PNG of NLL vs n here")
    v.set_defaults(func=_evaluate)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
