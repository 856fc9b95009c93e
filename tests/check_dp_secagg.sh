#!/usr/bin/env bash
# check_dp_secagg.sh - differential privacy together with secure aggregation, with real processes
# on 127.0.0.1 over mutual TLS (a server and three hospitals, 2 fusion rounds; under DP the plan
# standardizes at each site, so no statistics phase):
#  a) mechanism = dp-fedavg with secagg = true (C 1, sigma 1, dp_clients 3, dp_dropouts 1): each
#     hospital clips its update, encodes it and adds the discrete Gaussian in the encoded domain
#     (its log says so, with std sigma C / sqrt(3 - 1)); the server only unmasks sums; the
#     "dp_round" records spend exactly the epsilon of plain DP-FedAvg (the rounding is inside the
#     clip, fed/plan_secagg.h), which `fedlung privacy epsilon` gives independently; the outbox
#     records declare dp-fedavg, the noise std and the hospital's own epsilon, and carry no
#     example count.
#  b) mechanism = dp-sgd with secagg = true and update_clip: every hospital's own ledger spends
#     its DP-SGD epsilon each fusion round (outbox and log), its masked updates are clipped to
#     update_clip, and the server only unmasks sums.
# Both studies complete and both audit logs and every outbox verify. In both, nothing un-noised
# about the patients left a hospital: no statistics record in any outbox, no statistics phase in
# the server's log or rounds.csv, no patient counts in the server's join records.
# Usage (ctest, from tests/): bash check_dp_secagg.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_dp_secagg.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_dp_secagg: "
t_expect_timeout=60
declare -A pid
t_on_exit 'for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done'
top=$work

t_federation_data "$fedlung" 3 --patients 90 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 5

