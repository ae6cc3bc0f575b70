"""Data-generation throughput of pde_data (samples/s), and the Darcy solver against plain spsolve.

    .venv/bin/python bench/data_generation.py [--quick] [--ns-time 0.1] [--json OUT] [--plot PNG]

Every case runs once untimed with the same shapes (JIT compilation, the Darcy pattern/ordering
cache) and is then timed over ``--repeats`` runs (best kept). Throughput covers the whole sample:
the GRF draw, the solve and the subsampling, as ``generate`` does per chunk.
Darcy is additionally timed solve-only: ``darcy.solve`` (assembly + per-sample SuperLU with the
cached ordering) against ``scipy.sparse.linalg.spsolve`` on the same, already assembled CSR
matrices (assembly excluded from the baseline, so the ratio is conservative).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pde_data import burgers, darcy, grf
from pde_data import navier_stokes as ns


def _best(fn, repeats):
    fn()  # warm-up: compilation and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def throughput(module, n, repeats, **options):
    params = module.params(**options)
    keys = grf.sample_keys(0, 0, n)
    seconds = _best(lambda: module.generate_arrays(keys, **params), repeats)
    return {"n": n, "seconds": seconds, "samples_per_s": n / seconds}


def darcy_vs_spsolve(s, n, repeats):
    a = darcy.coefficient(grf.sample_keys(1, 0, n), n, s)
    mats = [m.tocsr() for m in darcy.assemble(a)]
    rhs = np.ones((s - 2) ** 2)
    ours = _best(lambda: darcy.solve(a, 1.0), repeats)
    plain = _best(lambda: [spla.spsolve(m, rhs) for m in mats], repeats)
    u = darcy.solve(a, 1.0)
    diff = max(np.abs(u[i, 1:-1, 1:-1].ravel() - spla.spsolve(m, rhs)).max()
               for i, m in enumerate(mats))
    return {"n": n, "ours_s_per_sample": ours / n, "spsolve_s_per_sample": plain / n,
            "speedup": plain / ours, "max_abs_diff": float(diff)}


def plot(results, path):
    """Throughput bars plus one generated sample per PDE (a visual check of the data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = results["cases"]
    fig, ax = plt.subplots(2, 4, figsize=(16, 7))
    ax[0, 0].barh(list(cases), [c["samples_per_s"] for c in cases.values()])
    ax[0, 0].set_xscale("log")
    ax[0, 0].set_xlabel("samples / s")
    ax[0, 0].set_title(f"throughput ({results['machine']['jax_backend']})")
    keys = grf.sample_keys(0, 0, 1)
    d = darcy.generate_arrays(keys, **darcy.params(64))
    b = burgers.generate_arrays(keys, **burgers.params(1024, times=[0.25, 1.0]))
    w = ns.generate_arrays(keys, **ns.params(64, solve_resolution=128, times=[1.0], dt=1e-3))
    for a, img, title in ((ax[0, 1], d["a"][0], "Darcy a (64)"), (ax[0, 2], d["u"][0], "Darcy u"),
                          (ax[1, 1], w["w0"][0], "NS w0 (64 from 128)"),
                          (ax[1, 2], w["w"][0, ..., 0], "NS w, t=1")):
        im = a.imshow(img.T, origin="lower", extent=(0, 1, 0, 1))
        fig.colorbar(im, ax=a)
        a.set_title(title)
    x = np.arange(1024) / 1024
    ax[0, 3].plot(x, b["u0"][0], label="u0")
    for i, t in enumerate((0.25, 1.0)):
        ax[0, 3].plot(x, b["u"][0, :, i], label=f"u, t={t}")
    ax[0, 3].legend()
    ax[0, 3].set_title("Burgers (1024, nu=0.1)")
    ax[1, 0].axis("off")
    ax[1, 3].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--ns-time", type=float, default=0.1,
                   help="Navier-Stokes horizon (dt = 1e-4, so 1e4 * T steps at 256^2)")
    p.add_argument("--ns-n", type=int, default=None, help="Navier-Stokes batch")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--plot", default=None, help="write a PNG: throughput and one sample per PDE")
    args = p.parse_args(argv)
    q = args.quick
    r = 1 if q else args.repeats

    import jax

    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "jax_backend": jax.default_backend(),
                           "jax_devices": [str(d) for d in jax.devices()]}}
    cases = {}
    for s, n in ((64, 8 if q else 32), (128, 4 if q else 16)):
        cases[f"darcy_{s}"] = throughput(darcy, n, r, resolution=s)
        cases[f"darcy_{s}"]["solver"] = darcy_vs_spsolve(s, n, r)
    cases["burgers_1024"] = throughput(burgers, 4 if q else 32, r, resolution=1024)
    cases["burgers_1024"]["setting"] = "nu=0.1, T=1, dt=1e-3 (1000 ETDRK4 steps)"
    ns_n = args.ns_n or (1 if q else 4)
    cases["navier_stokes_64_from_256"] = throughput(
        ns, ns_n, r, resolution=64, solve_resolution=256, nu=1e-3, times=[args.ns_time])
    cases["navier_stokes_64_from_256"]["setting"] = (
        f"nu=1e-3, T={args.ns_time}, dt=1e-4 ({round(args.ns_time / 1e-4)} CN-Heun steps at 256^2)")
    results["cases"] = cases

    print(f"machine: {results['machine']}")
    print("| case | samples | s/sample | samples/s |")
    print("|---|---|---|---|")
    for name, c in cases.items():
        print(f"| {name} | {c['n']} | {c['seconds'] / c['n']:.4g} | {c['samples_per_s']:.4g} |")
    for s in (64, 128):
        d = cases[f"darcy_{s}"]["solver"]
        print(f"darcy {s}: solve {d['ours_s_per_sample'] * 1e3:.2f} ms/sample vs spsolve "
              f"{d['spsolve_s_per_sample'] * 1e3:.2f} ms/sample -> {d['speedup']:.2f}x "
              f"(max |diff| {d['max_abs_diff']:.1e})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)
    return results


if __name__ == "__main__":
    main()
