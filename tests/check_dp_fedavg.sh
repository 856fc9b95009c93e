#!/usr/bin/env bash
# check_dp_fedavg.sh - client-level DP-FedAvg with real processes on 127.0.0.1 over mutual TLS.
# Under DP the plan standardizes at each site: no statistics phase, the fusion rounds are 1..R.
# (1) A server and three hospitals run a fusion plan with mechanism = dp-fedavg
# (C 1, sigma 1, dp_clients 3, dp_dropouts 1); a hospital without [privacy] epsilon_max refuses
# the plan first. The study completes; nothing un-noised about the patients left a hospital (no
# statistics record in any outbox, no statistics phase in the server's log, no patient counts in
# the server's join records); every fusion update declares dp-fedavg with the plan's C
# and sigma and no example count (server audit log and the hospitals' outboxes); the server's
# audit log has one "dp_round" record per fusion round with the epsilon of `fedlung privacy
# epsilon` for q = 1 and the per-round noise multiplier sigma sqrt(3 / (3 - 1)); each hospital's
# ledger counts its rounds at q = 1, sigma 1 (outbox epsilon, privacy.state); the evaluation
# records carry no per-site macro AUC.
# (2) Adaptive clipping (Andrew et al. 2021) from a clip norm far above every update norm: C
# shrinks every round, each step is C exp(-0.2 (b - 0.5)) for the mean b of the noised bits the
# server received, the hospitals clip to the round's C and send a bit, rounds.csv has C, the
# epsilon is that of the same plan without adaptive clipping, and hospital-3, whose epsilon_max
# allows two rounds, is refused by its own ledger ("refused" in its log, its outbox and the
# server's log) while the study goes on with the other two (round 1 has hospitals 3 and 1,
# round 2 all three, rounds 3 and 4 hospitals 1 and 2).
# (3) From far below every update norm: C grows every round (all three hospitals in each).
# Usage (ctest, from tests/): bash check_dp_fedavg.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_dp_fedavg.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_dp_fedavg: "
t_expect_timeout=60
declare -A pid
t_on_exit 'for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done'

t_federation_data "$fedlung" 3 --patients 90 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 3
# eps Z T: epsilon of T Gaussian mechanisms of multiplier Z at q = 1, delta 1e-5
eps() {
    "$fedlung" privacy epsilon --sample-rate 1 --noise-multiplier "$1" --steps "$2" --delta 1e-5
}

# plan ROUNDS PRIVACY-LINES...: study.plan of a fusion study, standardized at each site (the
# default under DP: no statistics phase; the plan names the features)
plan() {
    local rounds=$1
    shift
    cat >study.plan <<PLAN
[study]
id = dp-fedavg
classes = LUAD,LUSC,NORMAL
phases = fusion
[fusion]
modalities = rna,clinical
rna_names = NKX2-1, NAPSA, SFTA2, SFTA3, TMC5, CEACAM6, KRT7, MUC1
rna_names = KRT5, KRT6A, KRT6B, TP63, SOX2, DSG3, CALML3, PKP1
clinical_names = age, male, never_smoker, pack_years
rounds = $rounds
epochs = 1
optimizer = sgd
lr = 0.1
[privacy]
mechanism = dp-fedavg
dp_clients = 3
dp_dropouts = 1
; training's accounting alone: the reports un-noised (check_simulate.sh checks noised ones)
eval_noise_multiplier = 0
PLAN
    printf '%s\n' "$@" >>study.plan
}

# budgets EPS1 EPS2 EPS3: each hospital's [privacy] section
budgets() {
    local k e=("" "$@")
    for k in 1 2 3; do
        printf '[privacy]\nepsilon_max = %s\ndelta = 1e-5\n' "${e[$k]}" >>h$k.conf
    done
}

