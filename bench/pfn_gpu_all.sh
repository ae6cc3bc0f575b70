#!/usr/bin/env bash
# One-shot GPU session for the PFN part: train the three shipped checkpoints side by side
# within a budget (bench/pfn_gpu_train.py), then evaluate them (python -m pfn evaluate, and
# bench/pfn_tabular.py) in parallel. Usage: bash bench/pfn_gpu_all.sh OUTDIR [BUDGET_S] [DEADLINE_S]
# (bench/gpu_all.sh trains all five Bayesian models, PFNs and neural processes, at their shipped
# sizes in one budget and compares them with the shipped ones.)
set -u
OUTDIR=$1; BUDGET=${2:-200}; DEADLINE=${3:-380}
export PYTHONUNBUFFERED=1 OPBAYES_PROGRESS=0 XLA_PYTHON_CLIENT_MEM_FRACTION=0.25
PY=${PY:-python3}
LOG=$OUTDIR/log.txt
mkdir -p "$OUTDIR"
{ nvidia-smi -L; $PY -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"; } >>"$LOG" 2>&1
$PY bench/pfn_gpu_train.py --budget "$BUDGET" --deadline "$DEADLINE" --parallel --runs /tmp/pfn_runs --dest "$OUTDIR" >>"$LOG" 2>&1
echo "== training done at $SECONDS s" >>"$LOG"
$PY -m pfn evaluate --model "$OUTDIR/gp-rbf" --n-datasets 256 --json > /tmp/ev_rbf.json 2>/tmp/ev_rbf.err &
$PY -m pfn evaluate --model "$OUTDIR/gp-hyper" --n-datasets 256 --json > /tmp/ev_hyper.json 2>/tmp/ev_hyper.err &
$PY bench/pfn_tabular.py --model "$OUTDIR/tabular" --out /tmp/tab.json > /tmp/tab.md 2>/tmp/tab.err &
wait
for f in ev_rbf.json ev_hyper.json tab.md; do echo "== $f" >>"$LOG"; cat /tmp/$f >>"$LOG"; done
for f in ev_rbf.err ev_hyper.err tab.err; do echo "== $f (tail)" >>"$LOG"; tail -5 /tmp/$f >>"$LOG"; done
echo "== all done at $SECONDS s" >>"$LOG"
