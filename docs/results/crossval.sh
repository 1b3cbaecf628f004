#!/usr/bin/env bash
# 4-fold cross-validation of RSTN vs C2F vs oracle on the 24-phantom set (docs/results/phantoms.md).
# Every fold is trained with the demo's stage-1 recipe (cpu-small; RSTN S/I/J 500/250/250, C2F
# coarse/fine 500/500 per view, all three views), then all 24 cases are evaluated, each by the
# bundle of the fold that held it out. Run from the repository root after `make setup`; the
# phantoms come from `rstn demo-train` (step 1 of reproduce.sh) or `rstn phantoms --n 24 --seed 0`.
# CPU: about 40 core-minutes of training per fold, run two jobs at a time with one thread each
# (~80 minutes on 2 cores), then ~25 minutes of evaluation. A fold whose model.rstn exists is skipped,
# so an interrupted run picks up where it stopped.
set -euo pipefail
BIN=$PWD/.venv/bin
WORK=${WORK:-runs/demo}
CV="$WORK/cv"
OUT=${OUT:-docs/results/phantoms_cv4}
mkdir -p "$CV"
[ -d "$WORK/phantoms" ] || $BIN/rstn phantoms --n 24 --seed 0 --out "$WORK/phantoms"

train_one() {  # method fold
  local m=$1 k=$2 out="$CV/$1/fold$2" its
  [ -f "$out/model.rstn" ] && { echo "skip $m fold $k (done)"; return 0; }
  if [ "$m" = rstn ]; then its=S=500,I=250,J=250; else its=coarse=500,fine=500; fi
  local resume=(); [ -d "$out/axial" ] && resume=(--resume)
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $BIN/rstn train --data "$WORK/phantoms" --fold "$k" --view all \
      --method "$m" --iterations "$its" --out "$out" --no-progress "${resume[@]}" > "$CV/${m}_fold$k.log" 2>&1
  echo "done $m fold $k"
}
export -f train_one; export BIN WORK CV
# longest jobs first, two at a time
printf '%s\n' "rstn 0" "rstn 1" "rstn 2" "rstn 3" "c2f 0" "c2f 1" "c2f 2" "c2f 3" |
  xargs -P 2 -L 1 bash -c 'train_one $0 $1'

$BIN/python - "$CV" <<'PY'
import json, sys
from pathlib import Path
cv = Path(sys.argv[1]).resolve()
mapping = {m: [str(cv / m / f"fold{k}" / "model.rstn") for k in range(4)] for m in ("rstn", "c2f")}
(cv / "models.json").write_text(json.dumps(mapping, indent=2))
PY
$BIN/rstn evaluate --data "$WORK/phantoms" --models "$CV/models.json" --methods rstn,c2f,oracle \
    --out "$OUT" --device cpu
