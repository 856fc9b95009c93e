#!/bin/bash
# check_cohort_cli.sh - `fedlung cohort import-table | info | split` from the command line: exit
# codes (0 success, 1 a bad file with one sentence on stderr, 2 bad usage), `info` text and
# JSON, and splits whose parts add up to the source (patients and tiles). Seconds; no Python
# needed (it only validates the JSON when python3 is there). Not a test of the import rules
# themselves: test_import_table.c covers those through the library.
# Usage (ctest, from tests/): bash check_cohort_cli.sh /path/to/fedlung
set -euo pipefail

fedlung=${1:?usage: check_cohort_cli.sh /path/to/fedlung}
if [ ! -x "$fedlung" ]; then
    echo "check_cohort_cli: $fedlung is not an executable" >&2
    exit 1
fi
source "$(dirname "$0")/lib.sh"
t_workdir fedlung-cohort-cli
tmp=$work
t_fail_prefix="check_cohort_cli: FAIL: "

# expect CODE CMD...: runs CMD, keeps stdout/stderr in $tmp/out, $tmp/err, checks the exit code.
expect() {
    local want=$1 got=0
    shift
    "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
    if [ "$got" != "$want" ]; then
        t_fail "exit $got, expected $want: $* (stderr: $(head -c 300 "$tmp/err"))"
        return 1
    fi
}

# Patient count of a cohort file, from `info --json`.
patients() {
    "$fedlung" cohort info --json "$1" | sed -n 's/.*"patients":\([0-9]*\),"cases".*/\1/p'
}
tiles() {
    "$fedlung" cohort info --json "$1" |
        sed -n 's/.*"tiles":{"tile":[0-9]*,"count":\([0-9]*\)}.*/\1/p'
}

# A clinical table: quoted commas, a missing value, two sites.
cat >"$tmp/clin.csv" <<'EOF'
patient,diagnosis,site,age,smoking
P01,LUAD,A,63,"former, quit 2001"
P02,LUSC,B,NA,current
P03,LUAD,A,71,never
P04,NORMAL,B,55,never
P05,LUSC,A,50,current
P06,LUAD,B,44,"former, quit 2001"
P07,LUSC,A,67,current
P08,NORMAL,A,59,never
P09,LUAD,B,48,current
P10,LUSC,B,70,never
P11,LUAD,A,66,current
P12,NORMAL,B,52,never
EOF
imp=(cohort import-table --csv "$tmp/clin.csv" --id patient --label diagnosis --site site
    --modality clinical)

# --- import-table ---------------------------------------------------------------------------
if expect 0 "$fedlung" "${imp[@]}" --out "$tmp/c.h5"; then
    grep -q "12 patients" "$tmp/out" || t_fail "import-table summary: $(cat "$tmp/out")"
fi
expect 0 "$fedlung" cohort import-table --help
expect 2 "$fedlung" cohort import-table --csv "$tmp/clin.csv" --id patient --out "$tmp/u.h5"
expect 2 "$fedlung" "${imp[@]}" --out "$tmp/u.h5" --bogus
expect 2 "$fedlung" "${imp[@]}" --out "$tmp/u.h5" --split 70/30
expect 2 "$fedlung" "${imp[@]}" --out "$tmp/u.h5" --seed -3
expect 2 "$fedlung" cohort import-table --csv "$tmp/clin.csv" --id patient --label diagnosis \
    --modality protein --out "$tmp/u.h5"
expect 2 "$fedlung" "${imp[@]}" --out "$tmp/u.h5" --split 70/15/15 --split-column site
[ -e "$tmp/u.h5" ] && t_fail "a usage error wrote $tmp/u.h5"

# Bad files: exit 1, "fedlung: <file>..." on stderr, nothing written.
printf 'patient,diagnosis,age\nP1,LUAD,1\nP2,LUSC\n' >"$tmp/ragged.csv"
printf 'patient,diagnosis,age\n' >"$tmp/header.csv"
: >"$tmp/empty.csv"
head -c 4096 /dev/urandom >"$tmp/random.bin"
for bad in ragged.csv header.csv empty.csv random.bin missing.csv; do
    if expect 1 "$fedlung" cohort import-table --csv "$tmp/$bad" --id patient \
        --label diagnosis --modality clinical --out "$tmp/bad.h5"; then
        grep -q "^fedlung: $tmp/$bad" "$tmp/err" || t_fail "$bad: stderr: $(cat "$tmp/err")"
        [ "$(wc -l <"$tmp/err")" = 1 ] || t_fail "$bad: more than one line on stderr"
    fi
done
grep -q "ragged.csv:3: 2 fields, the header has 3" <(
    "$fedlung" cohort import-table --csv "$tmp/ragged.csv" --id patient --label diagnosis \
        --modality clinical --out "$tmp/bad.h5" 2>&1 || true
) || t_fail "the ragged row's message does not name line 3"
if expect 1 "$fedlung" cohort import-table --csv "$tmp/clin.csv" --id patient --label diagnosis \
    --site nosuch --modality clinical --out "$tmp/bad.h5"; then
    grep -q 'no column "nosuch"' "$tmp/err" || t_fail "missing column: $(cat "$tmp/err")"
