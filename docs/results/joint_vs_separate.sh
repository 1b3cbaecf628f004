#!/usr/bin/env bash
# §4.4.1 with the number of coarse updates matched: RSTN's coarse net, trained jointly with the fine net
# (S/I/J 500/250/250: 1000 updates, the Table 1 run of saliency_variants.sh), against a C2F coarse net
# trained alone for the same 1000 updates. Fold 0 of the 24 phantoms, axial view, round 0 only.
# Needs saliency_variants.sh first (its 3x3-3x3 bundle). About 5 core-minutes.
# SEED=N repeats it with another training seed for both arms (RSTN trained here too, ~15 core-minutes),
# writing to docs/results/joint_vs_separate_seedN.
set -euo pipefail
BIN=$PWD/.venv/bin
WORK=${WORK:-runs/demo}
SEED=${SEED:-}
JS="$WORK/joint_vs_separate${SEED:+_seed$SEED}"
OUT=${OUT:-docs/results/joint_vs_separate${SEED:+_seed$SEED}}
seed=(); [ -n "$SEED" ] && seed=(--seed "$SEED")
mkdir -p "$JS"
if [ -n "$SEED" ]; then
  RSTN="$JS/rstn/model.rstn"
  if [ ! -f "$RSTN" ]; then
    resume=(); [ -d "$JS/rstn/axial" ] && resume=(--resume)
    OMP_NUM_THREADS=${THREADS:-1} $BIN/rstn train --data "$WORK/phantoms" --fold 0 --view axial --method rstn \
        --iterations S=500,I=250,J=250 --out "$JS/rstn" --no-progress "${seed[@]}" "${resume[@]}" > "$JS/train_rstn.log" 2>&1 &
  fi
else
  RSTN="$WORK/table1/3x3-3x3/model.rstn"
  [ -f "$RSTN" ] || { echo "run docs/results/saliency_variants.sh first ($RSTN missing)" >&2; exit 2; }
fi
if [ ! -f "$JS/c2f_coarse/model.rstn" ]; then
  resume=(); [ -d "$JS/c2f_coarse/axial" ] && resume=(--resume)
  OMP_NUM_THREADS=${THREADS:-1} $BIN/rstn train --data "$WORK/phantoms" --fold 0 --view axial --method c2f \
      --stages coarse --iterations coarse=1000 --out "$JS/c2f_coarse" --no-progress "${seed[@]}" "${resume[@]}" \
      > "$JS/train.log" 2>&1
fi
wait  # the RSTN run of a SEED replicate
$BIN/python - "$WORK" "$JS" "$RSTN" <<'PY'
import json, sys
from pathlib import Path
from rstn_core.data.folds import kfold_split
from rstn_core.data.layouts import discover_dataset
work, js, rstn = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve()
ids = discover_dataset(work / "phantoms").case_ids
(js / "models.json").write_text(json.dumps({"rstn": [str(rstn)], "c2f": [str(js / "c2f_coarse" / "model.rstn")],
                                            "split": [kfold_split(ids, 4)[0]]}))
PY
OMP_NUM_THREADS=${THREADS:-1} $BIN/rstn evaluate --data "$WORK/phantoms" --models "$JS/models.json" --methods rstn,c2f \
    --max-rounds 0 --out "$OUT" --device cpu