# federation [ARG...]: runs the server and the three hospitals to the end (hospital-3 first,
# with ARGs, then hospital-1, each once the server has logged the one before joining, then
# hospital-2: a round starts as soon as min_clients hospitals have joined, so with min_clients 2
# round 1 has hospitals 3 and 1, and hospital-3's --delay-upload keeps it open until hospital-2
# is in, which takes part from round 2); the server must exit 0
federation() {
    local k rc
    t_start_server "$fedlung" server.conf || return 1
    for k in 3 1 2; do
        if [ "$k" = 3 ]; then
            OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf "$@" 2>>h$k.log &
        else
            OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf 2>>h$k.log &
        fi
        pid[c$k]=$!
        if [ "$k" != 2 ]; then
            for _ in $(seq 100); do
                grep -q "JOIN hospital-$k" server.log && break
                sleep 0.1
            done
        fi
    done
    t_wait_clients 1 2 3
    t_wait_server
    rc=$?
    [ "$rc" -eq 0 ] || t_fail "$(pwd): the server exited $rc: $(tail -5 server.log)"
    t_expect 0 "$(pwd): audit verify server" -- \
        "$fedlung" audit verify state/audit.log --key keys/server.pub
    for k in 1 2 3; do
        t_expect 0 "$(pwd): audit verify h$k" -- \
            "$fedlung" audit verify h$k/outbox.log --key h$k/outbox.pub
    done
    grep -l "Sanitizer\|runtime error:" ./*.log 2>/dev/null &&
        t_fail "$(pwd): sanitizer report:" \
            "$(grep -h -A8 "Sanitizer\|runtime error:" ./*.log | head -20)"
    return 0
}

# ---- (1) fixed clipping ----
plan 2 "clip_norm = 1" "noise_multiplier = 1"
t_study_confs dp-fedavg 3 3 "retries = 0" "round_timeout_s = 30"
cp h1.conf noeps.conf
budgets 100 100 100
t_start_server "$fedlung" server.conf || exit 1
t_expect 1 "(1) no epsilon_max" -- "$fedlung" client --config noeps.conf --max-attempts 3
grep -q "it trains with DP-FedAvg and noeps.conf sets no \[privacy\] epsilon_max" err.txt ||
    t_fail "(1) no epsilon_max: $(cat err.txt)"
t_stop_server
rm -rf state h1
federation
grep -q "DP-FedAvg (update clipped to C 1, noise std 0.707107 per coordinate" h1.log ||
    t_fail "hospital-1's log lacks the DP-FedAvg setting: $(grep privacy h1.log)"
grep -q "spent so far: epsilon 0 over 0 rounds, epsilon_max 100 at delta 1e-05" h1.log ||
    t_fail "hospital-1's log lacks its budget: $(grep privacy h1.log)"
# sigma per round: 1 * sqrt(3 / 2) (three sites, each with noise for two)
sig=$(/usr/bin/python3 -c 'import math; print(repr(math.sqrt(1.5)))')
/usr/bin/python3 - "$(eps "$sig" 1)" "$(eps "$sig" 2)" "$(eps 1 1)" "$(eps 1 2)" <<'PY' ||
import json, math, sys
want = list(map(float, sys.argv[1:3]))
site = list(map(float, sys.argv[3:5]))
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_dp_fedavg: (1) " + what, file=sys.stderr)
        bad += 1
audit = [json.loads(l) for l in open("state/audit.log")]
dp = [r for r in audit if r["kind"] == "dp_round"]
check(len(dp) == 2, "%d dp_round records, not 2" % len(dp))
for r, w in zip(dp, want):
    d = r["data"]
    check(d.get("mechanism") == "dp-fedavg" and d.get("phase") == "fusion" and
          d.get("participants") == 3 and d.get("sample_rate") == 1 and d.get("clip_norm") == 1 and
          d.get("noise_multiplier") == 1 and "adaptive_clip" not in d and
          abs(d.get("noise_multiplier_round", 0) - math.sqrt(1.5)) < 1e-12 and
          d.get("delta") == 1e-5, "dp_round record %r" % d)
    check(d.get("epsilon") is not None and abs(d["epsilon"] - w) < 1e-6 * w,
          "round %d epsilon %r, expected %r" % (r["round"], d.get("epsilon"), w))
rounds = [r["data"].get("rounds") for r in dp]
check(rounds == [1, 2], "dp_round rounds %r" % rounds)
ups = [r for r in audit if r["kind"] == "update_accepted"]
fusion = [r for r in ups if r["round"] in (1, 2)]
check(len(fusion) == 6 and len(ups) == 6,
      "%d fusion updates accepted in rounds 1-2 of %d, not 6" % (len(fusion), len(ups)))
for r in fusion:
    d = r["data"]
    check(d.get("mechanism") == "dp-fedavg" and d.get("clip_norm") == 1 and
          d.get("noise_multiplier") == 1 and d.get("examples") == 0 and "clip_bit" not in d,
          "update record %r" % d)
evals = [r for r in audit if r["kind"] == "evaluation"]
check(len(evals) > 0, "no evaluation records")
check(all("macro_auc" not in r["data"] for r in evals), "a site's macro AUC under DP: %r" % evals)
joins = [r for r in audit if r["kind"] == "join" and "epsilon_max" in r["data"]]
check(len(joins) >= 3, "the join records lack the hospitals' budgets: %r" % joins)
# site standardization: no statistics phase, no patient counts at Join
check(not any("patients" in r["data"] for r in audit if r["kind"] == "join"),
      "a join record has patient counts: %r" % [r for r in audit if r["kind"] == "join"])
for k in (1, 2, 3):
    out = [json.loads(l) for l in open("h%d/outbox.log" % k)]
    kinds = {r["kind"] for r in out}
    check("statistics" not in kinds, "hospital-%d sent statistics: %r" % (k, kinds))
    ups = [r for r in out if r["kind"] == "update" and r["data"]["phase"] == "fusion"]
    check(len(ups) == 2, "hospital-%d has %d fusion update records" % (k, len(ups)))
    for r, w in zip(ups, site):
        d = r["data"]
        check(d.get("mechanism") == "dp-fedavg" and "examples" not in d and
              d.get("clip_norm") == 1 and abs(d.get("noise_std", 0) - 1 / math.sqrt(2)) < 1e-12 and
              d.get("sample_rate") == 1 and d.get("noise_multiplier") == 1 and
              "clip_bit" not in d, "hospital-%d update record %r" % (k, d))
        check(abs(d.get("epsilon_total", -1) - w) < 1e-6 * w and d.get("epsilon_round", 0) > 0,
              "hospital-%d round %d epsilon_total %r, expected %r"
              % (k, r["round"], d.get("epsilon_total"), w))
    ledger = [l for l in open("h%d/privacy.state" % k) if l.startswith("round=")]
    check([l.split()[2:4] for l in ledger] == [["q=1", "sigma=1"]] * 2,
          "hospital-%d privacy.state %r" % (k, ledger))
sys.exit(1 if bad else 0)
PY
    t_fail "(1) audit and outbox records"
grep -q "DP_ROUND .*epsilon" server.log || t_fail "(1) the server's log has no DP_ROUND line"
grep -qi "statistics" server.log &&
    t_fail "(1) a statistics phase ran: $(grep -i statistics server.log)"
[ "$(tail -n +2 state/rounds.csv | cut -d, -f2 | sort -u)" = fusion ] ||
    t_fail "(1) rounds other than fusion: $(cat state/rounds.csv)"

# adaptive CASE C0 ROUNDS EPS3 MIN [ARG...]: a federation with adaptive clipping in folder CASE
# from C0 (noise_multiplier 0.2, the default clip_bit_noise 3 / 20 = 0.15, target 0.5, step 0.2)
# with hospital-3's epsilon_max EPS3, min_clients MIN and hospital-3's client ARGs
adaptive() {
    mkdir -p "$1" && cd "$1" || return 1
    ln -s ../pki ../parts ../keys .
    plan "$3" "clip_norm = $2" "noise_multiplier = 0.2" "adaptive_clip = true"
    t_study_confs dp-fedavg 3 "$5" "retries = 0" "round_timeout_s = 30"
    budgets 1000 1000 "$4"
    federation "${@:6}"
}

# check_adaptive DIRECTION ROUNDS EPS3 LATE REFUSED...: the records of the adaptive study in ./:
# C moves DIRECTION (down/up) every round, by the rule's step from the bits the server accepted;
# the hospitals declare and record the round's C and their bit; the epsilon is the plan's at z
# (the server's: each round of m sites as without adaptive clipping, q m / 3, multiplier
# z sqrt(m / 2), composed by `fedlung privacy epsilon --phase`); hospital-2 takes part from
# round LATE + 1 on, hospital-3 (epsilon_max EPS3) refuses the rounds in REFUSED, every other
# hospital sends an update in every round
check_adaptive() {
    local z=0.2 zd
    zd=$(/usr/bin/python3 -c 'print(repr((0.2 ** -2 - (2 * 0.15) ** -2) ** -0.5))')
    /usr/bin/python3 - "$1" "$2" "$zd" "$(eps $z 1)" "$(eps $z 2)" "$fedlung" \
        "${@:3}" <<'PY' || t_fail "$(pwd): adaptive clipping records"
import csv, json, math, subprocess, sys
direction, rounds, zd = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
site_eps = list(map(float, sys.argv[4:6]))
fedlung = sys.argv[6]
eps_max3, late = float(sys.argv[7]), int(sys.argv[8])
refused = list(map(int, sys.argv[9:]))
def eps_of(phases):  # the epsilon of these (q, sigma) rounds, one step each, at delta 1e-5
    a = [fedlung, "privacy", "epsilon", "--delta", "1e-5"]
    for q, sigma in phases:
        a += ["--phase", "%r,%r,1" % (q, sigma)]
    return float(subprocess.run(a, check=True, capture_output=True, text=True).stdout.split()[0])
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_dp_fedavg: (%s) %s" % (direction, what), file=sys.stderr)
        bad += 1
audit = [json.loads(l) for l in open("state/audit.log")]
dp = [r["data"] for r in audit if r["kind"] == "dp_round"]
check(len(dp) == rounds, "%d dp_round records, not %d" % (len(dp), rounds))
cs = [d["clip_norm"] for d in dp]
for i, d in enumerate(dp):
    rnd = 1 + i
    bits = [r["data"].get("clip_bit") for r in audit
            if r["kind"] == "update_accepted" and r["round"] == rnd]
    check(len(bits) == d["participants"] and None not in bits, "round %d bits %r" % (rnd, bits))
    b = min(1.0, max(0.0, 0.5 + (sum(bits) - 0.5 * len(bits)) / 3))
    check(abs(d["clip_bits_mean"] - b) < 1e-12,
          "round %d bits mean %r, expected %r" % (rnd, d["clip_bits_mean"], b))
    nxt = d["clip_norm"] * math.exp(-0.2 * (b - 0.5))
    check(abs(d["clip_next"] - nxt) < 1e-12 * nxt,
          "round %d next C %r, expected %r" % (rnd, d["clip_next"], nxt))
    moved = "round %d: C %r -> %r (bits %r)" % (rnd, d["clip_norm"], d["clip_next"], b)
    if direction == "down":
        check(d["clip_next"] < d["clip_norm"] and b > 0.5, moved)
    else:
        check(d["clip_next"] > d["clip_norm"] and b < 0.5, moved)
    if i + 1 < len(dp):
        check(dp[i + 1]["clip_norm"] == d["clip_next"],
              "round %d's C is not round %d's next C" % (rnd + 1, rnd))
    check(d.get("adaptive_clip") is True and
          abs(d.get("noise_multiplier_update", 0) - zd) < 1e-12 and
          d.get("clip_bit_noise") == 0.15 and d.get("target_quantile") == 0.5 and
          d.get("clip_lr") == 0.2 and d.get("noise_multiplier") == 0.2, "dp_round record %r" % d)
    for r in audit:
        if r["kind"] == "update_accepted" and r["round"] == rnd:
            check(r["data"]["clip_norm"] == d["clip_norm"] and r["data"]["noise_multiplier"] == 0.2,
                  "round %d update declares %r" % (rnd, r["data"]))
# the accounting is that of the plan without adaptive clipping: a round of m of the 3 sites is
# one Gaussian mechanism at q m / 3 with multiplier z 0.2 sqrt(m / 2)
phases = []
for i, d in enumerate(dp):
    m = d["participants"]
    phases.append((m / 3, 0.2 * math.sqrt(m / 2)))
    check(abs(d["sample_rate"] - m / 3) < 1e-12 and
          abs(d["noise_multiplier_round"] - phases[-1][1]) < 1e-12,
          "round %d over %d sites: q %r, multiplier %r" % (i + 1, m, d["sample_rate"],
                                                         d["noise_multiplier_round"]))
    w = eps_of(phases)
    check(abs(d["epsilon"] - w) < 1e-6 * w,
          "round %d epsilon %r, expected %r (rounds of %r sites, as without adaptive clipping)"
          % (i + 1, d["epsilon"], w, [x["participants"] for x in dp[:i + 1]]))
# rounds.csv: the round's C; every round a fusion round (site standardization: no statistics)
with open("state/rounds.csv") as f:
    every = list(csv.DictReader(f))
rows = [r for r in every if r["phase"] == "fusion"]
check([r["round"] for r in every] == [str(r) for r in range(1, rounds + 1)] and
      len(rows) == rounds, "rounds.csv rows %r" % [(r["round"], r["phase"]) for r in every])
check([abs(float(r["clip_norm"]) - c) <= 1e-8 * c for r, c in zip(rows, cs)] == [True] * rounds,
      "rounds.csv clip_norm %r, the audit's %r" % ([r["clip_norm"] for r in rows], cs))
# nothing un-noised about the patients left a hospital: no statistics, no patient counts
check(not any("patients" in r["data"] for r in audit if r["kind"] == "join"),
      "a join record has patient counts: %r" % [r for r in audit if r["kind"] == "join"])
for k in (1, 2, 3):
    out = [json.loads(l) for l in open("h%d/outbox.log" % k)]
    kinds = {r["kind"] for r in out}
    check("statistics" not in kinds, "hospital-%d sent statistics: %r" % (k, kinds))
    ups = [r for r in out if r["kind"] == "update" and r["data"]["phase"] == "fusion"]
    first = late + 1 if k == 2 else 1
    want = [r for r in range(first, rounds + 1) if k != 3 or r not in refused]
    got = [r["round"] for r in ups]
    check(got == want, "hospital-%d sent fusion updates in rounds %r, not %r" % (k, got, want))
    for j, r in enumerate(ups):
        d = r["data"]
        c = cs[r["round"] - 1]
        check(d.get("clip_norm") == c and d.get("adaptive_clip") is True and
              abs(d.get("noise_multiplier_update", 0) - zd) < 1e-12 and
              abs(d.get("noise_std", 0) - zd * c / math.sqrt(2)) < 1e-12 * zd * c and
              abs(d.get("clip_bit_std", 0) - 0.15 / math.sqrt(2)) < 1e-12 and
              isinstance(d.get("clip_bit"), float), "hospital-%d update record %r" % (k, d))
        if j < 2:
            check(abs(d["epsilon_total"] - site_eps[j]) < 1e-6 * site_eps[j],
                  "hospital-%d epsilon_total %r, expected %r"
                  % (k, d["epsilon_total"], site_eps[j]))
    if k == 3:
        ref = [r for r in out if r["kind"] == "refused"]
        got = [r["round"] for r in ref]
        check(got == refused, "hospital-3 refused rounds %r, not %r" % (got, refused))
        for r in ref:
            d = r["data"]
            check(d["reason"].startswith("refused: round %d would spend" % r["round"]) and
                  d["epsilon_max"] == eps_max3 and d["epsilon_total"] > eps_max3 and
                  d["mechanism"] == "dp-fedavg" and "clip_bit" not in d,
                  "hospital-3 refusal %r" % d)
sys.exit(1 if bad else 0)
PY
}

# ---- (2) adaptive clipping from far above (update norms are about 0.25): C shrinks; hospital-3's
# budget (70) allows two rounds at z 0.2 (35.1, 57.3; three: 77.4). min_clients 2: round 1 has
# hospitals 3 and 1 (hospital-2 joins during it, kept open by hospital-3's --delay-upload), round
# 2 all three, rounds 3 and 4 hospitals 1 and 2 (hospital-3 refuses) ----
adaptive s2 5 4 70 2 --delay-upload 2
check_adaptive down 4 70 1 3 4
e2=$(eps 0.2 2)
e3=$(eps 0.2 3)
er=$(/usr/bin/python3 -c "print('%.2f' % ($e3 - $e2))")
want="refused: round 3 would spend ε $er, total $(printf %.2f "$e3") > epsilon_max 70.00"
grep -qF "$want" h3.log || t_fail "(2) hospital-3's log lacks '$want': $(grep -i refused h3.log)"
grep -q "REFUSED hospital-3 refused round 3: refused: round 3 would spend" server.log ||
    t_fail "(2) the server's log lacks the refusal: $(grep -i refused server.log)"
grep -q "REFUSED hospital-3 refused round 4: refused: round 4 would spend" server.log ||
    t_fail "(2) the server's log lacks the refusal of round 4: $(grep -i refused server.log)"
[ "$(tail -n +2 state/rounds.csv | cut -d, -f3 | tr '\n' ' ')" = "2 3 2 2 " ] ||
    t_fail "(2) participants: $(cat state/rounds.csv)"
grep -qi "statistics" server.log &&
    t_fail "(2) a statistics phase ran: $(grep -i statistics server.log)"
grep -q "DP-FedAvg: update norm .* (not sent), clipped to 5, .*; clipping bit 1 sent as" h1.log ||
    t_fail "(2) hospital-1's log lacks its bit: $(grep 'update norm' h1.log | head -2)"
cd ..

# ---- (3) adaptive clipping from far below: C grows (min_clients 3: all three in every round) ----
adaptive s3 0.005 3 1000 3
check_adaptive up 3 1000 0
[ "$(tail -n +2 state/rounds.csv | cut -d, -f3 | tr '\n' ' ')" = "3 3 3 " ] ||
    t_fail "(3) participants: $(cat state/rounds.csv)"
cd ..
t_summary check_dp_fedavg
