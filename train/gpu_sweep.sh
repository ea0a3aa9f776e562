#!/bin/bash
# en-de variants of train/configs/en-de-2l-gpu.yaml side by side on one GPU, then each export scored
# on the CPU (val beam 5 at length penalty 1.0 and 1.5; the test splits at val's better one), and the
# best on val packed into $OUT (weights split in three, logs, metrics, scores).
#
#   bash train/gpu_sweep.sh round1     # a-base b-d4 c-d5 d-v6k-d4 e-d4-s2 f-b5k-d4 (README "Every run")
#   bash train/gpu_sweep.sh round2     # g-v4k-d4 h-v5k-d4 i-v6k-d4-s2
#
# MIN: wall-clock minutes a run may train (a safety cap; round 2 hit it); EVAL_TIMEOUT: seconds per
# run's scoring; DATA: the Multi30k folder; EXTRA: overrides for every run (a dry run on a CPU:
# EXTRA="training.device=auto training.max_steps=6 ..."); PY: the python to use.
set -u
ROUND=${1:?round1 or round2}
OUT=${OUT:-/tmp/sweep-out}; mkdir -p "$OUT"
PY=${PY:-python3}
MIN=${MIN:-6}
EXTRA=${EXTRA:-}
EVAL_TIMEOUT=${EVAL_TIMEOUT:-150}
export GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
cfg=train/configs/en-de-2l-gpu.yaml
data=${DATA:-${S2S_MULTI30K:-../shared/data/multi30k}}
declare -A V=(
  [a-base]="training.max_steps=4000"
  [b-d4]="training.max_steps=5000 model.dropout=0.4 model.emb_dropout=0.3"
  [c-d5]="training.max_steps=5000 model.dropout=0.5 model.emb_dropout=0.3"
  [d-v6k-d4]="training.max_steps=5000 data.vocab_size=6000 model.dropout=0.4 model.emb_dropout=0.3"
  [e-d4-s2]="training.max_steps=5000 model.dropout=0.4 model.emb_dropout=0.3 training.seed=2"
  [f-b5k-d4]="training.max_steps=5000 training.batch_tokens=5000 model.dropout=0.4 model.emb_dropout=0.3"
  [g-v4k-d4]="training.max_steps=4000 data.vocab_size=4000 model.dropout=0.4 model.emb_dropout=0.3"
  [h-v5k-d4]="training.max_steps=4000 data.vocab_size=5000 model.dropout=0.4 model.emb_dropout=0.3"
  [i-v6k-d4-s2]="training.max_steps=4000 data.vocab_size=6000 model.dropout=0.4 model.emb_dropout=0.3 training.seed=2"
)
case $ROUND in
  round1) names=(a-base b-d4 c-d5 d-v6k-d4 e-d4-s2 f-b5k-d4) ;;
  round2) names=(g-v4k-d4 h-v5k-d4 i-v6k-d4-s2) ;;
  *) echo "unknown round $ROUND (round1, round2)" >&2; exit 2 ;;
esac
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/sweep.log"; }
log "start; $(nproc) cpus"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee -a "$OUT/sweep.log"
# checkpoints (137 MB each, every 200 steps, six runs) go to RAM when there is room
# (the winner is chosen among every run under runs/, so round 2 competes with round 1)
if [ ! -e runs ] && [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt 20000000 ] 2>/dev/null; then
  mkdir -p /dev/shm/runs && ln -s /dev/shm/runs runs && log "runs/ in /dev/shm"
fi
mkdir -p runs
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv 2>&1 | tail -1 | tee -a "$OUT/sweep.log"
( sleep 90; nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >> "$OUT/sweep.log" 2>&1 ) &
for n in "${names[@]}"; do
  $PY -m train.train --config $cfg --out-dir runs/gpu-$n \
    --set data.path=$data training.max_minutes=$MIN ${V[$n]} $EXTRA > runs/gpu-$n.log 2>&1 &
done
wait
log "training done"
for n in "${names[@]}"; do
  log "$n: $(grep -E '^step [0-9]+:' runs/gpu-$n.log | tail -n 6 | tr '\n' ' ') $(grep -c Traceback runs/gpu-$n.log) tracebacks"
  grep '"tokens_per_s"' runs/gpu-$n/metrics.jsonl 2>/dev/null | tail -n 1 >> "$OUT/sweep.log"
done
score() {  # run split alpha -> one JSON line
  $PY -m train.evaluate --model runs/gpu-$1/model --split $2 --data $data --length-penalty $3 --json \
    2>>runs/gpu-$1.log | $PY -c "import json,sys; r=json.loads(sys.stdin.read()); print(json.dumps({'run': '$1', 'split': r['split'], 'alpha': r['length_penalty'], 'bleu': r['bleu'], 'chrf': r['chrf'], 'seconds': r['seconds']}))"
}
evaluate_run() {
  local n=$1 best
  [ -f runs/gpu-$n/model/model.safetensors ] || return
  score $n val 1.0 > runs/gpu-$n/val.jsonl; score $n val 1.5 >> runs/gpu-$n/val.jsonl
  best=$($PY -c "import json; rows=[json.loads(l) for l in open('runs/gpu-$n/val.jsonl')]; print(max(rows, key=lambda r: (r['bleu'], -r['alpha']))['alpha'])")
  cat runs/gpu-$n/val.jsonl > runs/gpu-$n/eval.jsonl
  score $n test_2016_flickr $best >> runs/gpu-$n/eval.jsonl; score $n test_2017_flickr $best >> runs/gpu-$n/eval.jsonl
}
export -f score evaluate_run; export PY data
for n in "${names[@]}"; do timeout $EVAL_TIMEOUT bash -c "evaluate_run $n" & done
wait
cat runs/gpu-*/eval.jsonl > "$OUT/eval.jsonl" 2>/dev/null; cat "$OUT/eval.jsonl" | tee -a "$OUT/sweep.log"
winner=$($PY -c "
import json
rows = [json.loads(l) for l in open('$OUT/eval.jsonl') if l.strip()]
val = [r for r in rows if r['split'] == 'val']
print(max(val, key=lambda r: r['bleu'])['run'] if val else '')")
log "winner on val: ${winner:-none}"
tar czf "$OUT/runs.tgz" runs/gpu-*.log runs/gpu-*/metrics.jsonl runs/gpu-*/curves.png runs/gpu-*/*.jsonl \
  $( [ -n "$winner" ] && echo runs/gpu-$winner/data runs/gpu-$winner/model/config.json runs/gpu-$winner/model/*.model ) 2>>"$OUT/sweep.log"
if [ -n "$winner" ]; then
  split -n 3 -d runs/gpu-$winner/model/model.safetensors "$OUT/weights.part"
  sha256sum runs/gpu-$winner/model/model.safetensors | tee -a "$OUT/sweep.log"
fi
log "end"
