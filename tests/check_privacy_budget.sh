#!/usr/bin/env bash
# check_privacy_budget.sh - DP-SGD studies with real processes on 127.0.0.1 over mutual TLS, and
# each hospital's privacy budget, under site standardization (no statistics phase, no patient
# counts at Join): (0) a DP plan is refused by a hospital without epsilon_max or
# with a smaller delta than the plan's; (1) three hospitals train a fusion model with DP-SGD; the one
# with a small [privacy] epsilon_max refuses from the round that would exceed it on (its log and
# its outbox say "refused" with the numbers, the server's log records the refusal), the study
# finishes with the other two; the outbox records of the updates carry clip norm, sigma and the
# epsilon of the round and in total, which match `fedlung privacy epsilon`; privacy.state keeps
# what each spent. (2) That hospital, restarted on its state for another study, remembers what it
# spent and refuses at once; with too few hospitals left the round is retried and the study stops
# (exit 3).
# Usage (ctest, from tests/): bash check_privacy_budget.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_privacy_budget.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_privacy_budget: "
t_expect_timeout=60
declare -A pid
t_on_exit 'for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done'

t_federation_data "$fedlung" 3 --patients 90 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 3

# Each DP round is ceil(epochs / q) = 4 steps at q = 0.25, sigma = 1: the epsilon after k rounds
# is that of 4k steps (delta 1e-5): 4.87, 6.25, 7.33, 8.26. epsilon_max = 7 allows two rounds.
eps() { "$fedlung" privacy epsilon --sample-rate 0.25 --noise-multiplier 1 --steps "$1" --delta 1e-5; }

# setup NAME STUDY MIN RETRIES TIMEOUT EPS1 EPS2 EPS3: a study folder with its plan and configs
setup() {
    mkdir -p "$1"
    cat >"$1/study.plan" <<PLAN
[study]
id = $2
classes = LUAD,LUSC,NORMAL
phases = fusion
[fusion]
modalities = rna,clinical
rna_names = NKX2-1, NAPSA, SFTA2, SFTA3, TMC5, CEACAM6, KRT7, MUC1
rna_names = KRT5, KRT6A, KRT6B, TP63, SOX2, DSG3, CALML3, PKP1
clinical_names = age, male, never_smoker, pack_years
rounds = 4
epochs = 1
optimizer = sgd
lr = 0.1
[privacy]
mechanism = dp-sgd
clip_norm = 1
noise_multiplier = 1
sample_rate = 0.25
; training's accounting alone: the reports un-noised (check_simulate.sh checks noised ones)
eval_noise_multiplier = 0
PLAN
    local hash port k
    hash=$(sha256sum "$1/study.plan" | cut -d' ' -f1)
    port=$(t_free_port)
    cat >"$1/server.conf" <<CONF
[server]
listen = 127.0.0.1:$port
study = $2
state_dir = state
plan = study.plan
audit_key = ../keys/server.key
min_clients = $3
retries = $4
round_timeout_s = $5
[tls]
ca = ../pki/ca.crt
cert = ../pki/fl-server.crt
key = ../pki/fl-server.key
[clients]
allow = hospital-1, hospital-2, hospital-3
CONF
    local eps_max=("" "$6" "$7" "$8")
    for k in 1 2 3; do
        cat >"$1/h$k.conf" <<CONF
[client]
server = 127.0.0.1:$port
study = $2
name = hospital-$k
state_dir = h$k
approve = $hash
threads = 1
[tls]
ca = ../pki/ca.crt
cert = ../pki/hospital-$k.crt
key = ../pki/hospital-$k.key
[data]
cohort = ../parts/part-$k.h5
[privacy]
epsilon_max = ${eps_max[$k]}
delta = 1e-5
CONF
    done
}

start_client() {
    OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$1.conf 2>>h$1.log &
    pid[c$1]=$!
}

