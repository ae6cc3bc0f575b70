"""``python -m pfn {train, evaluate, export}``: the PFN command line.

Every problem ends the command with exit status 2 and one line on stderr (``--debug`` shows the
traceback): the error policy of every opbayes command (``pde_data.runs.cli``).
"""

from __future__ import annotations

import argparse
import json
import sys

from pde_data.runs.cli import (
    CommandParser,
    add_distributed_arguments,
    init_distributed,
    run_command,
)

PROG = "python -m pfn"
_TRAIN_OPTIONS = [("steps", int), ("batch-size", int), ("lr", float), ("warmup", int),
                  ("clip", float), ("min-context", int), ("max-context", int),
                  ("n-targets", int), ("d-model", int), ("n-heads", int), ("n-layers", int),
                  ("d-ff", int), ("n-buckets", int), ("border-samples", int), ("seed", int),
                  ("checkpoint-every", int), ("log-every", int)]


def _prior_options(items: list[str] | None) -> dict | None:
    if not items:
        return None
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--prior-option takes KEY=JSON (e.g. lengthscale=0.2), got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--prior-option {key}: {value!r} is not a JSON value (strings "
                             f"need quotes: {key}='\"rbf\"')") from None
    return options


def _train(args) -> None:
    init_distributed(args)
    from pfn.train import train

    opts = {name.replace("-", "_"): getattr(args, name.replace("-", "_"))
            for name, _ in _TRAIN_OPTIONS}
    opts.update(loss=args.loss, init_from=args.init_from,
                prior_options=_prior_options(args.prior_option),
                standardise=True if args.standardise else None, norm=args.norm,
                zero_init=args.zero_init, x_encoder=args.x_encoder,
                context_sampler=args.context_sampler,
                context_power=args.context_power)
    summary = train(args.out, args.prior, data=args.data, quiet=args.quiet, **opts)
    print(json.dumps(summary))


def _export(args) -> None:
    from pfn.checkpoint import export

    print(export(args.run, args.name, dest=args.dest, overwrite=args.overwrite))


def _evaluate(args) -> None:
    from pfn.evaluate import main as evaluate_main

    evaluate_main(args)


def parser() -> CommandParser:
    p = CommandParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="{train,evaluate,export}")
    t = sub.add_parser("train", help="fit a PFN to a prior or a point-set file (resumes if "
                                     "--out exists; a larger --steps continues a finished run)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--prior", help="gp-rbf, gp-hyper, tabular, bnn, gp-matern12, ...")
    src.add_argument("--data", metavar="FILE",
                     help="train on your point sets instead: .nc / .zarr with x (task, point, "
                          "feature) and y (task, point); regression, borders from its y")
    t.add_argument("--out", required=True, help="run folder")
    add_distributed_arguments(t)
    t.add_argument("--prior-option", action="append", metavar="KEY=JSON",
                   help="override a prior field, e.g. lengthscale=0.2 (repeatable)")
    t.add_argument("--standardise", action="store_true",
                   help="standardise x and y by each dataset's context inside the model "
                        "(TabPFN's preprocessing; the predictive is mapped back to y's units)")
    for name, typ in _TRAIN_OPTIONS:
        t.add_argument(f"--{name}", type=typ, default=None)
    t.add_argument("--norm", choices=["pre", "post"], default=None,
                   help="transformer layers: post-LN (LN(x + f(x)), the PFN paper's code; "
                        "default) or pre-LN (x + f(LN x), the first shipped checkpoints')")
    t.add_argument("--zero-init", action=argparse.BooleanOptionalAction, default=None,
                   help="start each residual branch's output projection (attention out, "
                        "second FFN linear) at zero, as the PFN paper's code does (default on)")
    t.add_argument("--x-encoder", choices=["linear", "mlp", "fourier"], default=None,
                   help="embedding of x: linear (the paper's; default), mlp (two layers) or "
                        "fourier (x and fixed octave sines / cosines of each feature, then linear)")
    t.add_argument("--context-sampler", choices=["uniform", "weighted"], default=None,
                   help="context size of a batch: weighted P(n) ~ (max_context + 1 - n)^-power "
                        "(the PFN code's weighted single_eval_pos sampler; default) or uniform "
                        "in [--min-context, --max-context]")
    t.add_argument("--context-power", type=float, default=None, metavar="P",
                   help="power of the weighted context sampler (default 1)")
    t.add_argument("--loss", choices=["nll", "expected-nll"], default=None,
                   help="nll: of the sampled targets (default); expected-nll: averaged over the "
                        "exact GP predictive of each target (GP priors; same optimum, less noise)")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this model's weights and bucket borders (shipped name, "
                        "export or run folder; same architecture and prior), new schedule")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    e = sub.add_parser("export", help="write a run's weights, config and borders as a shipped "
                                      "model (default ./exports/NAME)")
    e.add_argument("run", help="run folder")
    e.add_argument("name", help="model name (letters, digits, '.', '_', '-')")
    e.add_argument("--dest", default=None,
                   help="folder to write (default ./exports/NAME); --dest pfn/checkpoints/NAME "
                        "--overwrite replaces a shipped model in a source checkout")
    e.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    e.set_defaults(func=_export)
    v = sub.add_parser("evaluate", help="PFN vs exact / ML-II GP on fresh prior datasets")
    v.add_argument("--model", required=True, help="shipped name, export folder or run folder")
    v.add_argument("--n-datasets", type=int, default=256)
    v.add_argument("--n-targets", type=int, default=50)
    v.add_argument("--contexts", default="2,5,10,20,50,100")
    v.add_argument("--seed", type=int, default=123)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--plot", default=None, help="write a PNG of NLL vs n here")
    v.set_defaults(func=_evaluate)
    return p


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.func(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