fi
leftover=$(find "$tmp" -name 'bad.h5*' -o -name 'u.h5*' | head -1)
[ -z "$leftover" ] || t_fail "a failed import left $leftover"

# --- info -----------------------------------------------------------------------------------
if expect 0 "$fedlung" cohort info "$tmp/c.h5"; then
    for word in LUAD LUSC NORMAL "12 patients" train val test clinical provenance; do
        grep -q "$word" "$tmp/out" || t_fail "cohort info lacks \"$word\": $(cat "$tmp/out")"
    done
fi
if expect 0 "$fedlung" cohort info --json "$tmp/c.h5"; then
    [ "$(wc -l <"$tmp/out")" = 1 ] || t_fail "info --json is not one line"
    grep -q '"classes":\["LUAD","LUSC","NORMAL"\]' "$tmp/out" || t_fail "json: $(cat "$tmp/out")"
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" ||
            t_fail "info --json is not valid JSON"
    fi
fi
expect 2 "$fedlung" cohort info
expect 2 "$fedlung" cohort info "$tmp/c.h5" "$tmp/c.h5"
expect 2 "$fedlung" cohort info --nope "$tmp/c.h5"
for bad in random.bin missing.h5 clin.csv; do
    if expect 1 "$fedlung" cohort info "$tmp/$bad"; then
        grep -q "^fedlung: $tmp/$bad: " "$tmp/err" || t_fail "info $bad: $(cat "$tmp/err")"
    fi
done

# --- split ----------------------------------------------------------------------------------
check_parts() { # DIR N TOTAL
    local sum=0 k n
    for k in $(seq 1 "$2"); do
        [ -f "$1/part-$k.h5" ] || { t_fail "$1/part-$k.h5 is missing"; return; }
        n=$(patients "$1/part-$k.h5")
        [ "${n:-0}" -gt 0 ] || t_fail "$1/part-$k.h5 has no patients"
        sum=$((sum + ${n:-0}))
    done
    [ -e "$1/part-$(($2 + 1)).h5" ] && t_fail "$1 has more than $2 parts"
    [ "$sum" = "$3" ] || t_fail "$1: parts hold $sum patients, the source $3"
}
expect 0 "$fedlung" cohort split "$tmp/c.h5" --partition iid --parts 3 --out "$tmp/iid" &&
    check_parts "$tmp/iid" 3 12
[ "$(wc -l <"$tmp/out")" = 3 ] || t_fail "split iid printed $(wc -l <"$tmp/out") lines, not 3"
expect 0 "$fedlung" cohort split "$tmp/c.h5" --partition dirichlet:0.5 --parts 4 --seed 7 \
    --out "$tmp/dir" && check_parts "$tmp/dir" 4 12
expect 0 "$fedlung" cohort split "$tmp/c.h5" --partition site --out "$tmp/site" &&
    check_parts "$tmp/site" 2 12
expect 2 "$fedlung" cohort split "$tmp/c.h5" --partition iid --out "$tmp/x"
expect 2 "$fedlung" cohort split "$tmp/c.h5" --partition dirichlet:0 --parts 2 --out "$tmp/x"
expect 2 "$fedlung" cohort split "$tmp/c.h5" --partition random --parts 2 --out "$tmp/x"
expect 2 "$fedlung" cohort split --partition iid --parts 2 --out "$tmp/x"
expect 1 "$fedlung" cohort split "$tmp/c.h5" --partition iid --parts 13 --out "$tmp/x"
expect 1 "$fedlung" cohort split "$tmp/c.h5" --partition site --parts 3 --out "$tmp/x"
expect 1 "$fedlung" cohort split "$tmp/random.bin" --partition iid --parts 2 --out "$tmp/x"
[ -z "$(ls -A "$tmp/x" 2>/dev/null)" ] || t_fail "a failed split left files in $tmp/x"

# Tiles travel with their patients (a small synthetic cohort).
if expect 0 "$fedlung" cohort synth --out "$tmp/s.h5" --patients 40 --sites 3 --tile 16 \
    --tiles-per-patient 2 --genes 64 --probes 64; then
    total=$(tiles "$tmp/s.h5")
    np=$(patients "$tmp/s.h5")
    expect 0 "$fedlung" cohort split "$tmp/s.h5" --partition dirichlet:1 --parts 3 \
        --out "$tmp/st" && check_parts "$tmp/st" 3 "$np"
    sum=0
    for k in 1 2 3; do sum=$((sum + $(tiles "$tmp/st/part-$k.h5"))); done
    [ "$sum" = "$total" ] || t_fail "parts hold $sum tiles, the source $total"
fi

if [ "$t_fails" != 0 ]; then
    echo "check_cohort_cli: $t_fails failure(s)" >&2
    exit 1
fi
echo "check_cohort_cli: ok"
