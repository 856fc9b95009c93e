#!/usr/bin/env bash
# check_privacy_cli.sh - `fedlung privacy epsilon|sigma|rdp` from the command line: ε alone on the
# first line with 10 significant digits (cases of shared/reference/dp-vectors.json, copied here),
# --verbose details, the planner's σ, composed phases, --help, and exit 2 on bad usage.
set -uo pipefail
fedlung=${1:?usage: check_privacy_cli.sh /path/to/fedlung}
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"

# first_line_is WHAT EXPECTED: out.txt's first line is exactly EXPECTED
first_line_is() {
    local got
    got=$(head -n 1 out.txt)
    [ "$got" = "$2" ] || t_fail "$1: first line '$got', expected '$2'"
}
has() { grep -q -- "$2" "$1" || t_fail "$3: no \"$2\" in $(head -c 400 "$1")"; }

# ---- epsilon: Opacus' values rounded to 10 significant digits ----
t_expect 0 "epsilon case 1" -- "$fedlung" privacy epsilon --sample-rate 0.004 \
    --noise-multiplier 1.1 --steps 15000 --delta 1e-5
first_line_is "epsilon case 1" 2.502870927
[ "$(wc -l <out.txt)" -eq 1 ] || t_fail "epsilon without --verbose prints more than one line"
grep -Eq '^[0-9]\.[0-9]{9}$' out.txt || t_fail "epsilon is not 10 significant digits: $(<out.txt)"
t_expect 0 "epsilon case 2" -- "$fedlung" privacy epsilon --sample-rate 0.01 \
    --noise-multiplier 4 --steps 10000 --delta 1e-5
first_line_is "epsilon case 2" 1.035490066
t_expect 0 "epsilon case 3" -- "$fedlung" privacy epsilon --sample-rate 0.04 \
    --noise-multiplier 1.5 --steps 2250 --delta 1e-5
first_line_is "epsilon case 3" 7.329111171
t_expect 0 "epsilon q = 1" -- "$fedlung" privacy epsilon --sample-rate 1 \
    --noise-multiplier 10 --steps 1000 --delta 1e-6
first_line_is "epsilon q = 1" 20.55199163
t_expect 0 "epsilon classic" -- "$fedlung" privacy epsilon --sample-rate 0.01 \
    --noise-multiplier 1 --steps 1000 --delta 1e-5 --conversion classic
first_line_is "epsilon classic" 2.53798288

# ---- --verbose: the same first line, then the details ----
t_expect 0 "epsilon --verbose" -- "$fedlung" privacy epsilon --sample-rate 0.004 \
    --noise-multiplier 1.1 --steps 15000 --delta 1e-5 --verbose
first_line_is "epsilon --verbose" 2.502870927
has out.txt "best order: 8.4 (of 151 orders, 1.1 to 63)" "--verbose"
has out.txt "rdp at best order: " "--verbose"
has out.txt "conversion: balle" "--verbose"
has out.txt "composed: 1 phase, 15000 steps" "--verbose"
t_expect 0 "--verbose, classic" -- "$fedlung" privacy epsilon --sample-rate 0.01 \
    --noise-multiplier 4 --steps 10000 --delta 1e-5 --conversion classic -v
has out.txt "best order: 20 " "--verbose, classic"
has out.txt "conversion: classic" "--verbose, classic"
t_expect 0 "best order at the end of the list" -- "$fedlung" privacy epsilon \
    --sample-rate 0.01 --noise-multiplier 4 --steps 10000 --delta 1e-5 --orders 2,3,4 --verbose
has out.txt "best order: 4 (of 3 orders, 2 to 4)" "short --orders"
has out.txt "note: the best order is the largest" "short --orders"

# ---- phases compose: two halves = the whole ----
t_expect 0 "two phases" -- "$fedlung" privacy epsilon --phase 0.004,1.1,7500 \
    --phase 0.004,1.1,7500 --delta 1e-5 --verbose
first_line_is "two phases" 2.502870927
has out.txt "composed: 2 phases, 15000 steps" "two phases"
t_expect 0 "a phase and the main one" -- "$fedlung" privacy epsilon --sample-rate 0.004 \
    --noise-multiplier 1.1 --steps 5000 --phase 0.004,1.1,10000 --delta 1e-5
first_line_is "a phase and the main one" 2.502870927

# ---- rdp: one line per order ----
t_expect 0 "rdp" -- "$fedlung" privacy rdp --sample-rate 0.01 --noise-multiplier 2.5 \
    --steps 50 --orders 1.5,2.5,5,50,100
