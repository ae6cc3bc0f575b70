"""Speed of our MgNO against the reference PyTorch MgNO, same configuration, same weights, side by side.

The reference is the torch rewrite of xlliu2017/MgNO's models (tests/operators/mgno_torch_reference.py;
needs the ``reference`` extra: ``pip install -e '.[reference]'``). For each grid, the Darcy-rough
configuration (4 layers x 24 channels, 6 levels, kernel-4 prolongations) is built in torch, its
weights copied into ours, and the outputs checked to agree; then, interleaved over ``--rounds``
rounds (the machine may be shared), each side times ``--iters`` inference passes and ``--iters``
training steps (forward, MSE loss, backward, Adam update; ours one ``nnx.jit``-ed step), torch at
each of ``--torch-threads`` (its default and 1: on a loaded machine its OpenMP threads contend).
Reports medians per call and the ratio torch / ours (> 1: ours faster). Writes
bench/mgno_vs_torch.json.

    .venv/bin/python bench/mgno_vs_torch.py [--grids 64 256] [--batch 4 2] [--rounds 5] [--iters 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "operators"))

import mgno_torch_reference as ref

import operators


def build(n: int, seed: int = 0):
    """The reference Darcy-rough MgNO at grid ``n`` and ours with its weights."""
    torch.manual_seed(seed)
    theirs = ref.MgNO_DC(4, 24, 1, [[1, 0]] * 5 + [[2, 0]], [4] * 5)
    ours = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(seed), grid_size=n, prolongation_kernel=4)
    ref.copy_into(ours, theirs)
    return ours, theirs


def ours_fns(model, lr=1e-3):
    """Jitted inference and training step (Adam) of our model."""
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def infer(m, x):
        return m(x)

    @nnx.jit
    def step(m, o, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(m)
        o.update(m, grads)
        return loss

    return (lambda x: infer(model, x).block_until_ready()), (lambda x, y: step(model, opt, x, y).block_until_ready())


def torch_fns(model, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def infer(x):
        with torch.no_grad():
            return model(x)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        return loss

    return infer, step


def timed(fn, iters: int) -> float:
    """Median seconds of ``iters`` calls of ``fn``."""
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_grid(n: int, batch: int, rounds: int, iters: int, threads: list[int]) -> dict:
    ours, theirs = build(n)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n, n, 1)).astype(np.float32)
    y = rng.standard_normal((batch, n, n, 1)).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    xt, yt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y.transpose(0, 3, 1, 2).copy())
    o_inf, o_step = ours_fns(ours)
    t_inf, t_step = torch_fns(theirs)
    got = np.asarray(o_inf(xj)).transpose(0, 3, 1, 2)
    want = t_inf(xt).numpy()
    err = float(np.abs(got - want).max() / np.abs(want).max())
    t = time.perf_counter()
    o_step(xj, yj)  # compile
    compile_s = time.perf_counter() - t
    t_step(xt, yt)
    res = {"ours_infer": [], "ours_step": []}
    for _ in range(rounds):  # interleaved: both sides see the same load
        res["ours_infer"].append(timed(lambda: o_inf(xj), iters))
        res["ours_step"].append(timed(lambda: o_step(xj, yj), iters))
        for t in threads:
            torch.set_num_threads(t)
            res.setdefault(f"torch{t}_infer", []).append(timed(lambda: t_inf(xt), iters))
            res.setdefault(f"torch{t}_step", []).append(timed(lambda: t_step(xt, yt), iters))
    med = {k: statistics.median(v) for k, v in res.items()}
    speed = {}
    for t in threads:
        speed[f"infer_speedup_vs_torch{t}"] = round(med[f"torch{t}_infer"] / med["ours_infer"], 2)
        speed[f"step_speedup_vs_torch{t}"] = round(med[f"torch{t}_step"] / med["ours_step"], 2)
    return {"grid": n, "batch": batch, "params": operators.count_params(ours),
            "max_rel_output_difference": err, "ours_compile_step_s": round(compile_s, 2),
            **{f"{k}_ms": round(1e3 * v, 2) for k, v in med.items()}, **speed,
            "rounds_ms": {k: [round(1e3 * t, 1) for t in v] for k, v in res.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grids", type=int, nargs="+", default=[64, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[4, 2], help="one per grid")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--torch-threads", type=int, nargs="+", default=[torch.get_num_threads(), 1],
                   help="torch intra-op thread counts, each timed (default: torch's own, and 1)")
    p.add_argument("--out", default=str(HERE / "mgno_vs_torch.json"))
    args = p.parse_args(argv)
    threads = list(dict.fromkeys(args.torch_threads))
    if len(args.batch) != len(args.grids):
        p.error("--batch needs one value per grid")
    rows = []
    for n, b in zip(args.grids, args.batch):
        row = bench_grid(n, b, args.rounds, args.iters, threads)
        rows.append(row)
        line = f"{n}x{n} batch {b}: ours inference {row['ours_infer_ms']} ms, step {row['ours_step_ms']} ms"
        for t in threads:
            line += (f"; torch {t} thread(s) inference {row[f'torch{t}_infer_ms']} ms "
                     f"(x{row[f'infer_speedup_vs_torch{t}']}), step {row[f'torch{t}_step_ms']} ms "
                     f"(x{row[f'step_speedup_vs_torch{t}']})")
        print(line, flush=True)
    out = {"what": "MgNO Darcy-rough configuration, ours (JAX, jit) vs the reference rewritten in torch",
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs; shared with other jobs: medians of "
                      "interleaved rounds", "jax": jax.__version__, "torch": torch.__version__,
           "torch_threads": threads, "xla_threads": "XLA CPU default (all cores)", "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=Path(args.out).parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
