"""``python -m pde_data {generate,info,convert}``: make, inspect and convert PDE datasets.

Errors follow the one policy of every opbayes command (``pde_data.runs.cli``): exit status 2
and one line naming the problem; ``--debug`` shows the traceback. An existing output is never
replaced without ``--overwrite``, and it is checked before any work.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys

from pde_data.runs.cli import CommandParser, integer, number, run_command

PROG = "python -m pde_data"
MAX_TIMES = 100_000  # snapshots of one --times START:STOP:STEP

DESCRIPTION = """PDE datasets of opbayes.

verbs:
  generate PDE   solve PDE ({pdes}) for --n samples drawn from --seed, streaming
                 chunks to --out (written atomically once complete); an interrupted run resumes
                 from FILE.partial/; --shard I/N: N processes fill one .zarr store together
  info FILE      summary of a dataset file (dims, variables, ranges, NaN counts, attributes)
  convert IN OUT convert between formats (.nc, .zarr, FNO .mat, PDEBench .h5, neuraloperator .pt)

An existing output file is kept unless --overwrite is given.
"""


def parse_times(text: str) -> list[float]:
    """``"0.5,1,2"`` or ``"START:STOP:STEP"`` (STOP included, e.g. ``"1:50:1"``)."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise ValueError
            start, stop, step = parts
            count = round((stop - start) / step) + 1
            if count > MAX_TIMES:
                raise argparse.ArgumentTypeError(
                    f"--times {text} asks for {count} snapshots; at most {MAX_TIMES}")
            return [start + i * step for i in range(count)]
        return [float(p) for p in text.split(",") if p.strip()]
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"--times must be a comma list (0.5,1) or START:STOP:STEP, got {text!r}") from None


def shard(text: str) -> tuple[int, int]:
    """``"I/N"`` for ``--shard`` (an argparse type)."""
    from pde_data.generate import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    from pde_data.generate import PDES

    parser = CommandParser(prog=PROG, description=DESCRIPTION.format(pdes=", ".join(PDES)),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="{generate,info,convert}",
                                  parser_class=CommandParser)

    gen = verbs.add_parser("generate", help="generate a dataset of PDE solutions")
    gen.add_argument("pde", choices=PDES)
    gen.add_argument("--n", type=integer(1), required=True, help="number of samples")
    gen.add_argument("--resolution", type=integer(2), required=True,
                     help="stored grid points per axis")
    gen.add_argument("--seed", type=integer(0), default=0,
                     help="sample i uses fold_in(key(seed), i)")
    gen.add_argument("--out", required=True, help="output file (.nc or .zarr)")
    gen.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    gen.add_argument("--chunk-size", type=integer(1), default=32,
                     help="samples per resumable chunk")
    gen.add_argument("--solve-resolution", type=integer(2), default=None,
                     help="solve on this finer grid and subsample (darcy 421 -> 85; ns 256 -> 64)")
    gen.add_argument("--nu", type=number(), default=None,
                     help="viscosity (burgers, navier_stokes)")
    gen.add_argument("--times", type=parse_times, default=None,
                     help="snapshot times, e.g. 0.5,1 or 1:50:1 (burgers, navier_stokes)")
    gen.add_argument("--dt", type=number(), default=None, help="largest time step")
    gen.add_argument("--shard", type=shard, default=(0, 1), metavar="I/N",
                     help="solve the I-th of N equal parts of the chunks (0 <= I < N); N "
                          "processes with the same arguments fill one .zarr output together")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")

    info = verbs.add_parser("info", help="summarise a dataset file")
    info.add_argument("file")
    conv = verbs.add_parser("convert", help="convert a dataset file to another format")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    return parser


def _generate(args) -> int:
    from pde_data import generate as gen

    module = gen.pde_module(args.pde)
    options = {"solve_resolution": args.solve_resolution, "nu": args.nu, "times": args.times,
               "dt": args.dt}
    accepted = inspect.signature(module.params).parameters
    for name, value in options.items():
        if value is not None and name not in accepted:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to {args.pde}")
    wrote = gen.generate_to_file(args.pde, args.seed, args.n, args.resolution, args.out,
                                 chunk_size=args.chunk_size, progress=not args.no_progress,
                                 overwrite=args.overwrite, shard=args.shard, **options)
    if wrote is None:
        i, n = args.shard
        print(f"shard {i}/{n} done; " + (f"{args.out} is complete (written by another shard)"
                                         if os.path.exists(args.out) else
                                         f"the last shard to finish writes {args.out}"))
    else:
        print(f"wrote {args.out}")
    return 0


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    if args.verb == "generate":
        return _generate(args)
    from pde_data.info import convert, info

    if args.verb == "info":
        print(info(args.file))
    else:
        print(f"wrote {convert(args.src, args.dst, overwrite=args.overwrite)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pde_data ...`` (and ``opbayes data``) under the opbayes error policy."""
    return run_command(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
