#!/bin/bash
# check_gdc_import.sh - `fedlung cohort import` from the command line on the tiny GDC download
# of gdc/make_fixtures.py: a good import (classes, sites, modalities and tiles as `cohort info`
# reports them; the reader refuses a file whose normals are not in their case's split, so
# reading it back checks that too), the new-portal clinical export, usage errors (exit 2), and
# every bad tree: exit 1, one sentence naming FILE:LINE, nothing left behind. Skipped (exit 0
# with a note) without /usr/bin/python3. The parsers' rules are in test_gdc.c.
# Usage (ctest, from tests/): bash check_gdc_import.sh /path/to/fedlung
set -euo pipefail

fedlung=${1:?usage: check_gdc_import.sh /path/to/fedlung}
if [ ! -x "$fedlung" ]; then
    echo "check_gdc_import: $fedlung is not an executable" >&2
    exit 1
fi
if [ ! -x /usr/bin/python3 ]; then
    echo "check_gdc_import: /usr/bin/python3 not found; skipped"
    exit 0
fi
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
t_workdir fedlung-gdc
tmp=$work
t_fail_prefix="check_gdc_import: FAIL: "

# expect CODE CMD...: runs CMD (stdout and stderr kept in $tmp/out, $tmp/err); a failure unless
# it exits with CODE. Always returns 0, so `set -e` does not stop the checks after it.
expect() {
    local code=$1 rc=0
    shift
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = "$code" ] || t_fail "exit $rc, expected $code: $* ($(head -c 400 "$tmp/err"))"
}

# has FILE TEXT WHAT: FILE contains TEXT (fixed string).
has() {
    grep -qF -- "$2" "$1" || t_fail "$3: no \"$2\" in: $(head -c 600 "$1")"
}

/usr/bin/python3 "$here/gdc/make_fixtures.py" "$tmp/fx"
g=$tmp/fx/good

# ---- the good download ----
expect 0 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --methylation "$g/methylation" --clinical "$g/clinical.tsv" --exposure "$g/exposure.tsv" \
    --tiles "$g/tiles" --tile 16 --out "$tmp/c.h5"
has "$tmp/out" "8 samples at 3 sites; classes LUAD 3, LUSC 3, NORMAL 2" "import summary"
has "$tmp/err" "has a second rna file" "duplicate RNA warning"
has "$tmp/err" "1 cases have no sample" "clinical without sample warning"
has "$tmp/err" "match no sample" "unmatched tile folder warning"
expect 0 "$fedlung" cohort info --json "$tmp/c.h5"
info=$tmp/out
has "$info" '"patients":8,"cases":6' "info counts"
has "$info" '"classes":["LUAD","LUSC","NORMAL"]' "info classes"
has "$info" '"sites":["05","18","44"]' "info sites"
has "$info" '"patients_by_site_class":[[2,0,1],[0,2,1],[1,1,0]]' "normals at their sites"
has "$info" '"rna":{"features":30,"patients":8}' "info rna"
has "$info" '"methylation":{"features":48,"patients":7}' "info methylation"
has "$info" '"clinical":{"features":4,"patients":8}' "info clinical"
has "$info" '"tiles":{"tile":16,"count":6}' "info tiles"

# The same seed gives the same file; the new portal's clinical export gives the same cohort
# but for the provenance, so compare `info` without it.
expect 0 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --methylation "$g/methylation" --clinical "$g/clinical.tsv" --exposure "$g/exposure.tsv" \
    --tiles "$g/tiles" --tile 16 --out "$tmp/c2.h5" --quiet
cmp -s "$tmp/c.h5" "$tmp/c2.h5" || t_fail "two imports with the same options differ"
[ -s "$tmp/err" ] && t_fail "--quiet still wrote to stderr: $(head -c 300 "$tmp/err")"
expect 0 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --clinical "$g/new/clinical.tsv" --exposure "$g/new/exposure.tsv" --quiet \
    --label-rule TCGA-LUAD=adeno,TCGA-LUSC=squamous --rna-value counts --out "$tmp/n.h5"
has "$tmp/out" "classes adeno 3, squamous 3, NORMAL 2; rna 30 features; clinical 4 features" \
    "new-portal import"

# ---- --slides: the slides' own fixture (tests/slides), in the GDC layout and directly; the
# diagnostic slide (vial Z) matches the -01A sample, the frozen one the normal ----
mkdir -p "$tmp/slides/0a1b2c3d"
/usr/bin/python3 "$here/slides/make_slide.py" "$tmp/slides/0a1b2c3d/TCGA-05-4244-01Z-00-DX1.A.svs"
/usr/bin/python3 "$here/slides/make_slide.py" "$tmp/slides/TCGA-18-3406-11A-01-TS1.B.svs"
expect 0 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --slides "$tmp/slides" --tile 64 --mpp 2 --max-tiles 5 --quiet --out "$tmp/s.h5"
has "$tmp/out" "; 10 tiles of 64 px" "--slides import"

# ---- usage errors: exit 2 ----
expect 2 "$fedlung" cohort import --rna "$g/rna" --out "$tmp/u.h5"
expect 2 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --out "$tmp/u.h5"
expect 2 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --exposure "$g/exposure.tsv" --out "$tmp/u.h5"
expect 2 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --slides "$g/tiles" --tiles "$g/tiles" --out "$tmp/u.h5"
expect 2 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --rna-value raw --out "$tmp/u.h5"
expect 2 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --split 70/30 --out "$tmp/u.h5"
[ -e "$tmp/u.h5" ] && t_fail "a usage error wrote u.h5"

# ---- failures: exit 1, FILE:LINE, nothing written ----
expect 1 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --classes LUAD,NORMAL --out "$tmp/f.h5"
has "$tmp/err" "sample_sheet.tsv:10: sample TCGA-18-3406-01A has class \"LUSC\"" "--classes"
expect 1 "$fedlung" cohort import --sample-sheet "$g/sample_sheet.tsv" --rna "$g/rna" \
    --tiles "$g/tiles" --tile 32 --out "$tmp/f.h5"
has "$tmp/err" "expected 32x32" "tile size"
[ -e "$tmp/f.h5" ] && t_fail "a failed import wrote f.h5"
for d in "$tmp"/fx/bad/*/; do
    d=${d%/}
    name=$(basename "$d")
    expect 1 "$fedlung" cohort import --sample-sheet "$d/sample_sheet.tsv" --rna "$d/rna" \
        --methylation "$d/methylation" --clinical "$d/clinical.tsv" \
        --exposure "$d/exposure.tsv" --quiet --out "$d/out.h5"
    has "$tmp/err" "$(cat "$d/expect")" "bad tree $name"
    [ "$(wc -l <"$tmp/err")" -le 1 ] || t_fail "bad tree $name: more than one line on stderr"
    left=$(find "$d" -maxdepth 1 -name 'out.h5*')
    [ -z "$left" ] && [ ! -s "$tmp/out" ] || t_fail "bad tree $name left $left"
done

if [ "$t_fails" -gt 0 ]; then
    echo "check_gdc_import: $t_fails failure(s)" >&2
    exit 1
fi
echo "check_gdc_import: ok"