# run_study DIR PRIVACY-LINES...: the study in DIR with that [privacy] section; every hospital
# has epsilon_max 50
run_study() {
    local dir=$1 k rc n
    shift
    mkdir -p "$dir" && cd "$dir" || return 1
    ln -s ../pki ../keys ../parts .
    {
        printf '[study]\nid = dp-secagg\nclasses = LUAD,LUSC,NORMAL\nphases = fusion\n'
        printf '[fusion]\nmodalities = rna,clinical\n'
        printf 'rna_names = NKX2-1, NAPSA, SFTA2, SFTA3, TMC5, CEACAM6, KRT7, MUC1\n'
        printf 'rna_names = KRT5, KRT6A, KRT6B, TP63, SOX2, DSG3, CALML3, PKP1\n'
        printf 'clinical_names = age, male, never_smoker, pack_years\nrounds = 2\nepochs = 1\n'
        printf 'optimizer = sgd\nlr = 0.1\nweighted = false\n[privacy]\n'
        # training's accounting alone: the reports un-noised (check_simulate.sh: noised ones)
        printf 'eval_noise_multiplier = 0\n'
        printf '%s\n' "$@"
    } >study.plan
    t_study_confs dp-secagg 3 3 "retries = 0" "round_timeout_s = 30"
    for k in 1 2 3; do printf '[privacy]\nepsilon_max = 50\ndelta = 1e-5\n' >>h$k.conf; done
    t_start_server "$fedlung" server.conf || return 1
    for k in 1 2 3; do
        OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf 2>>h$k.log &
        pid[c$k]=$!
    done
    t_wait_clients 1 2 3
    t_wait_server 60
    rc=$?
    [ "$rc" -eq 0 ] || t_fail "$dir: the server exited $rc: $(tail -5 server.log)"
    t_expect 0 "$dir: audit verify server" -- \
        "$fedlung" audit verify state/audit.log --key keys/server.pub
    for k in 1 2 3; do
        t_expect 0 "$dir: audit verify h$k" -- \
            "$fedlung" audit verify h$k/outbox.log --key h$k/outbox.pub
    done
    n=$(grep -c '"kind":"secagg_unmasked"' state/audit.log)
    [ "$n" -eq 2 ] || t_fail "$dir: $n secagg_unmasked records, expected one per fusion round"
    # site standardization: no statistics left any hospital (no record of that kind or phase in
    # an outbox), no patient counts at Join, no statistics phase at the server
    [ "$(grep -c '"kind":"join"' state/audit.log)" -ge 3 ] || t_fail "$dir: fewer than 3 joins"
    grep '"kind":"join"' state/audit.log | grep -q '"patients"' &&
        t_fail "$dir: a join record has patient counts: $(grep '"patients"' state/audit.log)"
    grep -il "statistics" h[123]/outbox.log &&
        t_fail "$dir: statistics left a hospital: $(grep -hi statistics h[123]/outbox.log)"
    grep -qi "statistics" server.log &&
        t_fail "$dir: a statistics phase ran: $(grep -i statistics server.log)"
    [ "$(tail -n +2 state/rounds.csv | cut -d, -f1,2 | tr '\n' ' ')" = "1,fusion 2,fusion " ] ||
        t_fail "$dir: rounds.csv: $(cat state/rounds.csv)"
    grep -l "Sanitizer\|runtime error:" ./*.log 2>/dev/null &&
        t_fail "$dir: sanitizer report: $(grep -h -A8 "Sanitizer\|runtime error:" ./*.log | head)"
    cd "$top" || return 1
}

# ---- a) DP-FedAvg under secure aggregation ----
run_study a "mechanism = dp-fedavg" "clip_norm = 1" "noise_multiplier = 1" "dp_clients = 3" \
    "dp_dropouts = 1" "delta = 1e-5" "secagg = true"
for k in 1 2 3; do
    n=$(grep -Ec "DP-FedAvg under secure aggregation: update norm .* \(not sent\), clipped to (1|0\.99[0-9]*); discrete Gaussian noise of std 0.707107 joins the encoding" a/h$k.log)
    [ "$n" -eq 2 ] || t_fail "a: hospital-$k logged $n encoded-noise updates, not 2: $(grep 'round [12]' a/h$k.log | head -4)"
done
sig=$(/usr/bin/python3 -c 'import math; print(repr(math.sqrt(1.5)))')
e1=$("$fedlung" privacy epsilon --sample-rate 1 --noise-multiplier "$sig" --steps 1 --delta 1e-5)
e2=$("$fedlung" privacy epsilon --sample-rate 1 --noise-multiplier "$sig" --steps 2 --delta 1e-5)
/usr/bin/python3 - "$e1" "$e2" <<'PY' || t_fail "a: audit and outbox records"
import json, math, sys
want = list(map(float, sys.argv[1:]))
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_dp_secagg: a: " + what, file=sys.stderr)
        bad += 1
audit = [json.loads(l) for l in open("a/state/audit.log")]
dp = [r for r in audit if r["kind"] == "dp_round"]
check(len(dp) == 2, "%d dp_round records, not 2" % len(dp))
for r, w in zip(dp, want):
    d = r["data"]
    check(d.get("epsilon") is not None and abs(d["epsilon"] - w) < 1e-6 * w,
          "round %d epsilon %r, expected %r (plain DP-FedAvg's)" % (r["round"], d.get("epsilon"), w))
for k in (1, 2, 3):
    out = [json.loads(l) for l in open("a/h%d/outbox.log" % k)]
    ups = [r for r in out if r["kind"] == "masked_update" and r["data"]["phase"] == "fusion"]
    check(len(ups) == 2, "hospital-%d has %d masked fusion updates" % (k, len(ups)))
    for r in ups:
        d = r["data"]
        check(d.get("mechanism") == "dp-fedavg" and "examples" not in d and
              abs(d.get("noise_std", 0) - 1 / math.sqrt(2)) < 1e-12 and
              d.get("epsilon_total", 0) > 0, "hospital-%d update record %r" % (k, d))
sys.exit(1 if bad else 0)
PY

# ---- b) DP-SGD under secure aggregation ----
run_study b "mechanism = dp-sgd" "clip_norm = 1" "noise_multiplier = 1" "sample_rate = 0.25" \
    "delta = 1e-5" "secagg = true" "update_clip = 20"
for k in 1 2 3; do
    n=$(grep -c "fusion: update norm .*, clipped to 20$" b/h$k.log)
    [ "$n" -eq 2 ] || t_fail "b: hospital-$k clipped $n updates to update_clip, not 2"
    n=$(grep -c "fusion: DP-SGD .* ε this round" b/h$k.log)
    [ "$n" -eq 2 ] || t_fail "b: hospital-$k logged $n DP-SGD rounds, not 2"
done
/usr/bin/python3 - <<'PY' || t_fail "b: outbox records"
import json, sys
bad = 0
for k in (1, 2, 3):
    out = [json.loads(l) for l in open("b/h%d/outbox.log" % k)]
    ups = [r for r in out if r["kind"] == "masked_update" and r["data"]["phase"] == "fusion"]
    eps = [r["data"].get("epsilon_total") for r in ups]
    if len(ups) != 2 or any(e is None or not e > 0 for e in eps) or not eps[1] > eps[0]:
        print("FAIL check_dp_secagg: b: hospital-%d masked updates %r" % (k, [r["data"] for r in ups]),
              file=sys.stderr)
        bad += 1
    for r in ups:
        if r["data"].get("sample_rate") != 0.25 or "examples" in r["data"]:
            print("FAIL check_dp_secagg: b: hospital-%d record %r" % (k, r["data"]), file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
PY
t_summary check_dp_secagg
