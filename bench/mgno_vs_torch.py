"""Speed of our MgNO against the reference PyTorch MgNO, same configuration, same weights, side by side.

The reference is the torch rewrite of xlliu2017/MgNO's models (tests/operators/mgno_torch_reference.py;
needs the ``reference`` extra: ``pip install -e '.[reference]'``). For each grid, the Darcy-rough
configuration (4 layers x 24 channels, 6 levels, kernel-4 prolongations) is built in torch, its
weights copied into ours, and the outputs checked to agree; then, interleaved over ``--rounds``
rounds (the machine may be shared), each side times ``--iters`` inference passes and ``--iters``
training steps (forward, MSE loss, backward, Adam update; ours the training engine's jitted step,
``pde_data.runs.loop.make_step``), torch at each of ``--torch-threads`` (its default and 1: on a
loaded machine its OpenMP threads contend). Reports medians per call (wall time, and on the CPU
the process CPU time: the work done, which a shared machine's waits do not inflate) and the
ratios torch / ours (> 1: ours faster). ``--device cuda`` puts torch on the GPU (ours runs on
JAX's default backend). Writes bench/mgno_vs_torch.json (``--out``).

    .venv/bin/python bench/mgno_vs_torch.py [--grids 64 256] [--batch 4 2] [--rounds 5] [--iters 3] [--device cuda]
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
from pde_data.runs.loop import make_step


def build(n: int, seed: int = 0, device: str = "cpu"):
    """The reference Darcy-rough MgNO at grid ``n`` (on torch ``device``) and ours with its weights."""
    torch.manual_seed(seed)
    theirs = ref.MgNO_DC(4, 24, 1, [[1, 0]] * 5 + [[2, 0]], [4] * 5)
    ours = operators.build_model("mgno", 1, 1, rngs=nnx.Rngs(seed), grid_size=n, prolongation_kernel=4)
    ref.copy_into(ours, theirs)
    return ours, theirs.to(device)


def ours_fns(model, lr=1e-3):
    """Our inference and training step (Adam) as the training engine runs them: the model split
    once into a graph and its state, ``jax.jit`` over the state (``pde_data.runs.loop.make_step``,
    state donated), so no Python graph traversal per call."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(lr)
    state = [(params, tx.init(params))]
    infer = jax.jit(lambda p, r, x: nnx.merge(graphdef, p, r)(x))
    step = make_step(graphdef, tx, lambda m, batch, key: (jnp.mean((m(batch[0]) - batch[1]) ** 2), {}))
    key = jax.random.key(0)

    def run_step(x, y):
        state[0], loss, _ = step(state[0], rest, (x, y), key)
        return loss.block_until_ready()

    return (lambda x: infer(state[0][0], rest, x).block_until_ready()), run_step


def torch_fns(model, lr=1e-3):
    """Eager inference and training step (Adam) of the torch model, synchronised on CUDA."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)

    def infer(x):
        with torch.no_grad():
            out = model(x)
        sync()
        return out

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        sync()
        return loss

    return infer, step


def timed(fn, iters: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads) of ``iters`` calls of
    ``fn``: on a shared machine the CPU time is the work done, whatever the wait for a core."""
    wall, cpu = [], []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def bench_grid(n: int, batch: int, rounds: int, iters: int, threads: list[int], device: str = "cpu") -> dict:
    ours, theirs = build(n, device=device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n, n, 1)).astype(np.float32)
    y = rng.standard_normal((batch, n, n, 1)).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    xt, yt = (torch.from_numpy(v.transpose(0, 3, 1, 2).copy()).to(device) for v in (x, y))
    o_inf, o_step = ours_fns(ours)
    t_inf, t_step = torch_fns(theirs)
    got = np.asarray(o_inf(xj)).transpose(0, 3, 1, 2)
    want = t_inf(xt).cpu().numpy()
    err = float(np.abs(got - want).max() / np.abs(want).max())
    t = time.perf_counter()
    o_step(xj, yj)  # compile
    compile_s = time.perf_counter() - t
    t_step(xt, yt)
    res, cpu = {"ours_infer": [], "ours_step": []}, {}

    def record(name, fn):
        wall_s, cpu_s = timed(fn, iters)
        res.setdefault(name, []).append(wall_s)
        cpu.setdefault(name, []).append(cpu_s)

    for _ in range(rounds):  # interleaved: both sides see the same load
        record("ours_infer", lambda: o_inf(xj))
        record("ours_step", lambda: o_step(xj, yj))
        for t in threads:
            torch.set_num_threads(t)
            record(f"torch{t}_infer", lambda: t_inf(xt))
            record(f"torch{t}_step", lambda: t_step(xt, yt))
    med = {k: statistics.median(v) for k, v in res.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    speed = {}
    for t in threads:
        for what in ("infer", "step"):
            speed[f"{what}_speedup_vs_torch{t}"] = round(med[f"torch{t}_{what}"] / med[f"ours_{what}"], 2)
            if device == "cpu":
                speed[f"{what}_cpu_time_ratio_vs_torch{t}"] = round(
                    med_cpu[f"torch{t}_{what}"] / med_cpu[f"ours_{what}"], 2)
    return {"grid": n, "batch": batch, "params": operators.count_params(ours),
            "max_rel_output_difference": err, "ours_compile_step_s": round(compile_s, 2),
            **{f"{k}_ms": round(1e3 * v, 2) for k, v in med.items()},
            **({f"{k}_cpu_ms": round(1e3 * v, 2) for k, v in med_cpu.items()} if device == "cpu" else {}),
            **speed,
            "rounds_ms": {k: [round(1e3 * t, 1) for t in v] for k, v in res.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grids", type=int, nargs="+", default=[64, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[4, 2], help="one per grid")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--torch-threads", type=int, nargs="+", default=[torch.get_num_threads(), 1],
                   help="torch intra-op thread counts, each timed (default: torch's own, and 1)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="torch's device (auto: cuda when available); ours runs on JAX's default backend")
    p.add_argument("--out", default=str(HERE / "mgno_vs_torch.json"))
    args = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = list(dict.fromkeys(args.torch_threads)) if device == "cpu" else [torch.get_num_threads()]
    if len(args.batch) != len(args.grids):
        p.error("--batch needs one value per grid")
    rows = []
    for n, b in zip(args.grids, args.batch):
        row = bench_grid(n, b, args.rounds, args.iters, threads, device)
        rows.append(row)
        line = f"{n}x{n} batch {b}: ours inference {row['ours_infer_ms']} ms, step {row['ours_step_ms']} ms"
        for t in threads:
            line += (f"; torch {t} thread(s) inference {row[f'torch{t}_infer_ms']} ms "
                     f"(x{row[f'infer_speedup_vs_torch{t}']}), step {row[f'torch{t}_step_ms']} ms "
                     f"(x{row[f'step_speedup_vs_torch{t}']})")
        print(line, flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = {"what": "MgNO Darcy-rough configuration, ours (JAX, jit) vs the reference rewritten in torch",
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs; shared with other jobs: medians of "
                      "interleaved rounds", "load_average_at_end": load,
           "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
           "torch": torch.__version__, "torch_device": device if device == "cpu" else torch.cuda.get_device_name(),
           "torch_threads": threads, "xla_threads": "XLA CPU default (all cores)", "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=Path(args.out).parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
