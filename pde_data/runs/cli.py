"""The one error policy of every opbayes command: a problem ends the command with exit status 2
and one line on stderr that names the problem and the remedy; no traceback unless ``--debug``.

Use it in a package's ``__main__``::

    from pde_data.runs.cli import CommandParser, run_command

    def main(argv=None) -> int:
        return run_command(_main, argv, prog="python -m pfn")

``CommandParser`` is an ``argparse.ArgumentParser`` whose usage errors follow the same policy
(one line, exit 2) and which knows ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

EXIT_USAGE = 2
DEBUG_FLAG = "--debug"

# (the package's own program name, the name it was called by), set by the ``opbayes`` command
_CALLED_AS: ContextVar[tuple[str, str] | None] = ContextVar("_CALLED_AS", default=None)


@contextlib.contextmanager
def called_as(own: str, name: str) -> Iterator[None]:
    """Within the block, messages of the command ``own`` (``python -m pfn``) name it ``name``
    (``opbayes pfn``), the way the user called it."""
    token = _CALLED_AS.set((own, name))
    try:
        yield
    finally:
        _CALLED_AS.reset(token)


def program_name(prog: str) -> str:
    """``prog`` as the user called it (see :func:`called_as`)."""
    alias = _CALLED_AS.get()
    if alias is not None and (prog == alias[0] or prog.startswith(alias[0] + " ")):
        return alias[1] + prog[len(alias[0]):]
    return prog


class CommandParser(argparse.ArgumentParser):
    """``ArgumentParser`` with one-line usage errors (exit 2) and a ``--debug`` flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        if kwargs.get("prog"):
            kwargs["prog"] = program_name(kwargs["prog"])
        super().__init__(*args, **kwargs)
        if not any(DEBUG_FLAG in a.option_strings for a in self._actions):
            self.add_argument(DEBUG_FLAG, action="store_true",
                              help="show the full traceback of an error")

    def error(self, message: str):  # argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; unexpected exception types keep their name."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (ValueError, OSError, KeyError, FloatingPointError)):
        if isinstance(err, KeyError):
            return f"missing key {text}"
        if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
            return f"{text}: {err.filename}"
        return text
    return f"{type(err).__name__}: {text}"


def run_command(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
                prog: str = "opbayes") -> int:
    """Call ``main(argv)`` under the policy: its return value (``None`` = 0), or 2 and one line
    for any exception (130 for Ctrl-C). ``--debug`` in ``argv`` or ``OPBAYES_DEBUG=1`` re-raises."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = program_name(prog)
    debug = DEBUG_FLAG in argv or os.environ.get("OPBAYES_DEBUG") == "1"
    try:
        return int(main(argv) or 0)
    except SystemExit as exit_:  # argparse's own exits (--help: 0, usage: 2) pass through
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (a rerun of the same command resumes where it can)",
              file=sys.stderr)
        return 130
    except Exception as err:  # the policy: every failure is one line, exit 2
        if debug:
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


def integer(minimum: int = 0) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= minimum`` (a usage error names the bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(above: float | None = None, at_least: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite float, ``> above`` and / or ``>= at_least`` when given."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = (not math.isfinite(value) or (above is not None and not value > above)
               or (at_least is not None and not value >= at_least))
        if bad:
            bound = "".join(f" {op} {b}" for op, b in ((">", above), (">=", at_least))
                            if b is not None)
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a training command that runs over several processes (``jax.distributed``):
    ``--distributed``, and the coordinator as ``--coordinator HOST:PORT --num-processes N
    --process-id I`` (or, without them, from a cluster launcher's environment)."""
    group = parser.add_argument_group(
        "several processes", "data-parallel training over the devices of several processes "
        "(hosts); start the same command in every process")
    group.add_argument("--distributed", action="store_true",
                       help="join the other processes (jax.distributed) and train on all their "
                            "devices; without --coordinator the cluster environment (SLURM, TPU "
                            "pod slice, ...) names them")
    group.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                       help="address of process 0, the same in every process")
    group.add_argument("--num-processes", metavar="N", type=integer(1), default=None)
    group.add_argument("--process-id", metavar="I", type=integer(0), default=None)


def init_distributed(args: argparse.Namespace) -> None:
    """Join the processes when ``args.distributed`` (call first, before any JAX work); the
    coordinator flags without ``--distributed`` are refused, not ignored."""
    from pde_data.runs import distributed

    given = [f"--{name.replace('_', '-')}" for name in ("coordinator", "num_processes",
                                                        "process_id")
             if getattr(args, name, None) is not None]
    if not getattr(args, "distributed", False):
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --distributed")
        return
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
