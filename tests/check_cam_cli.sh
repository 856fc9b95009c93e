#!/usr/bin/env bash
# check_cam_cli.sh - `fedlung explain cam` over a cohort: on a tiny synthetic cohort and a
# one-epoch model, the files it promises (index.csv with patients x classes x top-k rows, a PNG
# and a (T, T) float32 .npy per row), --class predicted / NAME, --patients, --grad-cam, exit
# codes (1 with one sentence, 2 for usage) and no temporary files left. Not a numerical check
# (check_cam_torch.sh compares the maps with PyTorch).
set -uo pipefail
fedlung=${1:?usage: check_cam_cli.sh /path/to/fedlung}
[ -x "$fedlung" ] || { echo "check_cam_cli: $fedlung is not an executable" >&2; exit 1; }
fedlung=$(cd "$(dirname "$fedlung")" && pwd)/$(basename "$fedlung") # the test runs elsewhere
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"
rows() { echo $(($(wc -l <"$1") - 1)); }
# check_index DIR ROWS: the row count, the header, and every listed file.
check_index() {
  local dir=$1 want=$2
  [ -s "$dir/index.csv" ] || { t_fail "$dir/index.csv missing"; return; }
  head -1 "$dir/index.csv" | grep -q '^patient_id,class,rank,tile_index,probability,png,npy$' ||
    t_fail "$dir/index.csv header: $(head -1 "$dir/index.csv")"
  [ "$(rows "$dir/index.csv")" -eq "$want" ] ||
    t_fail "$dir/index.csv has $(rows "$dir/index.csv") rows, expected $want"
  "$py" - "$dir" <<'EOF' || t_fail "$dir: listed files"
import csv, sys
import numpy as np
d = sys.argv[1]
bad = 0
for r in csv.DictReader(open(f"{d}/index.csv")):
    with open(f"{d}/{r['png']}", "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            print(f"{r['png']} is not a PNG"); bad += 1
    m = np.load(f"{d}/{r['npy']}")
    if m.shape != (64, 64) or m.dtype != np.float32 or not np.isfinite(m).all():
        print(f"{r['npy']}: {m.shape} {m.dtype}"); bad += 1
    if not 0 <= float(r["probability"]) <= 1:
        print(f"probability {r['probability']}"); bad += 1
sys.exit(1 if bad else 0)
EOF
}

t_expect 0 "synth" -- "$fedlung" cohort synth --out c.h5 --patients 12 --tile 64 \
  --tiles-per-patient 3 --genes 64 --probes 64 --seed 3
t_expect 0 "train" -- "$fedlung" train image --cohort c.h5 --out m.h5 --epochs 1 --width 0.25 \
  --batch 8 --quiet
n_val=$("$fedlung" cohort info c.h5 --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["splits"]["val"]["patients"])')

t_expect 0 "cam, all classes" -- "$fedlung" explain cam --cohort c.h5 --model m.h5 --out all \
  --split val --top-k 2 --quiet
check_index all $((n_val * 3 * 2))
grep -q . err.txt && t_fail "--quiet still wrote: $(head -c 200 err.txt)"
# Within a patient and class, ranks 1..k in order of decreasing probability.
"$py" - <<'EOF' || t_fail "ranking in all/index.csv"
import csv, itertools
rows = list(csv.DictReader(open("all/index.csv")))
for _, g in itertools.groupby(rows, key=lambda r: (r["patient_id"], r["class"])):
    g = list(g)
    assert [int(r["rank"]) for r in g] == list(range(1, len(g) + 1)), g
    p = [float(r["probability"]) for r in g]
    assert p == sorted(p, reverse=True), p
EOF

t_expect 0 "cam, predicted, top-k above the tile count" -- "$fedlung" explain cam --cohort c.h5 \
  --model m.h5 --out pred --split val --class predicted --top-k 5
check_index pred $((n_val * 3))
grep -q "class activation maps" err.txt || t_fail "no progress on stderr: $(head -c 200 err.txt)"

two=$(cut -d, -f1 all/index.csv | tail -n +2 | sort -u | head -2 | paste -sd,)
t_expect 0 "grad-cam of one class for two patients" -- "$fedlung" explain cam --cohort c.h5 \
  --model m.h5 --out two --patients "$two" --class LUSC --grad-cam --alpha 0.6 --quiet
check_index two 6
[ "$(cut -d, -f2 two/index.csv | tail -n +2 | sort -u)" = LUSC ] || t_fail "two: classes other than LUSC"

t_expect 1 "unknown class" -- "$fedlung" explain cam --cohort c.h5 --model m.h5 --out bad --class ADC
grep -q "ADC" err.txt || t_fail "the error does not name the class: $(cat err.txt)"
t_expect 1 "unknown patient" -- "$fedlung" explain cam --cohort c.h5 --model m.h5 --out bad \
  --patients nobody
grep -q "nobody" err.txt || t_fail "the error does not name the patient: $(cat err.txt)"
t_expect 1 "a cohort is not a model" -- "$fedlung" explain cam --cohort c.h5 --model c.h5 --out bad
t_expect 2 "no --out" -- "$fedlung" explain cam --cohort c.h5 --model m.h5
t_expect 2 "alpha above 1" -- "$fedlung" explain cam --cohort c.h5 --model m.h5 --out bad --alpha 2
t_expect 2 "bad split" -- "$fedlung" explain cam --cohort c.h5 --model m.h5 --out bad --split dev
t_expect 0 "help" -- "$fedlung" explain cam --help
[ -e bad/index.csv ] && t_fail "a failed run left bad/index.csv"
find . -name '*.tmp.*' | grep -q . && t_fail "temporary files left: $(find . -name '*.tmp.*')"
t_summary check_cam_cli
