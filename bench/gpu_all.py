"""Train, evaluate and export every shipped Bayesian model in one wall-clock budget (issue 14):
the PFNs gp-rbf, gp-hyper and tabular and the neural processes anp-rbf and mpanp-rbf, side by
side on one machine (one GPU: 12 minutes by default). ``bench/gpu_all.sh OUT [BUDGET_S]`` runs
this script.

Each model is trained with the command the README gives for it (the shipped architecture and
optimiser; only the number of steps changes), in its own process:

1. (``--from-shipped``: the PFNs continue from the shipped weights, the README's second
   stage; neural processes always start afresh.) Unless a step count is given (``--pfn-steps`` / ``--np-steps``), a probe run of 30 steps
   measures the steps per second, and the real run gets the steps that fill the training part
   of the budget (70%); neural processes also get the engine's ``--time-limit`` as a guard, a
   PFN run that overruns is stopped and its latest checkpoint used;
2. ``python -m pfn export`` / ``python -m neural_processes export`` write ``OUT/exports/NAME``;
3. ``python -m pfn evaluate --json`` (new and shipped model, same seed) and
   ``python -m neural_processes evaluate --json`` (the shipped model on the same seeded tasks
   through ``neural_processes.evaluate.evaluate_model``) score them;
4. a table says which new model beats the shipped one (PFN regression: mean NLL over the
   context sizes, lower is better; tabular: mean accuracy of the PFN over the benchmark;
   NPs: target log-likelihood), also written to ``OUT/summary.json``.

``--quick`` (the CPU test) evaluates on a handful of datasets / tasks. Logs of every command
are in ``OUT/logs/``.

    bash bench/gpu_all.sh /tmp/gpu 720                        # one GPU, 12 minutes
    python bench/gpu_all.py OUT 60 --pfn-steps 3 --np-steps 3 --quick   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# The README's training commands (architecture and optimiser of the shipped models).
PFN_JOBS = {
    "gp-rbf": ["--prior", "gp-rbf", "--batch-size", "32", "--lr", "1e-3", "--warmup", "300",
               "--d-model", "128", "--n-layers", "4", "--d-ff", "256", "--n-heads", "4",
               "--n-buckets", "1000", "--loss", "expected-nll"],
    "gp-hyper": ["--prior", "gp-hyper", "--batch-size", "32", "--lr", "1e-3", "--warmup", "200",
                 "--d-model", "64", "--n-layers", "3", "--d-ff", "128", "--n-heads", "4",
                 "--n-buckets", "1000", "--loss", "expected-nll"],
    "tabular": ["--prior", "tabular", "--batch-size", "32", "--lr", "1e-3", "--warmup", "80",
                "--d-model", "128", "--n-layers", "4", "--d-ff", "256", "--n-heads", "4"],
}
NP_JOBS = {
    "anp-rbf": ["--model", "anp", "--data", "rbf", "--batch-size", "32", "--lr", "5e-4",
                "--width", "64", "--enc-depth", "3", "--dec-depth", "2", "--heads", "4"],
    "mpanp-rbf": ["--model", "mpanp", "--data", "rbf", "--batch-size", "32", "--lr", "5e-4",
                  "--width", "64", "--enc-depth", "3", "--dec-depth", "2", "--heads", "4"],
}
TRAIN_SHARE = 0.70  # of the budget, from the start, for probes and training
PROBE_STEPS = 30


class Job:
    def __init__(self, name: str, args, out: Path, t0: float):
        self.name, self.args, self.out, self.t0 = name, args, out, t0
        self.kind = "pfn" if name in PFN_JOBS else "np"
        self.run = out / "runs" / name
        self.export = out / "exports" / name
        self.result: dict = {"name": name, "kind": self.kind}
        self.env = {**os.environ, "OPBAYES_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}
        if args.jobs > 1:  # processes share one accelerator
            self.env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / args.jobs:.2f}")

    # -- helpers -----------------------------------------------------------------------------
    def sh(self, cmd: list[str], log: str, timeout: float | None = None) -> tuple[int, float]:
        """Run ``cmd``, output to ``OUT/logs/NAME.log``; ``(status, seconds)``, status -9 when
        it was stopped at ``timeout``."""
        path = self.out / "logs" / f"{self.name}.{log}.log"
        t = time.time()
        with open(path, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env)
            try:
                status = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = -9
        return status, time.time() - t

    def train_args(self) -> list[str]:
        py = sys.executable
        if self.kind == "pfn":
            extra = []
            if self.args.from_shipped:  # the README's second stage, from the shipped weights
                extra = ["--init-from", self.name, "--lr", "3e-4", "--warmup", "100"]
            args = [py, "-m", "pfn", "train", *PFN_JOBS[self.name], "--quiet"]
            for i in range(0, len(extra), 2):
                if extra[i] in args:
                    args[args.index(extra[i]) + 1] = extra[i + 1]
                else:
                    args += extra[i:i + 2]
            return args
        return [py, "-m", "neural_processes", "train", *NP_JOBS[self.name], "--no-progress"]

    def steps_of(self, folder: Path) -> int:
        """The step of the run's latest checkpoint (what the export holds)."""
        ckpts = Path(folder) / "checkpoints"
        steps = [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() \
            else []
        return max(steps, default=0)

    # -- the phases --------------------------------------------------------------------------
    def train(self) -> None:
        args = self.args
        given = args.pfn_steps if self.kind == "pfn" else args.np_steps
        train_end = self.t0 + TRAIN_SHARE * args.budget
        if given:
            steps = given
        else:
            probe = self.out / "runs" / f"probe-{self.name}"
            every = ["--steps", str(PROBE_STEPS)] + (
                ["--log-every", "10", "--checkpoint-every", "1000"] if self.kind == "pfn"
                else ["--log-every", "10", "--ckpt-every", "1000"])
            status, _ = self.sh([*self.train_args(), "--out", str(probe), *every], "probe")
            rows = metrics(probe)
            if status or not rows:
                raise RuntimeError(f"the probe run failed (see logs/{self.name}.probe.log)")
            steady = rows[1:] or rows  # the first row includes the compilation
            rate = sum(r["steps_per_s"] for r in steady) / len(steady)
            left = max(train_end - time.time(), 10.0)
            steps = max(100, int(0.9 * rate * left) // 100 * 100)
            self.result["probe_steps_per_s"] = rate
        cmd = [*self.train_args(), "--out", str(self.run), "--steps", str(steps)]
        if self.kind == "pfn":
            warmup = self.train_args()[self.train_args().index("--warmup") + 1]
            cmd[cmd.index("--warmup") + 1] = str(max(1, min(int(warmup), steps // 10)))
            cmd += ["--checkpoint-every", str(max(1, min(500, steps // 4)))]
            timeout = max(train_end - time.time(), 10.0) * 1.15 if not given else None
        else:
            left = max(train_end - time.time(), 10.0)
            cmd += ["--ckpt-every", str(max(1, min(500, steps // 4))), "--log-every",
                    str(max(1, min(50, steps))), "--time-limit", f"{left:.0f}"]
            timeout = None
        status, seconds = self.sh(cmd, "train", timeout=timeout)
        self.result.update(command=" ".join(["python"] + cmd[1:]), steps_planned=steps,
                           steps_done=self.steps_of(self.run), train_seconds=round(seconds, 1),
                           stopped_at_deadline=status == -9)
        if status not in (0, -9):
            raise RuntimeError(f"training failed (status {status}, see logs/{self.name}"
                               ".train.log)")

    def export_model(self) -> None:
        py = sys.executable
        pkg = "pfn" if self.kind == "pfn" else "neural_processes"
        status, _ = self.sh([py, "-m", pkg, "export", str(self.run), self.name, "--dest",
                             str(self.export), "--overwrite"], "export")
        if status:
            raise RuntimeError(f"export failed (see logs/{self.name}.export.log)")
        self.result["export"] = str(self.export)

    def evaluate(self) -> None:
        py = sys.executable
        if self.kind == "pfn":
            quick = (["--n-datasets", "4", "--n-targets", "5", "--contexts", "2,5"]
                     if self.args.quick else [])
            tabular = self.name == "tabular"
            scores = []
            for which, model in (("new", str(self.export)), ("shipped", self.name)):
                if tabular and self.args.quick:  # the benchmark at one size and one split
                    cmd = [py, "-c", QUICK_TABULAR, model]
                else:
                    cmd = [py, "-m", "pfn", "evaluate", "--model", model, "--json", *quick]
                out = self.capture(cmd, f"evaluate-{which}")
                scores.append(pfn_score(json.loads(out), tabular))
            metric = "mean PFN accuracy" if tabular else "mean NLL over context sizes"
            better = scores[0] > scores[1] if tabular else scores[0] < scores[1]
        else:
            n = ["--n-tasks", "16"] if self.args.quick else []
            out = self.capture([py, "-m", "neural_processes", "evaluate", "--run", str(self.run),
                                "--json", "--no-plot", "--no-progress", *n], "evaluate-new")
            new = json.loads(out)
            res = json.loads(self.capture([py, "-c", SHIPPED_NP, self.name, new["data"],
                                           str(new["n_tasks"]), str(new["seed"])],
                                          "evaluate-shipped"))
            scores = [new["target_ll"], res["target_ll"]]
            self.result["se"] = [new["target_ll_se"], res["target_ll_se"]]
            metric = "target log-likelihood"
            better = scores[0] > scores[1]
        self.result.update(metric=metric, new=scores[0], shipped=scores[1], beats_shipped=better)

    def capture(self, cmd: list[str], log: str) -> str:
        """The last stdout line of ``cmd`` (a JSON object); stderr to the log."""
        path = self.out / "logs" / f"{self.name}.{log}.log"
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=False)
        path.write_text("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            raise RuntimeError(f"evaluation failed (see logs/{self.name}.{log}.log)")
        return lines[-1]

    def __call__(self) -> None:
        try:
            self.train()
            self.export_model()
            self.evaluate()
        except Exception as err:  # noqa: BLE001 (report it; the other models go on)
            self.result["error"] = str(err)
        print(json.dumps(self.result), flush=True)


# The shipped neural process on the same seeded tasks as `neural_processes evaluate` used.
SHIPPED_NP = """
import json, sys
from neural_processes import from_pretrained
from neural_processes.evaluate import evaluate_model
name, data, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(json.dumps(evaluate_model(from_pretrained(name), data, n_tasks=n, seed=seed,
                                progress=False)))
"""
# The tabular benchmark of `pfn evaluate`, at 20 training rows and one split (CPU smoke run).
QUICK_TABULAR = """
import json, sys
from pfn.estimators import PFNClassifier
from pfn.evaluate import summarize_tabular, tabular_benchmark
make = lambda: PFNClassifier(model=sys.argv[1])
rows = tabular_benchmark(make, train_sizes=(20,), n_splits=1)
print(json.dumps({"model": sys.argv[1], "rows": summarize_tabular(rows)}))
"""


def metrics(folder: Path) -> list[dict]:
    path = Path(folder) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "step" in r and "steps_per_s" in r]


def pfn_score(result: dict, tabular: bool) -> float:
    rows = result["rows"]
    if tabular:
        accs = [r["accuracy"] for r in rows if r["method"] == "pfn"]
        return sum(accs) / len(accs)
    return sum(r["pfn_nll"] for r in rows) / len(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="output folder (runs/, exports/, logs/, summary.json)")
    p.add_argument("budget", nargs="?", type=float, default=720.0,
                   help="wall-clock seconds for everything (default 720: 12 minutes)")
    p.add_argument("--pfn-steps", type=int, default=None, help="PFN steps (default: probed)")
    p.add_argument("--np-steps", type=int, default=None, help="NP steps (default: probed)")
    p.add_argument("--models", default=",".join([*PFN_JOBS, *NP_JOBS]))
    p.add_argument("--quick", action="store_true", help="tiny evaluations (CPU smoke run)")
    p.add_argument("--from-shipped", action="store_true",
                   help="PFNs continue from the shipped weights (the README's second stage: "
                        "--init-from NAME --lr 3e-4 --warmup 100) instead of starting afresh")
    p.add_argument("--sequential", action="store_true", help="one model at a time")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(PFN_JOBS) - set(NP_JOBS))
    if unknown:
        p.error(f"unknown models {unknown}; known: {', '.join([*PFN_JOBS, *NP_JOBS])}")
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    args.jobs = 1 if args.sequential else len(names)
    t0 = time.time()
    import jax

    devices = [str(d) for d in jax.devices()]
    print(f"devices: {devices}; budget {args.budget:.0f} s; models {', '.join(names)}",
          flush=True)
    jobs = [Job(n, args, out, t0) for n in names]
    if args.sequential:
        for job in jobs:
            job()
    else:
        threads = [threading.Thread(target=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    results = [j.result for j in jobs]
    summary = {"devices": devices, "budget_s": args.budget, "wall_s": time.time() - t0,
               "models": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{'model':10s} {'steps':>7s} {'metric':30s} {'new':>9s} {'shipped':>9s}  verdict")
    for r in results:
        if "error" in r:
            print(f"{r['name']:10s} FAILED: {r['error']}")
            continue
        verdict = "BEATS the shipped model" if r["beats_shipped"] else "does not beat it"
        print(f"{r['name']:10s} {r['steps_done']:7d} {r['metric']:30s} {r['new']:9.4f} "
              f"{r['shipped']:9.4f}  {verdict}")
    print(f"wall {summary['wall_s']:.0f} s; exports in {out / 'exports'}; "
          f"summary in {out / 'summary.json'}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
