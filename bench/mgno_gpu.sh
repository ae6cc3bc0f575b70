#!/usr/bin/env bash
# One command for one GPU (H200): MgNO against the torch reference at 64 and 256 (CUDA), then a
# short Darcy-rough run with the reference recipe (generate on the host cores, train ~60 s,
# evaluate); ~150 s of work; summary and logs in OUT (7 files). See bench/mgno_gpu.py.
#   bash bench/mgno_gpu.sh OUT                    # on the GPU machine, from the repository root
#   MGNO_GPU_TINY=1 bash bench/mgno_gpu.sh OUT    # CPU smoke test with tiny sizes
# Needs jax (CUDA), torch, flax, optax, xarray, scipy, orbax; not zarr or h5netcdf.
set -euo pipefail
OUT="${1:-${OUT:?give the output folder as the first argument or \$OUT}}"
shift || true
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
exec "$PY" bench/mgno_gpu.py --out "$OUT" "$@"
