"""Our FNO (JAX) against neuraloperator 2.0's FNO (PyTorch, CPU) at one configuration, same data.

    .venv/bin/python bench/operators_vs_neuraloperator.py [--quick] [--torch-python PATH] [--json OUT]

Measures, for both: training step time (forward + backward + AdamW update, batch 20) and
inference throughput at 64x64 and 128x128, then trains both for the same number of epochs on the
same Darcy data (the FNO recipe of ``pde_data.darcy``) with the same optimiser, schedule, loss
and normalisation, and reports the relative L2 test error. Each half runs in a fresh subprocess,
one after the other (PyTorch first): the PyTorch half with the benchmark venv (``/work/benchenv``:
torch 2.13 CPU + neuraloperator 2.0), ours with this interpreter, both reading the same arrays
from an ``.npz`` file. Step times are the median of the timed steps after ``WARMUP`` untimed ones.

Configuration (Li et al. 2021 FNO-2D): width 32, 12 x 12 Fourier modes (both signs on the first
axis, 12 non-negative on the last; neuraloperator ``n_modes=(24, 22)`` keeps the same 24 x 12
block), 4 Fourier layers, linear lifting of (a, x, y), projection MLP 32-128-1, GELU, no channel
MLP, no padding; pointwise Gaussian normalisation of a and u fitted on the train split;
AdamW (lr 1e-3, weight decay 1e-4), learning rate halved after each fifth of the steps; relative L2 loss.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = "/work/benchenv/bin/python"
WIDTH, MODES, LAYERS, PROJ, BATCH = 32, 12, 4, 128, 20
WARMUP = 3  # untimed steps before timing (first executions allocate and fault in memory)


# ------------------------------------------------------------------------------------------
# shared: the data
# ------------------------------------------------------------------------------------------
def make_data(n_train: int, n_test: int, cache: Path) -> dict:
    """Darcy 64x64 (solved at 127, subsampled) train/test and a 128x128 batch for timing;
    inputs get the node-grid coordinates appended, outputs raw. Cached as one .npz."""
    path = cache / f"darcy_{n_train}_{n_test}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    import pde_data

    def arrays(seed, n, s, solve):
        ds = pde_data.darcy.generate(seed, n, s, solve_resolution=solve)
        return ds["a"].values[..., None].astype(np.float32), ds["u"].values[..., None].astype(np.float32)

    a, u = arrays(10, n_train, 64, 127)
    at, ut = arrays(11, n_test, 64, 127)
    a128, u128 = arrays(12, BATCH, 128, 255)
    out = {"x_train": a, "y_train": u, "x_test": at, "y_test": ut, "x128": a128, "y128": u128}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)
    return out


def pointwise_stats(a: np.ndarray, eps: float = 1e-6):
    """Pointwise Gaussian statistics (mean, std floored at eps) of (n, *spatial, c) arrays."""
    mean = a.mean(0)
    std = np.maximum(a.std(0), eps)
    return mean.astype(np.float32), std.astype(np.float32)


def with_coords(x: np.ndarray) -> np.ndarray:
    from pde_data.coordinates import add_coordinates

    return add_coordinates(x, periodic=False)


# ------------------------------------------------------------------------------------------
# our half (JAX)
# ------------------------------------------------------------------------------------------
def ours(npz: Path, epochs: int, steps: int) -> dict:
    """Our FNO on the arrays of ``torch_inputs`` (identical inputs for both halves), trained with
    the step ``python -m operators train`` runs: the engine's (``pde_data.runs.loop.make_step``:
    one jitted step, parameters and optimiser state donated) with the loss as a closure over
    the output normaliser's arrays."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    import operators
    from operators import losses
    from operators.config import make_schedule
    from pde_data.runs.loop import make_step, step_key

    with np.load(npz) as f:
        d = {k: f[k] for k in f.files}
    model = operators.build_model("fno", 3, 1, dim=2, rngs=nnx.Rngs(0), width=WIDTH, modes=MODES,
                                  n_layers=LAYERS, projection_hidden=PROJ, lifting_hidden=0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    n_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))
    steps_per_epoch = len(d["xtr"]) // BATCH
    tx = optax.adamw(make_schedule("step", 1e-3, epochs * steps_per_epoch), weight_decay=1e-4)

    def rel_l2_loss(ym, ys):
        def loss(model, batch, key):
            x, y = batch
            return losses.rel_l2(model(x) * ys + ym, y, False), {}
        return loss

    def forward(params, x):
        return nnx.merge(graphdef, params, rest)(x)

    train_step = {s: make_step(graphdef, tx, rel_l2_loss(jnp.asarray(d[f"ym{s}"]), jnp.asarray(d[f"ys{s}"])))
                  for s in (64, 128)}
    infer = jax.jit(forward)
    copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)
    result = {"params": n_params, "jax": jax.__version__}
    for s in (64, 128):
        x, y = jnp.asarray(d[f"xb{s}"]), jnp.asarray(d[f"yb{s}"])
        step = train_step[s]
        state = (copy(params), tx.init(params))
        for i in range(WARMUP):
            state, v, _ = step(state, rest, (x, y), step_key(0, i))
        jax.block_until_ready(v)
        times = []
        for i in range(steps):
            t = time.perf_counter()
            state, v, _ = step(state, rest, (x, y), step_key(0, i))
            jax.block_until_ready(v)
            times.append(time.perf_counter() - t)
        result[f"step_s_{s}"] = float(np.median(times))
        for _ in range(WARMUP):
            jax.block_until_ready(infer(params, x))
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            jax.block_until_ready(infer(params, x))
            times.append(time.perf_counter() - t)
        result[f"infer_samples_per_s_{s}"] = float(BATCH / np.median(times))

    ym, ys = jnp.asarray(d["ym64"]), jnp.asarray(d["ys64"])
    state = (copy(params), tx.init(params))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng([0, epoch]).permutation(len(d["xtr"]))
        for b in range(steps_per_epoch):
            idx = order[b * BATCH:(b + 1) * BATCH]
            batch = (jnp.asarray(d["xtr"][idx]), jnp.asarray(d["y_train"][idx]))
            state, v, _ = train_step[64](state, rest, batch, step_key(0, epoch * steps_per_epoch + b))
    jax.block_until_ready(v)
    result["train_s"] = time.perf_counter() - t0
    p = state[0]
    errs = []
    for b in range(0, len(d["xte"]), BATCH):
        pred = infer(p, jnp.asarray(d["xte"][b:b + BATCH])) * ys + ym
        errs.append(np.asarray(losses.rel_l2_per_sample(pred, jnp.asarray(d["y_test"][b:b + BATCH]), False)))
    result["test_rel_l2"] = float(np.concatenate(errs).mean())
    return result


