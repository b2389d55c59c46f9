#!/usr/bin/env bash
# Every figure in docs/nas.md: best-so-far after 30/50/100/200 trials (10 seeds) on the two
# GPUNet objectives and Ackley-10, batch 1 and 8, and the proposal time at 1000 observations.
# WORKERS parallel runs (one thread each). The GPUNet runs take about 25 minutes on 16 cores,
# most of it Optuna's GP sampler (2-7 s per proposal in 44 dims, hence capped at 50 trials);
# drop gp from METHODS for a quick run. The committed GPUNet results ran on a 16-core host;
# lamcts-before (the optimiser of commit d64b1f3) was run from that commit's package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
METHODS=${METHODS:-lamcts,random,evolution,tpe,gp,ngopt}
R=benchmarks/results
F=docs/figures
export OMP_NUM_THREADS=1
for func in gpunet-surrogate gpunet-det-smalldata; do
  for b in 1 8; do
    gp_budget=$([ "$b" = 1 ] && echo 50 || echo 30)
    "$PY" tools/benchmark_search.py --func $func --budget 200 --batch $b --seeds 10 \
      --report-at 30,50,100,200 --methods "$METHODS" --method-budgets gp=$gp_budget,ngopt=100 \
      --workers "$WORKERS" --json $R/search_${func//-/_}_b$b.json \
      --plot $F/search_${func//-/_}_b$b.png --markdown
  done
done
# the prior ablation (batch 1): LA-MCTS-BO without the tier priors, with its default design
# (10 points) and with the 30-point design of lamcts-before; merged into the same files
for func in gpunet-surrogate gpunet-det-smalldata; do
  for ab in 'no-priors|{"priors": "none"}' 'no-priors-init30|{"priors": "none", "n_init": 30}'; do
    "$PY" tools/benchmark_search.py --func $func --budget 200 --batch 1 --seeds 10 \
      --report-at 30,50,100,200 --methods lamcts --options "{\"lamcts\": ${ab#*|}}" \
      --label lamcts=lamcts-${ab%%|*} --workers "$WORKERS" --merge \
      --json $R/search_${func//-/_}_b1.json --markdown
  done
done
for b in 1 8; do
  "$PY" tools/benchmark_search.py --func ackley --dims 10 --budget 200 --batch $b --seeds 10 \
    --report-at 30,50,100,200 --methods lamcts,random,evolution,tpe --workers "$WORKERS" \
    --json $R/search_ackley10_b$b.json --plot $F/search_ackley10_b$b.png --markdown
done
"$PY" tools/benchmark_search.py --func gpunet-surrogate --proposal-timing 1000 --batch 1 \
  --methods lamcts --json $R/search_proposal_time_gpunet.json
"$PY" tools/benchmark_search.py --func ackley --dims 10 --proposal-timing 1000 --batch 1 \
  --methods lamcts --json $R/search_proposal_time_ackley10.json
"$PY" tools/benchmark_search.py --func ackley --dims 10 --proposal-timing 1000 --batch 8 \
  --methods lamcts --json $R/search_proposal_time_ackley10_b8.json