# no_sanitizer_reports: the logs of this folder hold no sanitizer report (sanitizer builds)
no_sanitizer_reports() {
    grep -l "Sanitizer\|runtime error:" ./*.log 2>/dev/null &&
        t_fail "$(pwd): sanitizer report: $(grep -h -A8 "Sanitizer\|runtime error:" ./*.log | head -20)"
    return 0
}

# ---- (0) what a hospital refuses before any round: a DP plan without its budget, a plan's
# delta above its own, a budget that is not a number ----
setup s0 dp-budget-0 3 0 30 100 100 100
cd s0 || exit 1
t_start_server "$fedlung" server.conf || exit 1
sed '/^epsilon_max/d' h1.conf >noeps.conf
t_expect 1 "(0) no epsilon_max" -- "$fedlung" client --config noeps.conf --max-attempts 3
grep -q "it trains with DP-SGD and noeps.conf sets no \[privacy\] epsilon_max" err.txt ||
    t_fail "(0) no epsilon_max: $(cat err.txt)"
sed 's/^delta = 1e-5/delta = 1e-6/' h1.conf >lowdelta.conf
t_expect 1 "(0) a smaller delta" -- "$fedlung" client --config lowdelta.conf --max-attempts 3
grep -q "its delta 1e-05 is larger than this hospital's 1e-06" err.txt ||
    t_fail "(0) a smaller delta: $(cat err.txt)"
sed 's/^epsilon_max = .*/epsilon_max = -1/' h1.conf >bad.conf
t_expect 1 "(0) a bad epsilon_max" -- "$fedlung" client --config bad.conf
grep -q "bad.conf:.*epsilon_max '-1' is not a number > 0" err.txt ||
    t_fail "(0) a bad epsilon_max: $(cat err.txt)"
[ -e h1/privacy.state ] && t_fail "(0) a refused plan left a privacy.state"
t_stop_server
no_sanitizer_reports
cd ..

# ---- (1) hospital-3 refuses from round 3 on; the study finishes with the other two ----
setup s1 dp-budget 2 0 30 100 100 7
cd s1 || exit 1
t_start_server "$fedlung" server.conf || exit 1
# hospital-3, then hospital-1, so that both are in from the first round (it starts with two
# hospitals; a site that joins during a round takes part from the next one)
for k in 3 1; do
    start_client $k
    for _ in $(seq 100); do
        grep -q "JOIN hospital-$k" server.log && break
        sleep 0.1
    done
done
start_client 2
t_wait_clients 1 2 3
t_wait_server
rc=$?
[ "$rc" -eq 0 ] || t_fail "(1) the server exited $rc: $(tail -5 server.log)"
# rounds 1-4: fusion (site standardization: no statistics phase); hospital-3 takes part in 1 and
# 2 only
parts=$(tail -n +4 state/rounds.csv | cut -d, -f3 | tr '\n' ' ')
[ "$parts" = "2 2 " ] || t_fail "(1) participants in rounds 3-4: '$parts'"
e4=$(eps 12)
e4r=$(awk -v a="$e4" -v b="$(eps 8)" 'BEGIN { printf "%.2f", a - b }')
want="refused: round 3 would spend ε $e4r, total $(printf %.2f "$e4") > epsilon_max 7.00"
grep -qF "$want" h3.log || t_fail "(1) hospital-3's log lacks '$want': $(grep -i refused h3.log)"
grep -qF "refused: round 4 would spend" h3.log || t_fail "(1) hospital-3 did not refuse round 4"
grep -qF "REFUSED hospital-3 refused round 3: $want" server.log ||
    t_fail "(1) the server's log lacks the refusal: $(grep -i refused server.log)"
grep -q "DROPPED\|REFUSED hospital-[12]" server.log && t_fail "(1) another hospital was dropped"
grep -q "refused" h1.log && t_fail "(1) hospital-1 refused a round: $(grep refused h1.log)"
t_expect 0 "(1) audit verify server" -- "$fedlung" audit verify state/audit.log --key ../keys/server.pub
"$fedlung" audit show state/audit.log >audit.txt
grep -q " refused .*hospital-3" audit.txt || t_fail "(1) no refused record in the server's audit log"
grep -q '"kind":"join".*"epsilon_max":[0-9.e]*,"epsilon_spent":0,"delta":1e-05' state/audit.log ||
    t_fail "(1) the server's join records lack the hospitals' declared budgets"
# under DP nothing un-noised about the patients: no patient counts at Join, no statistics phase
grep '"kind":"join"' state/audit.log | grep -q '"patients"' &&
    t_fail "(1) a join record has patient counts: $(grep '"kind":"join"' state/audit.log | head -1)"
grep -qi "statistics" server.log && t_fail "(1) a statistics phase ran: $(grep -i statistics server.log)"
grep -q '"kind":"update_accepted".*"mechanism":"dp-sgd","clip_norm":[0-9.e-]*[1-9]' state/audit.log ||
    t_fail "(1) the server's update records lack the declared DP parameters"
for k in 1 3; do
    t_expect 0 "(1) audit verify h$k" -- "$fedlung" audit verify h$k/outbox.log --key h$k/outbox.pub
done
# the outboxes (JSON lines): updates with their DP numbers, the refusals with theirs
/usr/bin/python3 - "$(eps 4)" "$(eps 8)" "$e4" "$(eps 16)" <<'PY' || t_fail "(1) outbox records"
import json, sys
want = list(map(float, sys.argv[1:]))
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_privacy_budget: (1) " + what, file=sys.stderr)
        bad += 1
def records(k, kind):
    return [r for r in map(json.loads, open("h%d/outbox.log" % k)) if r["kind"] == kind]
ups = records(1, "update")
check([r["data"].get("epsilon_total") for r in ups] != [] and len(ups) == 4,
      "hospital-1 has %d update records, not 4" % len(ups))
check([r["round"] for r in ups] == [1, 2, 3, 4], "hospital-1's update rounds %r" %
      [r["round"] for r in ups])
for r, w in zip(ups, want):
    d = r["data"]
    check(abs(d.get("epsilon_total", -1) - w) < 1e-6 * w,
          "hospital-1 round %d epsilon_total %r, expected %r" % (r["round"], d.get("epsilon_total"), w))
    check(d.get("clip_norm") == 1 and d.get("noise_multiplier") == 1 and d.get("sample_rate") == 0.25
          and d.get("steps") == 4 and d.get("epsilon_round", 0) > 0 and "examples" not in d,
          "hospital-1 update record %r" % d)
ref = records(3, "refused")
check([r["round"] for r in ref] == [3, 4], "hospital-3 refused rounds %r" % [r["round"] for r in ref])
for r in ref:
    d = r["data"]
    check(d["reason"].startswith("refused: round %d would spend" % r["round"]) and
          d["epsilon_max"] == 7 and d["epsilon_total"] > 7 and d["noise_multiplier"] == 1,
          "hospital-3 refusal %r" % d)
for k in (1, 3):
    kinds = {r["kind"] for r in map(json.loads, open("h%d/outbox.log" % k))}
    check("statistics" not in kinds, "hospital-%d sent statistics: %r" % (k, kinds))
check([r["round"] for r in records(3, "update")] == [1, 2],
      "hospital-3 sent updates in rounds %r" % [r["round"] for r in records(3, "update")])
sys.exit(1 if bad else 0)
PY
[ "$(grep -c '^round=' h1/privacy.state)" = 4 ] || t_fail "(1) h1/privacy.state: $(cat h1/privacy.state)"
[ "$(grep -c '^round=' h3/privacy.state)" = 2 ] || t_fail "(1) h3/privacy.state: $(cat h3/privacy.state)"
no_sanitizer_reports
cd ..

# ---- (2) a restarted hospital remembers; too few hospitals: a retry, then exit 3 ----
setup s2 dp-budget-2 2 1 3 100 7 100
cp -r s1/h3 s2/h2 # hospital-2 starts from what hospital-3 spent in (1)
cd s2 || exit 1
t_start_server "$fedlung" server.conf || exit 1
for k in 1 2; do start_client $k; done
t_wait_server
rc=$?
[ "$rc" -eq 3 ] || t_fail "(2) the server exited $rc, not 3: $(tail -5 server.log)"
t_wait_clients 1 2
grep -q "spent so far: epsilon $(printf %.4g "$(eps 8)") over 2 rounds" h2.log ||
    t_fail "(2) hospital-2 did not remember what it spent: $(grep privacy h2.log)"
grep -qF "refused: round 1 would spend ε" h2.log || t_fail "(2) hospital-2 did not refuse round 1"
grep -q "REFUSED hospital-2 refused round 1" server.log || t_fail "(2) no refusal in the server's log"
grep -q "ROUND_RETRY" server.log || t_fail "(2) no retry: $(tail -5 server.log)"
grep -q "STUDY_STOPPED round 1 had 1 of the 2 updates needed after 2 attempts" server.log ||
    t_fail "(2) no study_stopped line: $(tail -5 server.log)"
[ "$(grep -c '^round=' h2/privacy.state)" = 2 ] || t_fail "(2) h2 spent more: $(cat h2/privacy.state)"
no_sanitizer_reports
cd ..
t_summary check_privacy_budget
