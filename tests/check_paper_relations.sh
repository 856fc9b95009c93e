#!/usr/bin/env bash
# check_paper_relations.sh - the seed paper's shape of result on a small synthetic cohort,
# through the command line: RNet is moderate, RNA alone beats it, and MMLM is at least as good
# as the best single modality and near perfect. The margins suit a cohort of this size; the
# full-size table is bench/paper-table's (docs/results.md).
set -euo pipefail
fedlung=${1:?usage: check_paper_relations.sh /path/to/fedlung}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
q=--quiet
"$fedlung" cohort synth --out c.h5 --patients 400 --tile 32 --tiles-per-patient 6 \
  --genes 300 --probes 600 --seed 11 >/dev/null
"$fedlung" train image --cohort c.h5 --out rnet.h5 --width 0.25 --epochs 5 $q >/dev/null
"$fedlung" train fusion --cohort c.h5 --modalities rna --out rna.h5 --epochs 60 $q >/dev/null
"$fedlung" train fusion --cohort c.h5 --modalities methylation --out meth.h5 --epochs 60 $q \
  >/dev/null
"$fedlung" train fusion --cohort c.h5 --image-model rnet.h5 --epochs 60 $q --out mmlm.h5 \
  >/dev/null
for m in rnet rna meth mmlm; do
  # Validation and test patients both (neither was trained on): twice the patients of one
  # split, steadier numbers.
  for split in val test; do
    "$fedlung" eval --cohort c.h5 --model $m.h5 --split $split --out ev-$m-$split $q >/dev/null
  done
done
python3 - <<'PY'
import json, sys
def macro(m, split):
    return json.load(open(f"ev-{m}-{split}/metrics.json"))["macro"]["auc"]
rows = {m: {s: macro(m, s) for s in ("val", "test")} for m in ("rnet", "rna", "meth", "mmlm")}
held = {m: (v["val"] + v["test"]) / 2 for m, v in rows.items()}
print("held-out macro AUC:", {m: round(v, 4) for m, v in held.items()})
fails = []
if not 0.62 <= held["rnet"] <= 0.92:
    fails.append(f"RNet macro AUC {held['rnet']:.4f} outside [0.62, 0.92]")
if held["rna"] < held["rnet"]:
    fails.append(f"RNA only ({held['rna']:.4f}) below RNet ({held['rnet']:.4f})")
best_single = max(held["rnet"], held["rna"], held["meth"])
if held["mmlm"] < best_single - 0.01:
    fails.append(f"MMLM ({held['mmlm']:.4f}) below the best single modality ({best_single:.4f}) - 0.01")
if held["mmlm"] < 0.95:
    fails.append(f"MMLM macro AUC {held['mmlm']:.4f} below 0.95")
for f in fails:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if fails else 0)
PY
