#!/usr/bin/env bash
# check_plan_cli.sh - `fedlung plan features` from the command line. Tables of known values
# (written here by numpy, imported with `fedlung cohort import-table`) are ranked and every list
# is checked against numpy's own ranking of the same numbers: RNA by sample variance (ties by
# position, features with fewer than 2 values last), methylation by the variance of its M-values
# log2(b / (1 - b)) with b clamped to [1e-3, 1 - 1e-3] (a column whose rank the clamp decides),
# or of its betas (--no-mvalue), the train split alone, clinical in the cohort's order; every
# line at most 199 characters. A synthetic cohort gives 256 + 256 + 4 names, top-N lists that are
# prefixes of the full ranking and the train split's patient count. Refused: names a plan cannot
# hold, a modality of fewer than 2 patients, a missing file (exit 1, the path in the sentence,
# --out untouched and no temporary file left); bad usage exits 2, --help 0.
# Usage (ctest, from tests/): bash check_plan_cli.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_plan_cli.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_need_python numpy "apt-get install python3-numpy" || exit 1
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_plan_cli: "
py=/usr/bin/python3

has() { grep -q -- "$2" "$1" || t_fail "$3: no \"$2\" in $(head -c 400 "$1")"; }

# ---- tables of known values ----
# rna.csv: 48 rows (34 train, 7 val, 7 test: row 48), 300 genes of distinct deviations 0.10..3.09 around
# means 2..10, 3 % of cells missing; g20 copied into g250 (a tie), g30 and g31 constant, g40 with
# one value, row 48 without RNA. meth.csv: 48 rows, 200 probes of M-value deviations 0.1..1.095;
# p5 is 0.5 but for a 0 and a 1 (M-value variance 4.23 clamped at 1e-3, 7.53 at 1e-4), p6 has
# M-values +-2.35 (variance 5.64).
"$py" - <<'PY' || t_fail "writing the tables"
import numpy as np
rng = np.random.default_rng(20240611)
P = 48
split = ["train"] * 34 + ["val"] * 7 + ["test"] * 6
rng.shuffle(split)
split.append("test")  # row 48, which has no RNA

def standard(n):
    z = rng.standard_normal(n)
    return (z - z.mean()) / z.std(ddof=1)

def write(path, names, cols):
    with open(path, "w") as f:
        f.write("id,label,split," + ",".join(names) + "\n")
        for p in range(P):
            cells = ["" if np.isnan(c[p]) else "%.7g" % c[p] for c in cols]
            f.write("P%02d,%s,%s,%s\n" % (p + 1, "LUAD" if p % 2 else "LUSC", split[p],
                                          ",".join(cells)))

G = 300
sd = 0.10 + 0.01 * rng.permutation(G)
cols = [rng.uniform(2, 10) + sd[j] * standard(P) for j in range(G)]
for c in cols:
    c[rng.random(P) < 0.03] = np.nan
    c[P - 1] = np.nan
cols[250] = cols[20].copy()
cols[30] = np.where(np.isnan(cols[30]), np.nan, 5.0)
cols[31] = np.where(np.isnan(cols[31]), np.nan, 7.5)
cols[40] = np.full(P, np.nan)
cols[40][3] = 4.0
write("rna.csv", ["ENSG%011d.%d" % (1000 + 7 * j, j % 13 + 1) for j in range(G)], cols)

M = 200
sd = 0.1 + 0.005 * rng.permutation(M)
cols = []
for j in range(M):
    m = rng.uniform(-3, 3) + sd[j] * standard(P)
    cols.append(1 / (1 + 2.0 ** -m))
cols[5] = np.full(P, 0.5)
cols[5][0], cols[5][1] = 0.0, 1.0
cols[6] = 1 / (1 + 2.0 ** -np.where(np.arange(P) % 2, 2.35, -2.35))
write("meth.csv", ["cg%08d" % (20000 + 37 * j) for j in range(M)], cols)
PY
split=(--id id --label label --split-column split)
t_expect 0 "import rna.csv" -- "$fedlung" cohort import-table --csv rna.csv "${split[@]}" \
    --modality rna --out rna.h5
t_expect 0 "import meth.csv" -- "$fedlung" cohort import-table --csv meth.csv "${split[@]}" \
    --modality methylation --out meth.h5
printf 'id,label,age,sex,smoker,stage\nP1,LUAD,60,male,1,Stage IA\nP2,LUSC,70,female,,Stage IIB
P3,LUAD,65,male,0,\n' >clin.csv
t_expect 0 "import clin.csv" -- "$fedlung" cohort import-table --csv clin.csv --id id \
    --label label --modality clinical --out clin.h5

