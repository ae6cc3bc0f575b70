"""Step 2 of ``opbayes demo``: an FNO trained on the demo's Darcy data at s=33, evaluated at
s=33 and, zero-shot, at s=65 (registered as the ``operators`` entry point of the group
``opbayes.demo``; the contract is ``pde_data.demo.DemoStep``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pde_data.demo import DemoStep
from pde_data.runs.cli import integer

__all__ = ["STEP", "NeuralOperatorStep"]


class NeuralOperatorStep(DemoStep):
    """Train an FNO on ``context["darcy"]["train"]``, evaluate on ``test33`` and ``test65``."""

    order = 20
    title = "Neural operator: FNO trained at 33x33, evaluated at 33x33 and 65x65"
    summary_key = "operator"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--epochs", type=integer(1), default=15, help="FNO training epochs")

    def run(self, out: Path, context: dict[str, Any], args: argparse.Namespace) -> dict:
        from operators.evaluate import evaluate
        from operators.train import train

        if "darcy" not in context:
            raise RuntimeError("the operators demo step needs the Darcy data step before it")
        data = context["darcy"]
        run = out / "fno_darcy"
        t0 = time.perf_counter()
        train(str(data["train"]), "fno", run, epochs=args.epochs, seed=args.seed,
              tests=[str(data["test33"]), str(data["test65"])])
        seconds = time.perf_counter() - t0
        results = {"train_seconds": round(seconds, 1)}
        for key in ("test33", "test65"):
            metrics = evaluate(run, str(data[key]))
            results[key] = {k: metrics[k] for k in ("rel_l2", "rel_h1") if k in metrics}
            print(f"FNO on {data[key].name}: relative L2 {metrics['rel_l2']:.4f}"
                  + (f", relative H1 {metrics['rel_h1']:.4f}" if "rel_h1" in metrics else ""))
        print(f"plots of input / truth / prediction / error: {run}/*.png")
        return results


STEP = NeuralOperatorStep()
