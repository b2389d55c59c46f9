#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Every path and argument is passed on quoted, so paths with spaces work.
if [ "$#" -lt 3 ]; then
    echo "usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]" >&2
    echo "  GPUS: processes per node (CPU-only machines: gloo processes)" >&2
    exit 2
fi
CONFIG="$1"
CHECKPOINT="$2"
GPUS="$3"
case "$GPUS" in
    ''|*[!0-9]*|0) echo "GPUS: got '$GPUS'; allowed: a positive integer (processes per node)" >&2; exit 2 ;;
esac
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
PORT="${PORT:-29500}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
PYTHON="${PYTHON:-python}"
TOOLS="$(dirname "$0")"

PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