# features NAME ARGS...: `fedlung plan features ARGS`, its stdout in NAME.plan, stderr NAME.err
features() {
    local name=$1
    shift
    t_expect 0 "plan features $*" -- "$fedlung" plan features "$@"
    cp out.txt "$name.plan"
    cp err.txt "$name.err"
}
features rna40 rna.h5 --rna 40
features rna_all rna.h5 --rna 0 --meth 3
features rna_train rna.h5 --rna 25 --split train
features meth30 meth.h5 --meth 30
features meth_beta meth.h5 --meth 0 --no-mvalue
features clin clin.h5
has rna40.err "ranked 300 rna features over 47 patients: kept 40" "rna summary"
has rna_train.err "ranked 300 rna features over 34 patients: kept 25" "train split summary"
has meth30.err "ranked 200 methylation features over 48 patients (M-values): kept 30" "meth summary"
has clin.err "6 clinical features of 3 patients: kept all" "clinical summary"
has rna40.plan "^# ranked by \`fedlung plan features\` on rna.h5: 48 patients (every split)$" \
    "comment line"
has rna_train.plan "on rna.h5: 34 patients (the train split)$" "train comment line"
grep -q "^meth_names\|^clinical_names" rna40.plan && t_fail "rna.h5 has only RNA: $(cat rna40.plan)"

# The reference: numpy over the tables' numbers (as the cohort stores them, float32).
"$py" - <<'PY' || t_fail "the lists differ from numpy's ranking (above)"
import csv, sys
import numpy as np

