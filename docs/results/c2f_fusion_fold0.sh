#!/usr/bin/env bash
# Issue 13: the committed demo C2F bundle re-evaluated on fold 0 of the 24-phantom set with its release's
# fusion (majority vote at round 0, the mean of the view probabilities in the fine rounds: now the default).
# The "before" numbers (a vote in every round) are those of phantoms_fold0/, made by reproduce.sh with the
# old code. CPU, one thread: ~3 min per case on an idle core (6-12 min on the shared 2-core machine).
# Run from the repository root after `make setup`.
set -euo pipefail
BIN=$PWD/.venv/bin
WORK=${WORK:-runs/fidelity}
OUT=${OUT:-docs/results/phantoms_fold0_c2f_fusion}
mkdir -p "$WORK"
[ -d "$WORK/phantoms" ] || $BIN/rstn phantoms --n 24 --seed 0 --out "$WORK/phantoms"
$BIN/python - "$WORK" "$PWD" <<'PY'
import json, sys
from pathlib import Path
from rstn_core.data.folds import kfold_split
from rstn_core.data.layouts import discover_dataset
work, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
ids = discover_dataset(work / "phantoms").case_ids
mapping = {"c2f": [str(repo / "rstn_core" / "demo" / "c2f.rstn")], "split": [kfold_split(ids, 4)[0]]}
(work / "fold0_c2f.json").write_text(json.dumps(mapping, indent=2))
PY
OMP_NUM_THREADS=1 $BIN/rstn evaluate --data "$WORK/phantoms" --models "$WORK/fold0_c2f.json" --methods c2f \
    --out "$OUT" --device cpu --precision fp32
