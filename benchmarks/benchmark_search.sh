#!/usr/bin/env bash
# Every figure in docs/search.md: Ackley-10 (batch 1 and 8), the GPUNet surrogate and the
# proposal time at 1000 observations. About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
R=benchmarks/results
F=docs/figures
"$PY" tools/benchmark_search.py --func ackley --dims 10 --budget 200 --batch 1 --seeds 5 \
  --methods lamcts,random,evolution,tpe --json $R/search_ackley10_b1.json \
  --plot $F/search_ackley10_b1.png --markdown
"$PY" tools/benchmark_search.py --func ackley --dims 10 --budget 200 --batch 8 --seeds 5 \
  --methods lamcts,random,evolution,tpe --json $R/search_ackley10_b8.json \
  --plot $F/search_ackley10_b8.png --markdown
"$PY" tools/benchmark_search.py --func gpunet-surrogate --budget 200 --batch 8 --seeds 10 \
  --methods lamcts,random,evolution,tpe --json $R/search_gpunet_surrogate_b8.json \
  --plot $F/search_gpunet_surrogate_b8.png --markdown
"$PY" tools/benchmark_search.py --func gpunet-surrogate --budget 200 --batch 1 --seeds 10 \
  --methods lamcts,random,evolution,tpe --json $R/search_gpunet_surrogate_b1.json \
  --plot $F/search_gpunet_surrogate_b1.png --markdown
"$PY" tools/benchmark_search.py --func ackley --dims 10 --proposal-timing 1000 --batch 1 \
  --methods lamcts --json $R/search_proposal_time_ackley10.json
"$PY" tools/benchmark_search.py --func ackley --dims 10 --proposal-timing 1000 --batch 8 \
  --methods lamcts --json $R/search_proposal_time_ackley10_b8.json
"$PY" tools/benchmark_search.py --func gpunet-surrogate --proposal-timing 1000 --batch 1 \
  --methods lamcts --json $R/search_proposal_time_gpunet.json