def table(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    names = rows[0][3:]
    split = [r[2] for r in rows[1:]]
    x = np.array([[float(v) if v else np.nan for v in r[3:]] for r in rows[1:]],
                 dtype=np.float32).astype(np.float64)
    return names, split, x

def mvalue(b):
    b = np.clip(b, 1e-3, 1 - 1e-3)
    return np.log2(b / (1 - b))

def ranking(x):
    """Feature order by sample variance, largest first, ties by position; < 2 values last."""
    score = []
    for j in range(x.shape[1]):
        v = x[:, j][~np.isnan(x[:, j])]
        score.append(-np.inf if len(v) < 2 else 0.0 if np.ptp(v) == 0 else v.var(ddof=1))
    return sorted(range(x.shape[1]), key=lambda j: (-score[j], j)), score

def lists(path):
    out, lines = {}, open(path).read().splitlines()
    for i, line in enumerate(lines, 1):
        if len(line) > 199:
            fail("%s:%d is %d characters long" % (path, i, len(line)))
        if line.startswith("#") or line == "standardize = site":
            continue
        key, _, value = line.partition(" = ")
        out.setdefault(key, []).extend(value.split(", "))
    if "standardize = site" not in lines:
        fail("%s has no standardize = site" % path)
    return out

failures = 0
def fail(what):
    global failures
    failures += 1
    print("FAIL check_plan_cli: " + what, file=sys.stderr)

def check(plan, key, names, x, k, rows=None):
    if rows is not None:
        x = x[rows]
    order, score = ranking(x)
    want = [names[j] for j in (order if k == 0 else order[:k])]
    got = lists(plan).get(key, [])
    if got == want:
        return
    # a swap of two variances equal up to the float sums' rounding is the same ranking
    index = {n: j for j, n in enumerate(names)}
    same = len(got) == len(want) and all(
        g == w or abs(score[index[g]] - score[index[w]]) <= 1e-6 * abs(score[index[w]])
        for g, w in zip(got, want))
    if not same:
        fail("%s %s: %s... is not numpy's %s..." % (plan, key, got[:8], want[:8]))

names, split, x = table("rna.csv")
check("rna40.plan", "rna_names", names, x, 40)
check("rna_all.plan", "rna_names", names, x, 0)
check("rna_train.plan", "rna_names", names, x, 25, [s == "train" for s in split])
order = ranking(x)[0]
if order.index(20) + 1 != order.index(250):
    fail("the tie g20 = g250 is not broken by position: %d, %d" % (order.index(20), order.index(250)))
if order[-3:] != [30, 31, 40]:
    fail("the constants and the one-value gene do not come last: %s" % order[-3:])
names, split, x = table("meth.csv")
check("meth30.plan", "meth_names", names, mvalue(x), 30)
check("meth_beta.plan", "meth_names", names, x, 0)
order = ranking(mvalue(x))[0]
if order[:2] != [6, 5]:
    fail("the clamped probe p5 should rank second, after p6: %s" % order[:4])
if ranking(x)[0][0] == 6 and ranking(x)[0][1] == 5:
    fail("betas rank like M-values: the --no-mvalue check proves nothing")
got = lists("clin.plan").get("clinical_names")
want = ["age", "sex=male", "sex=female", "smoker", "stage=Stage IA", "stage=Stage IIB"]
if got != want:
    fail("clinical_names %s, not %s" % (got, want))
sys.exit(1 if failures else 0)
PY

# ---- a synthetic cohort: the plan's defaults ----
t_expect 0 "synth" -- "$fedlung" cohort synth --out syn.h5 --patients 80 --tile 0 --genes 300 \
    --probes 400
features syn syn.h5
features syn10 syn.h5 --rna 10 --meth 10
features syn_train syn.h5 --split train
t_expect 0 "cohort info --json" -- "$fedlung" cohort info syn.h5 --json
cp out.txt info.json
"$py" - <<'PY' || t_fail "the synthetic cohort's lists (above)"
import json, sys
def lists(path):
    out = {}
    for line in open(path).read().splitlines():
        assert len(line) <= 199, "%s: a line of %d characters" % (path, len(line))
        if line.startswith("#") or line == "standardize = site":
            continue
        key, _, value = line.partition(" = ")
        out.setdefault(key, []).extend(value.split(", "))
    return out
full, top, train = lists("syn.plan"), lists("syn10.plan"), lists("syn_train.plan")
counts = {k: len(v) for k, v in full.items()}
assert counts == {"rna_names": 256, "meth_names": 256, "clinical_names": 4}, counts
for k, v in full.items():
    assert len(set(v)) == len(v), k + " names a feature twice"
assert full["clinical_names"] == ["age", "male", "never_smoker", "pack_years"], full
for k in ("rna_names", "meth_names"):
    assert top[k] == full[k][:10], "%s: top 10 %s is not the full list's head %s" % (
        k, top[k], full[k][:10])
info = json.load(open("info.json"))
n = info["splits"]["train"]["patients"]
head = open("syn_train.plan").readline()
assert head.endswith(": %d patients (the train split)\n" % n), head
PY
has syn.plan "^# kept: rna 256 of 300 by variance; methylation 256 of 400 by variance of \
M-values; clinical all 4 in the cohort's order$" "kept line"

# ---- refusals: exit 1 with the path, nothing written ----
printf 'id,label,split,g1,"a,b"\nP1,LUAD,train,1,2\nP2,LUSC,val,3,4\nP3,LUAD,test,5,6\n' >comma.csv
printf 'id,label,split,g1,x;y\nP1,LUAD,train,1,2\nP2,LUSC,val,3,4\nP3,LUAD,test,5,6\n' >semi.csv
for t in comma semi; do
    t_expect 0 "import $t.csv" -- "$fedlung" cohort import-table --csv $t.csv "${split[@]}" \
        --modality rna --out $t.h5
    t_expect 1 "unsafe name in $t.h5" -- "$fedlung" plan features $t.h5 --out $t.plan
    has err.txt "^fedlung: $t.h5: the rna feature" "$t.h5"
    [ -e $t.plan ] && t_fail "$t.plan written after a failure"
done
t_expect 1 "one training patient" -- "$fedlung" plan features comma.h5 --split train
has err.txt "comma.h5: 1 of its 1 training patients has rna data; ranking needs 2" "few patients"
t_expect 0 "--out" -- "$fedlung" plan features rna.h5 --rna 40 --out lists.plan
cmp -s lists.plan rna40.plan || t_fail "--out wrote other lines than stdout"
[ -s out.txt ] && t_fail "--out also printed to stdout: $(head -c 200 out.txt)"
has err.txt "wrote lists.plan" "--out"
echo old >keep.plan
t_expect 1 "missing file" -- "$fedlung" plan features nope.h5 --out keep.plan
has err.txt "nope.h5" "missing file"
[ "$(wc -l <err.txt)" -eq 1 ] || t_fail "missing file: not one line: $(cat err.txt)"
[ "$(cat keep.plan)" = old ] || t_fail "a failure changed --out: $(head -c 200 keep.plan)"
t_expect 1 "--out in a missing folder" -- "$fedlung" plan features rna.h5 --out nodir/x.plan
has err.txt "nodir/x.plan" "--out in a missing folder"
leftover=$(find . -name '*.tmp.*')
[ -z "$leftover" ] || t_fail "temporary files left: $leftover"

# ---- --modalities: only the lists the plan's fusion model takes ----
t_expect 0 "--modalities rna" -- "$fedlung" plan features rna.h5 --rna 40 --modalities rna
cmp -s out.txt rna40.plan || t_fail "--modalities rna differs from the default's lists"
t_expect 1 "--modalities clinical without it" -- "$fedlung" plan features rna.h5 \
    --modalities rna,clinical
has err.txt "rna.h5 has no clinical data to rank" "--modalities clinical without it"

# ---- usage ----
t_expect 0 "--help" -- "$fedlung" plan features --help
has out.txt "^usage: fedlung plan features COHORT.h5" "--help"
t_expect 0 "plan --help" -- "$fedlung" plan --help
has out.txt "features COHORT.h5" "plan --help"
t_expect 0 "fedlung --help" -- "$fedlung" --help
has out.txt "plan features" "fedlung --help"
for bad in "" "bogus" "features" "features rna.h5 meth.h5" "features rna.h5 --rna -1" \
    "features rna.h5 --rna x" "features rna.h5 --meth 1.5" "features rna.h5 --split val" \
    "features rna.h5 --bogus" "features rna.h5 --out" "features rna.h5 --modalities image" \
    "features rna.h5 --modalities rna,,clinical"; do
    # shellcheck disable=SC2086
    t_expect 2 "plan $bad" -- "$fedlung" plan $bad
    has err.txt "usage: fedlung plan" "plan $bad"
done

t_summary check_plan_cli
