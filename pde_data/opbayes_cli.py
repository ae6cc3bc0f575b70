"""The ``opbayes`` command: ``opbayes demo`` and one verb per package.

``opbayes data ...`` is ``python -m pde_data ...``; likewise ``operators``, ``pfn`` and ``np``
(neural_processes). The packages are imported by name only when their verb is used, so
``pde_data`` keeps importing none of the others.
"""

from __future__ import annotations

import importlib
import sys

PACKAGES = {
    "data": "pde_data",
    "operators": "operators",
    "pfn": "pfn",
    "np": "neural_processes",
}

USAGE = """usage: opbayes {demo,data,operators,pfn,np} [args...]

  demo        a short, real end-to-end run on the CPU (data -> operator -> Bayesian prediction)
  data        PDE data: generate, info, convert       (python -m pde_data)
  operators   neural operators: train, evaluate       (python -m operators)
  pfn         prior-data fitted networks              (python -m pfn)
  np          neural processes                        (python -m neural_processes)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb == "demo":
        return importlib.import_module("pde_data.demo").main(rest)
    if verb not in PACKAGES:
        print(f"opbayes: unknown command {verb!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{PACKAGES[verb]}.__main__")
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
