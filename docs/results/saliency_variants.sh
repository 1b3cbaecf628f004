#!/usr/bin/env bash
# Table 1 on phantoms: the saliency transformation variants 1x1 / 3x3 / 5x5 / two 3x3, RSTN, cpu-small,
# fold 0 of the 24-phantom set, AXIAL VIEW ONLY (three views for four variants did not fit this 2-core
# machine's time), S/I/J 500/250/250 each, then the 6 held-out cases with the axial model alone.
# About 9 core-minutes of training per variant plus ~1 minute of evaluation. Run from the repository root
# after `make setup` and step 1 of reproduce.sh (which writes the phantoms). Finished variants are skipped.
set -euo pipefail
BIN=$PWD/.venv/bin
WORK=${WORK:-runs/demo}
T1="$WORK/table1"
OUT=${OUT:-docs/results/saliency_variants}
mkdir -p "$T1" "$OUT"
$BIN/python - "$WORK" "$T1" <<'PY'
import json, sys
from pathlib import Path
from rstn_core.data.folds import kfold_split
from rstn_core.data.layouts import discover_dataset
work, t1 = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
ids = discover_dataset(work / "phantoms").case_ids
for v in ("1x1", "3x3", "5x5", "3x3-3x3"):
    (t1 / f"{v}.json").write_text(json.dumps({"rstn": [str(t1 / v / "model.rstn")], "split": [kfold_split(ids, 4)[0]]}))
PY
for v in 1x1 3x3 5x5 3x3-3x3; do
  run="$T1/$v"
  if [ ! -f "$run/model.rstn" ]; then
    resume=(); [ -d "$run/axial" ] && resume=(--resume)
    OMP_NUM_THREADS=${THREADS:-1} $BIN/rstn train --data "$WORK/phantoms" --fold 0 --view axial --method rstn \
        --saliency "$v" --iterations S=500,I=250,J=250 --out "$run" --no-progress "${resume[@]}" > "$T1/$v.log" 2>&1
  fi
  OMP_NUM_THREADS=${THREADS:-1} $BIN/rstn evaluate --data "$WORK/phantoms" --models "$T1/$v.json" --methods rstn \
      --out "$T1/eval_$v" --device cpu > "$T1/eval_$v.log" 2>&1
  cp "$T1/eval_$v/per_case.csv" "$OUT/per_case_$v.csv"
done
$BIN/python - "$T1" "$OUT" <<'PY'
import json, sys
from pathlib import Path
t1, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = ["| saliency g | DSC mean ± std (%) | max | min | coarse (round 0) | inter-round DSC r=5 |",
        "| --- | --- | --- | --- | --- | --- |"]
for v in ("1x1", "3x3", "5x5", "3x3-3x3"):
    s = json.loads((t1 / f"eval_{v}" / "results.json").read_text())["summary"]
    d, c = s["dsc"]["rstn"], s["coarse_vs_fine"]["rstn"]["coarse"]
    inter = s["inter_round_dsc"]["rstn"].get("5")
    rows.append(f"| {v} | {100*d['mean']:.2f} ± {100*d['std']:.2f} | {100*d['max']:.2f} | {100*d['min']:.2f} "
                f"| {100*c['mean']:.2f} | {inter:.4f} |")
(out / "table1.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
