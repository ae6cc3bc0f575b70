"""The ``opbayes`` command: ``opbayes demo``, ``opbayes --version`` and one verb per package.

The verbs are the entry points of the group ``opbayes.commands`` that each package registers
in pyproject.toml (``data`` -> ``python -m pde_data``, ``operators``, ``pfn``, ``np``): each
is a ``main(argv) -> int`` loaded only when its verb is used, so ``pde_data`` names none of the
other packages.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version

from pde_data.runs.cli import called_as

__all__ = ["COMMANDS_GROUP", "commands", "main"]

COMMANDS_GROUP = "opbayes.commands"
DISTRIBUTION = "opbayes"
DEMO_HELP = "a short, real end-to-end run on the CPU (data -> operator -> Bayesian prediction)"


def commands() -> dict[str, EntryPoint]:
    """The registered verbs, by name (``data`` always: it is this package's own)."""
    found = {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}
    found.setdefault("data", EntryPoint("data", "pde_data.__main__:main", COMMANDS_GROUP))
    return found


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _module_command(ep: EntryPoint) -> str:
    """The command a verb also runs as: ``python -m PACKAGE``."""
    return f"python -m {ep.module.removesuffix('.__main__')}"


def _usage(verbs: dict[str, EntryPoint]) -> str:
    names = ["demo", *verbs]
    lines = [f"usage: opbayes {{{','.join(names)}}} [args...]",
             "       opbayes --version", "",
             f"  {'demo':<11} {DEMO_HELP}"]
    for name, ep in verbs.items():
        lines.append(f"  {name:<11} {_module_command(ep)}")
    lines += ["", "'opbayes VERB --help' describes a verb."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = commands()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(verbs))
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"opbayes {_version()}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb == "demo":
        from pde_data.demo import main as demo_main

        return demo_main(rest)
    if verb not in verbs:
        print(f"opbayes: error: unknown command {verb!r}; choose from "
              f"{', '.join(['demo', *verbs])} (see opbayes --help)", file=sys.stderr)
        return 2
    with called_as(_module_command(verbs[verb]), f"opbayes {verb}"):
        return verbs[verb].load()(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