[ "$(sed -n 1p out.txt)" = "1.5 0.0006500708972" ] || t_fail "rdp at 1.5: $(sed -n 1p out.txt)"
[ "$(sed -n 5p out.txt)" = "100 167.4163075" ] || t_fail "rdp at 100: $(sed -n 5p out.txt)"
t_expect 0 "rdp, default orders" -- "$fedlung" privacy rdp --sample-rate 0.01 \
    --noise-multiplier 1 --steps 1
[ "$(wc -l <out.txt)" -eq 151 ] || t_fail "rdp prints $(wc -l <out.txt) lines, not 151"

# ---- sigma: the planner finds the cases' σ again ----
t_expect 0 "sigma" -- "$fedlung" privacy sigma --target-epsilon 2.502870926647115 \
    --sample-rate 0.004 --steps 15000 --delta 1e-5
grep -Eq '^1\.10000000[0-9]$' out.txt || t_fail "sigma for case 1: $(cat out.txt), not 1.1"
t_expect 0 "sigma --verbose" -- "$fedlung" privacy sigma --target-epsilon 19.05359753163139 \
    --sample-rate 1 --steps 10 --delta 1e-5 --verbose
grep -Eq '^1\.00000000[0-9]$' <(head -n 1 out.txt) ||
    t_fail "sigma for q = 1: $(head -n 1 out.txt), not 1"
has out.txt "epsilon at this sigma: " "sigma --verbose"
has out.txt "tolerance: " "sigma --verbose"
t_expect 0 "sigma after a phase" -- "$fedlung" privacy sigma --target-epsilon 2.502870926647115 \
    --sample-rate 0.004 --steps 7500 --delta 1e-5 --phase 0.004,1.1,7500
grep -Eq '^1\.10000000[0-9]$' out.txt || t_fail "sigma after a phase: $(cat out.txt), not 1.1"
t_expect 1 "an unreachable target" -- "$fedlung" privacy sigma --target-epsilon 0.05 \
    --sample-rate 0.01 --steps 100 --delta 1e-5
has err.txt "however large sigma is" "an unreachable target"

# ---- help and bad usage ----
t_expect 0 "privacy --help" -- "$fedlung" privacy --help
has out.txt "usage: fedlung privacy epsilon" "privacy --help"
t_expect 0 "privacy epsilon --help" -- "$fedlung" privacy epsilon --help
has out.txt "--noise-multiplier" "privacy epsilon --help"
t_expect 0 "fedlung --help" -- "$fedlung" --help
has out.txt "privacy epsilon|sigma|rdp" "fedlung --help"
t_expect 2 "no subcommand" -- "$fedlung" privacy
t_expect 2 "unknown subcommand" -- "$fedlung" privacy budget --delta 1e-5
t_expect 2 "no --delta" -- "$fedlung" privacy epsilon --sample-rate 0.01 \
    --noise-multiplier 1 --steps 10
t_expect 2 "no --steps" -- "$fedlung" privacy epsilon --sample-rate 0.01 \
    --noise-multiplier 1 --delta 1e-5
t_expect 2 "sample rate above 1" -- "$fedlung" privacy epsilon --sample-rate 1.5 \
    --noise-multiplier 1 --steps 10 --delta 1e-5
has err.txt "sample-rate" "sample rate above 1"
t_expect 2 "delta 0" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 10 --delta 0
t_expect 2 "not a number" -- "$fedlung" privacy epsilon --sample-rate 0.1x \
    --noise-multiplier 1 --steps 10 --delta 1e-5
t_expect 2 "fractional steps" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 2.5 --delta 1e-5
t_expect 2 "an order of 1" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 10 --delta 1e-5 --orders 2,1
t_expect 2 "a bad phase" -- "$fedlung" privacy epsilon --phase 0.1,1 --delta 1e-5
t_expect 2 "a bad conversion" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 10 --delta 1e-5 --conversion renyi
t_expect 2 "sigma with --noise-multiplier" -- "$fedlung" privacy sigma --target-epsilon 1 \
    --sample-rate 0.1 --noise-multiplier 1 --steps 10 --delta 1e-5
t_expect 2 "sigma without a target" -- "$fedlung" privacy sigma --sample-rate 0.1 \
    --steps 10 --delta 1e-5
t_expect 2 "an unknown option" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 10 --delta 1e-5 --epsilon 3
t_expect 2 "a stray argument" -- "$fedlung" privacy epsilon --sample-rate 0.1 \
    --noise-multiplier 1 --steps 10 --delta 1e-5 extra
has err.txt "usage: fedlung privacy" "bad usage prints the usage"

t_summary "$t_name"
