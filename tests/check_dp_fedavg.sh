#!/usr/bin/env bash
# check_dp_fedavg.sh - client-level DP-FedAvg with real processes on 127.0.0.1 over mutual TLS:
# a server and three hospitals run a statistics + fusion plan with mechanism = dp-fedavg
# (C 1, sigma 1, dp_clients 3, dp_dropouts 1). The study completes; every fusion update
# declares dp-fedavg with the plan's C and sigma and no example count (server audit log and the
# hospitals' outboxes); the server's audit log has one "dp_round" record per fusion round with
# the epsilon of `fedlung privacy epsilon` for q = 1 and the per-round noise multiplier
# sigma sqrt(3 / (3 - 1)); the evaluation records carry no per-site macro AUC.
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

cat >study.plan <<PLAN
[study]
id = dp-fedavg
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
[fusion]
modalities = rna,clinical
rna_features = 16
rounds = 2
epochs = 1
optimizer = sgd
lr = 0.1
[privacy]
mechanism = dp-fedavg
clip_norm = 1
noise_multiplier = 1
dp_clients = 3
dp_dropouts = 1
PLAN
t_study_confs dp-fedavg 3 3 "retries = 0" "round_timeout_s = 30"

t_start_server "$fedlung" server.conf || exit 1
for k in 1 2 3; do
    OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf 2>>h$k.log &
    pid[c$k]=$!
done
for k in 1 2 3; do
    if timeout 60 tail --pid="${pid[c$k]}" -f /dev/null; then
        wait "${pid[c$k]}" || t_fail "hospital-$k exited $?: $(tail -3 h$k.log)"
    else
        t_fail "hospital-$k still runs after 60 s: $(tail -3 h$k.log)"
    fi
    unset "pid[c$k]"
done
rc=124
if timeout 60 tail --pid="$t_server_pid" -f /dev/null; then
    wait "$t_server_pid"
    rc=$?
else
    kill -KILL "$t_server_pid" 2>/dev/null
fi
t_server_pid=
[ "$rc" -eq 0 ] || t_fail "the server exited $rc: $(tail -5 server.log)"
grep -q "DP-FedAvg (update clipped to C 1, noise std 0.707107 per coordinate" h1.log ||
    t_fail "hospital-1's log lacks the DP-FedAvg setting: $(grep privacy h1.log)"

t_expect 0 "audit verify server" -- "$fedlung" audit verify state/audit.log --key keys/server.pub
for k in 1 2 3; do
    t_expect 0 "audit verify h$k" -- "$fedlung" audit verify h$k/outbox.log --key h$k/outbox.pub
done
# sigma per round: 1 * sqrt(3 / 2) (three sites, each with noise for two)
sig=$(/usr/bin/python3 -c 'import math; print(repr(math.sqrt(1.5)))')
e1=$("$fedlung" privacy epsilon --sample-rate 1 --noise-multiplier "$sig" --steps 1 --delta 1e-5)
e2=$("$fedlung" privacy epsilon --sample-rate 1 --noise-multiplier "$sig" --steps 2 --delta 1e-5)
/usr/bin/python3 - "$e1" "$e2" <<'PY' || t_fail "audit and outbox records"
import json, math, sys
want = list(map(float, sys.argv[1:]))
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_dp_fedavg: " + what, file=sys.stderr)
        bad += 1
audit = [json.loads(l) for l in open("state/audit.log")]
dp = [r for r in audit if r["kind"] == "dp_round"]
check(len(dp) == 2, "%d dp_round records, not 2" % len(dp))
for r, w in zip(dp, want):
    d = r["data"]
    check(d.get("mechanism") == "dp-fedavg" and d.get("phase") == "fusion" and
          d.get("participants") == 3 and d.get("sample_rate") == 1 and d.get("clip_norm") == 1 and
          d.get("noise_multiplier") == 1 and
          abs(d.get("noise_multiplier_round", 0) - math.sqrt(1.5)) < 1e-12 and
          d.get("delta") == 1e-5, "dp_round record %r" % d)
    check(d.get("epsilon") is not None and abs(d["epsilon"] - w) < 1e-6 * w,
          "round %d epsilon %r, expected %r" % (r["round"], d.get("epsilon"), w))
check([r["data"]["rounds"] for r in dp] == [1, 2], "dp_round rounds %r" % [r["data"].get("rounds") for r in dp])
ups = [r for r in audit if r["kind"] == "update_accepted"]
fusion = [r for r in ups if r["round"] >= 2]
check(len(fusion) == 6, "%d fusion updates accepted, not 6" % len(fusion))
for r in fusion:
    d = r["data"]
    check(d.get("mechanism") == "dp-fedavg" and d.get("clip_norm") == 1 and
          d.get("noise_multiplier") == 1 and d.get("examples") == 0, "update record %r" % d)
evals = [r for r in audit if r["kind"] == "evaluation"]
check(len(evals) > 0, "no evaluation records")
check(all("macro_auc" not in r["data"] for r in evals), "a site's macro AUC under DP: %r" % evals)
for k in (1, 2, 3):
    out = [json.loads(l) for l in open("h%d/outbox.log" % k)]
    ups = [r for r in out if r["kind"] == "update" and r["data"]["phase"] == "fusion"]
    check(len(ups) == 2, "hospital-%d has %d fusion update records" % (k, len(ups)))
    for r in ups:
        d = r["data"]
        check(d.get("mechanism") == "dp-fedavg" and "examples" not in d and
              d.get("clip_norm") == 1 and abs(d.get("noise_std", 0) - 1 / math.sqrt(2)) < 1e-12,
              "hospital-%d update record %r" % (k, d))
sys.exit(1 if bad else 0)
PY
grep -q "DP_ROUND .*epsilon" server.log || t_fail "the server's log has no DP_ROUND line"
grep -l "Sanitizer\|runtime error:" ./*.log 2>/dev/null &&
    t_fail "sanitizer report: $(grep -h -A8 "Sanitizer\|runtime error:" ./*.log | head -20)"
t_summary check_dp_fedavg
