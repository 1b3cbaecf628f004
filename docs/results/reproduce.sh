#!/usr/bin/env bash
# Reproduce the "longer training, fold 0" and "real example" parts of docs/results/phantoms.md (the 4-fold CV,
# Table 1 and joint-vs-separate runs have their own scripts beside this one): the demo bundles (fold 0 of the 24-phantom set, all views)
# evaluated on the 6 held-out phantoms, RSTN vs C2F vs oracle, and both models on the real example.
# CPU, about 90 minutes on 2 cores. Run from the repository root after `make setup`.
set -euo pipefail
BIN=.venv/bin
WORK=${WORK:-runs/demo}
# 1. phantoms + training (skips what is already there; resumes interrupted training)
$BIN/rstn demo-train --work "$WORK" --iterations S=500,I=250,J=250,coarse=500,fine=500 --no-progress
# 1b. continued training from the stage-1 bundles (what the committed demo bundles are)
for m in rstn c2f; do cp "$WORK/$m/model.rstn" "$WORK/${m}_stage1.rstn"; done
$BIN/rstn train --data "$WORK/phantoms" --fold 0 --view all --method rstn --init "$WORK/rstn_stage1.rstn" \
    --stages J --iterations J=900 --out "$WORK/cont/rstn" --no-progress
$BIN/rstn train --data "$WORK/phantoms" --fold 0 --view all --method c2f --init "$WORK/c2f_stage1.rstn" \
    --iterations coarse=800,fine=800 --out "$WORK/cont/c2f" --no-progress
# 2. fold 0 of 4: the six held-out cases
$BIN/python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from rstn_core.data.folds import kfold_split
from rstn_core.data.layouts import discover_dataset
work = Path(sys.argv[1]).resolve()
ids = discover_dataset(work / "phantoms").case_ids
mapping = {"rstn": [str(work / "cont" / "rstn" / "model.rstn")], "c2f": [str(work / "cont" / "c2f" / "model.rstn")],
           "split": [kfold_split(ids, 4)[0]]}
(work / "fold0_models.json").write_text(json.dumps(mapping, indent=2))
PY
$BIN/rstn evaluate --data "$WORK/phantoms" --models "$WORK/fold0_models.json" --methods rstn,c2f,oracle \
    --out docs/results/phantoms_fold0 --device cpu
# 3. the real example (TotalSegmentator CT, pancreas = 7), when it is beside the checkout
REAL=../shared/data/totalseg_example
if [ -f "$REAL/ct.nii.gz" ]; then
  for m in rstn c2f; do
    $BIN/rstn predict -i "$REAL/ct.nii.gz" -o "$WORK/real_$m.nii.gz" --model "$WORK/cont/$m/model.rstn" \
        --label "$REAL/labels.nii.gz" --organ 7 --overwrite --no-progress 2>&1 | tee "docs/results/real_example_$m.txt"
  done
  # the same RSTN with boxes from the true pancreas: does the fine stage respond at all?
  $BIN/rstn predict -i "$REAL/ct.nii.gz" -o "$WORK/real_oracle.nii.gz" --model "$WORK/cont/rstn/model.rstn" \
      --label "$REAL/labels.nii.gz" --organ 7 --method oracle --overwrite --no-progress 2>&1 \
      | tee docs/results/real_example_oracle.txt
fi
