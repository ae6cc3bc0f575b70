"""Speed of the NN-to-NO models against the plain networks they convert (issue 13).

Seconds per training step (relative L2 loss, gradient and an Adam update, one jitted function)
and per inference batch (the jitted forward pass) at node grids of 65, 129 and 257 points per
axis, for ``cnn``, ``cnn-no``, ``unet``, ``unet-no``, ``vit`` and ``vit-no`` with the registry's
defaults (reference grid 64 cells: the converted models are the plain ones at 65 and the
quadrature of the same kernels at 129 and 257). Median of ``--repeats`` runs after a warm-up
(the first call, compilation included, is reported as ``first_s``). Random inputs: the speed
does not depend on the data.

    .venv/bin/python bench/nn_to_no_speed.py [--batch 4] [--repeats 3] [--grids 65 129 257]
        [--models cnn cnn-no ...] [--no-step] [--label after] [--out bench/nn_to_no_speed.json]

The JSON keeps one entry per ``--label`` (e.g. ``before`` / ``after`` a change), each with the
machine it ran on; a run replaces only its own label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import operators

HERE = Path(__file__).parent
MODELS = ["cnn", "cnn-no", "unet", "unet-no", "vit", "vit-no"]


def timed(fn, repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times), first


def rel_l2(pred, true):
    axes = tuple(range(1, pred.ndim))
    return jnp.mean(jnp.sqrt(jnp.sum((pred - true) ** 2, axes) / jnp.sum(true**2, axes)))


def measure(name, n, batch, repeats, train=True, seed=0):
    model = operators.build_model(name, 1, 1, rngs=nnx.Rngs(seed))
    graph, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, n, n, 1)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(batch, n, n, 1)), jnp.float32)

    @jax.jit
    def infer(params, x):
        return nnx.merge(graph, params, rest)(x)

    @jax.jit
    def step(params, opt, x, y):
        def loss(p):
            return rel_l2(nnx.merge(graph, p, rest)(x), y)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value

    infer_s, infer_first = timed(lambda: infer(params, x), repeats)
    row = {"model": name, "grid": n, "batch": batch, "params": operators.count_params(model),
           "infer_s": round(infer_s, 4), "infer_first_s": round(infer_first, 3)}
    if train:
        step_s, step_first = timed(lambda: step(params, opt, x, y), repeats)
        row.update(step_s=round(step_s, 4), step_first_s=round(step_first, 3))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--grids", type=int, nargs="+", default=[65, 129, 257])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--no-step", action="store_true", help="time the inference only")
    p.add_argument("--label", default="after")
    p.add_argument("--note", default="", help="free text stored with the label (e.g. the commit or the change)")
    p.add_argument("--out", default=str(HERE / "nn_to_no_speed.json"))
    args = p.parse_args(argv)
    rows = []
    for n in args.grids:
        for name in args.models:
            row = measure(name, n, args.batch, args.repeats, train=not args.no_step)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc[args.label] = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                  f"{len(os.sched_getaffinity(0))} cores, {jax.devices()[0].platform}",
                       "jax": jax.__version__, "note": args.note, "batch": args.batch, "repeats": args.repeats,
                       "rows": rows}
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, out)
    print(table(rows))
    return 0


def table(rows):
    lines = ["| model | grid | params | inference s | train step s |", "|---|---|---|---|---|"]
    for r in rows:
        step = f"{r['step_s']:.3f}" if "step_s" in r else "-"
        lines.append(f"| {r['model']} | {r['grid']} | {r['params']} | {r['infer_s']:.3f} | {step} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
