#!/usr/bin/env bash
# check_umap_cli.sh - `fedlung explain umap` from the command line on a tiny synthetic cohort:
# the files it promises for a fusion model, a fusion model with an image model, an image model
# alone and a .npy matrix; the CSV's header and rows; the same layout for the same seed; exit
# codes (0 ok, 1 failure with one sentence, 2 usage) and no temporary files left behind.
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_umap_cli.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"
has_files() { # has_files DIR SET...
  local dir=$1
  shift
  for set in "$@"; do
    for f in "umap_$set.csv" "umap_${set}_class.png" "umap_${set}_site.png"; do
      [ -s "$dir/$f" ] || t_fail "$dir/$f was not written"
    done
  done
}
t_expect 0 "synth" -- "$fedlung" cohort synth --out c.h5 --patients 60 --tile 32 \
  --tiles-per-patient 2 --genes 80 --probes 100 --seed 3
t_expect 0 "train fusion" -- "$fedlung" train fusion --cohort c.h5 --modalities rna,clinical \
  --epochs 5 --quiet --out f.h5
t_expect 0 "umap of a fusion model" -- "$fedlung" explain umap --cohort c.h5 --model f.h5 --out u
has_files u fused
[ -e u/umap_image.csv ] && t_fail "umap_image.csv without an image model"
head -1 u/umap_fused.csv | grep -q '^patient_id,label,site,x,y$' ||
  t_fail "umap_fused.csv header: $(head -1 u/umap_fused.csv)"
rows=$(tail -n +2 u/umap_fused.csv | grep -cE '^[^,]+,(LUAD|LUSC|NORMAL),[^,]+,-?[0-9.e+-]+,-?[0-9.e+-]+$')
[ "$rows" -eq 60 ] || t_fail "umap_fused.csv has $rows well-formed rows, expected 60"
grep -q "trustworthiness" err.txt || t_fail "no trustworthiness on stderr: $(head -c 300 err.txt)"
t_expect 0 "same seed" -- "$fedlung" explain umap --cohort c.h5 --model f.h5 --out u2 --quiet
cmp -s u/umap_fused.csv u2/umap_fused.csv || t_fail "the same seed gave another layout"
[ -s err.txt ] && t_fail "--quiet still wrote to stderr: $(head -c 200 err.txt)"
t_expect 0 "test split" -- "$fedlung" explain umap --cohort c.h5 --model f.h5 --out ut \
  --split test --neighbors 5 --min-dist 0.3 --seed 7 --quiet
n_test=$(($(wc -l <ut/umap_fused.csv) - 1))
[ "$n_test" -gt 0 ] && [ "$n_test" -lt 60 ] || t_fail "test split has $n_test patients"

t_expect 0 "train image" -- "$fedlung" train image --cohort c.h5 --epochs 1 --quiet --out r.h5
t_expect 0 "train fusion with images" -- "$fedlung" train fusion --cohort c.h5 --image-model r.h5 \
  --epochs 3 --quiet --out fi.h5
t_expect 0 "umap of fusion + image" -- "$fedlung" explain umap --cohort c.h5 --model fi.h5 \
  --out ui --quiet
has_files ui fused image
t_expect 0 "umap of an image model" -- "$fedlung" explain umap --cohort c.h5 --model r.h5 \
  --out ur --quiet
has_files ur image
[ -e ur/umap_fused.csv ] && t_fail "umap_fused.csv from an image model"
t_expect 0 "--image-model beside a fusion model" -- "$fedlung" explain umap --cohort c.h5 \
  --model f.h5 --image-model r.h5 --out uf --quiet --dump
has_files uf fused image
/usr/bin/python3 -c '
import numpy as np, sys
for s in ("fused", "image"):
    x = np.load(f"uf/umap_{s}_embeddings.npy")
    rows = sum(1 for _ in open(f"uf/umap_{s}.csv")) - 1
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == rows, (s, x.shape, rows)
' || t_fail "--dump: the embeddings do not match the CSV rows"

/usr/bin/python3 -c '
import numpy as np
rng = np.random.default_rng(0)
np.save("x.npy", np.vstack([rng.normal(size=(40, 6)), 8 + rng.normal(size=(40, 6))]).astype(np.float32))
' || t_fail "cannot write x.npy with numpy"
t_expect 0 "umap of a .npy" -- "$fedlung" explain umap --input x.npy --out un --quiet
head -1 un/umap.csv | grep -q '^row,x,y$' || t_fail "umap.csv header: $(head -1 un/umap.csv)"
[ "$(($(wc -l <un/umap.csv) - 1))" -eq 80 ] || t_fail "umap.csv does not have 80 rows"

t_expect 2 "no --out" -- "$fedlung" explain umap --cohort c.h5 --model f.h5
t_expect 2 "--input with --cohort" -- "$fedlung" explain umap --input x.npy --cohort c.h5 --out z
t_expect 2 "bad split" -- "$fedlung" explain umap --cohort c.h5 --model f.h5 --out z --split dev
t_expect 2 "bad neighbours" -- "$fedlung" explain umap --input x.npy --out z --neighbors 1
t_expect 1 "a cohort is not a model" -- "$fedlung" explain umap --cohort c.h5 --model c.h5 --out z
t_expect 1 "missing input" -- "$fedlung" explain umap --input nope.npy --out z
grep -q "nope.npy" err.txt || t_fail "the error does not name nope.npy"
ls ./*/*.tmp* >/dev/null 2>&1 && t_fail "temporary files left"
t_summary check_umap_cli