def _upsample(stat: np.ndarray) -> np.ndarray:
    """Pointwise statistics of the 64 grid on the 128 grid (linear interpolation, node grids)."""
    from pde_data.coordinates import resample

    return resample(stat, (128, 128), periodic=False).astype(np.float32)


# ------------------------------------------------------------------------------------------
# the PyTorch half (run with the benchmark venv: `--torch-worker FILE`)
# ------------------------------------------------------------------------------------------
def torch_worker(npz: str, epochs: int, steps: int) -> dict:
    import torch
    from neuralop.models import FNO

    torch.manual_seed(0)
    with np.load(npz) as f:
        d = {k: f[k] for k in f.files}
    to = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)))

    model = FNO(n_modes=(2 * MODES, 2 * MODES - 2), in_channels=3, out_channels=1, hidden_channels=WIDTH,
                n_layers=LAYERS, lifting_channel_ratio=0, projection_channel_ratio=PROJ / WIDTH,
                positional_embedding=None, use_channel_mlp=False, fno_skip="linear", domain_padding=None)
    n_params = int(sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()))
    steps_per_epoch = len(d["xtr"]) // BATCH

    def rel_l2(pred, true):
        # trapezoid quadrature on the node grid, as operators.losses.rel_l2(periodic=False)
        n = pred.shape[-1]
        w = torch.ones(n, dtype=pred.dtype)
        w[0] = w[-1] = 0.5
        w2 = w[:, None] * w[None, :]
        num = ((pred - true) ** 2 * w2).sum(dim=(1, 2, 3))
        den = (true**2 * w2).sum(dim=(1, 2, 3))
        return torch.sqrt(num / den).mean()

    def make_opt(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, round(epochs * steps_per_epoch / 5)), gamma=0.5)
        return opt, sched

    result = {"params": n_params, "torch": torch.__version__, "threads": torch.get_num_threads()}
    for s in (64, 128):
        x, y = to(d[f"xb{s}"]), to(d[f"yb{s}"])
        ym, ys = to(d[f"ym{s}"][None]), to(d[f"ys{s}"][None])
        opt, _ = make_opt(model)
        state = copy.deepcopy(model.state_dict())

        def step(opt=opt, x=x, y=y, ym=ym, ys=ys):
            opt.zero_grad(set_to_none=True)
            loss = rel_l2(model(x) * ys + ym, y)
            loss.backward()
            opt.step()
            return loss

        for _ in range(WARMUP):
            step()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        result[f"step_s_{s}"] = float(np.median(times))
        model.load_state_dict(state)
        with torch.no_grad():
            for _ in range(WARMUP):
                model(x)
            times = []
            for _ in range(steps):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        result[f"infer_samples_per_s_{s}"] = float(BATCH / np.median(times))

    xtr, ytr, xte, yte = to(d["xtr"]), to(d["y_train"]), to(d["xte"]), to(d["y_test"])
    ym, ys = to(d["ym64"][None]), to(d["ys64"][None])
    opt, sched = make_opt(model)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(len(xtr)))
        for b in range(steps_per_epoch):
            idx = order[b * BATCH:(b + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            loss = rel_l2(model(xtr[idx]) * ys + ym, ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
    result["train_s"] = time.perf_counter() - t0
    errs = []
    with torch.no_grad():
        for b in range(0, len(xte), BATCH):
            pred = model(xte[b:b + BATCH]) * ys + ym
            true = yte[b:b + BATCH]
            for i in range(len(true)):
                errs.append(float(rel_l2(pred[i:i + 1], true[i:i + 1])))
    result["test_rel_l2"] = float(np.mean(errs))
    return result


def torch_inputs(data: dict, path: Path) -> None:
    """The arrays the PyTorch half needs, normalised exactly as ours (written once)."""
    xm, xs = pointwise_stats(data["x_train"])
    ym, ys = pointwise_stats(data["y_train"])

    def enc(x, m, s):
        z = with_coords(x)
        z[..., :1] = (x - m) / s
        return z

    np.savez(path, xtr=enc(data["x_train"], xm, xs), y_train=data["y_train"],
             xte=enc(data["x_test"], xm, xs), y_test=data["y_test"],
             xb64=enc(data["x_train"][:BATCH], xm, xs), yb64=data["y_train"][:BATCH],
             xb128=enc(data["x128"], _upsample(xm), _upsample(xs)), yb128=data["y128"],
             ym64=ym, ys64=ys, ym128=_upsample(ym), ys128=_upsample(ys))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="200 train / 50 test samples, 3 epochs, 5 timed steps")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    p.add_argument("--torch-python", default=TORCH_PYTHON)
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "opbayes_bench"))
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--torch-worker", help=argparse.SUPPRESS)
    p.add_argument("--ours-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.steps = 200, 50, 3, 5
    if args.torch_worker:
        print(json.dumps(torch_worker(args.torch_worker, args.epochs, args.steps)))
        return 0
    if args.ours_worker:
        print(json.dumps(ours(args.ours_worker, args.epochs, args.steps)))
        return 0

    cache = Path(args.cache)
    data = make_data(args.n_train, args.n_test, cache)
    npz = cache / f"torch_{args.n_train}_{args.n_test}.npz"
    torch_inputs(data, npz)
    load = os.getloadavg()
    # both halves in fresh processes, one after the other, under the same conditions
    results = []
    for python, flag in ((args.torch_python, "--torch-worker"), (sys.executable, "--ours-worker")):
        proc = subprocess.run([python, __file__, flag, str(npz), "--epochs", str(args.epochs),
                               "--steps", str(args.steps)], check=False, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    theirs, mine = results
    res = {"config": {"width": WIDTH, "modes": MODES, "layers": LAYERS, "batch": BATCH, "epochs": args.epochs,
                      "n_train": args.n_train, "n_test": args.n_test, "cpu_count": os.cpu_count(),
                      "warmup_steps": WARMUP, "loadavg_at_start": load, "loadavg_at_end": os.getloadavg()},
           "ours": mine, "neuraloperator": theirs}
    for s in (64, 128):
        res[f"train_step_speedup_{s}"] = theirs[f"step_s_{s}"] / mine[f"step_s_{s}"]
        res[f"inference_speedup_{s}"] = mine[f"infer_samples_per_s_{s}"] / theirs[f"infer_samples_per_s_{s}"]
    res["train_loop_speedup_64"] = theirs["train_s"] / mine["train_s"]  # the epochs at 64, data feeding included
    res["test_rel_l2_ratio_ours_over_theirs"] = mine["test_rel_l2"] / theirs["test_rel_l2"]
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
