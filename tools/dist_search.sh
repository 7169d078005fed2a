#!/usr/bin/env bash
# Run N search workers of tools/search.py on one Optuna storage and wait for all of them:
#   tools/dist_search.sh CONFIG N [search.py options]
# e.g. tools/dist_search.sh configs/search/mcts_kd_fmnist.py 4 --storage sqlite:///s.db
# All workers get the same options, so they share the work dir and the storage (default:
# WORK_DIR/search.journal) and split the study's n_trials between them. Each worker gets
# OMP_NUM_THREADS=cores/N (unless set) and, on a GPU machine, GPUS_PER_WORKER GPUs (default
# 1; set it to search.trial_gpus for multi-GPU trials), round robin over
# CUDA_VISIBLE_DEVICES or all GPUs. When all workers are done, the report is rewritten
# from the storage. Ctrl-C stops every worker; their running trials are re-enqueued and
# `tools/dist_search.sh CONFIG N ... --resume` continues.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG N [search.py options]" >&2
    exit 2
fi
CONFIG=$1
N=$2
shift 2
PYTHON=${PYTHON:-python}
SEARCH="$(dirname "$0")/search.py"
export PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-}

if [ -z "${OMP_NUM_THREADS:-}" ]; then
    CORES=$(nproc 2>/dev/null || echo 1)
    THREADS=$(( CORES / N ))
    export OMP_NUM_THREADS=$(( THREADS > 0 ? THREADS : 1 ))
fi
GPU_LIST=()
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    IFS=',' read -r -a GPU_LIST <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi > /dev/null 2>&1; then
    NGPU=$(nvidia-smi -L 2> /dev/null | wc -l)
    for (( g = 0; g < NGPU; g++ )); do GPU_LIST+=("$g"); done
fi

# Create the study (and an RDB's schema) once, so that the workers only join it.
"$PYTHON" "$SEARCH" "$CONFIG" "$@" --report-only > /dev/null || exit 1

PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null; done
}
trap stop_all INT TERM

PER_WORKER=${GPUS_PER_WORKER:-1}
for (( i = 0; i < N; i++ )); do
    if [ ${#GPU_LIST[@]} -gt 0 ]; then
        MINE=()
        for (( g = 0; g < PER_WORKER; g++ )); do
            MINE+=("${GPU_LIST[$(( (i * PER_WORKER + g) % ${#GPU_LIST[@]} ))]}")
        done
        export CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${MINE[*]}")
    fi
    "$PYTHON" -u "$SEARCH" "$CONFIG" "$@" > >(sed -u "s/^/[worker $i] /") 2>&1 &
    PIDS+=($!)
done

STATUS=0
for pid in "${PIDS[@]}"; do
    wait "$pid" || STATUS=1
done
"$PYTHON" "$SEARCH" "$CONFIG" "$@" --report-only || STATUS=1
exit $STATUS
