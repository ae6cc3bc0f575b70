#!/usr/bin/env bash
# Train, evaluate and export every shipped Bayesian model (PFNs gp-rbf, gp-hyper, tabular;
# neural processes anp-rbf, mpanp-rbf) within one wall-clock budget, side by side, with the
# README's commands (shipped sizes; steps scaled to the budget), then print which new model
# beats the shipped one. Usage:
#   bash bench/gpu_all.sh OUT [BUDGET_S]          # default 720 s: 12 minutes on one GPU
#   bash bench/gpu_all.sh OUT 60 --pfn-steps 3 --np-steps 3 --quick   # CPU smoke run
# Writes OUT/runs/NAME, OUT/exports/NAME (shipped-model format), OUT/logs/, OUT/summary.json;
# exit status 1 if any model failed. See bench/gpu_all.py for the details.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n 2,9p "$0" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONUNBUFFERED=1 OPBAYES_PROGRESS=0
exec "${PY:-python3}" "$HERE/gpu_all.py" "$@"
