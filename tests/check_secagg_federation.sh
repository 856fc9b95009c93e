#!/usr/bin/env bash
# check_secagg_federation.sh - secure aggregation over the real system: a server and four
# hospital clients on 127.0.0.1 over mutual TLS, the statistics phase (plain), then 2 fusion
# rounds whose updates are clipped, encoded ENCODING_FIXED32, masked (crypto/secagg.h) and only
# summed by the server (AdvertiseKeys, ShareKeys, masked PutUpdate, Unmask).
#  a) secagg = true: the study completes; the audit log verifies and holds the secagg records,
#     each key advert with the SHA-256 of the certificate that signed it (the hospital's own,
#     which the server checked against the TLS connection before relaying it to the peers, who
#     checked it against the CA; the refusals of tampered adverts are test_task_secagg.c's).
#  b) the same plan with secagg = false (same clip norm, uniform weights): the final models agree
#     up to the fixed-point rounding (the predictions of both on every pooled patient, and the
#     federated losses, to 1e-4; see the tolerance below).
#  c) secagg = true with hospital-4 killed after it shared its keys and before its masked input
#     (it waits --delay-upload): the round completes with the exact sum of the other three (the
#     server rebuilds the dropped site's mask key from t = 3 shares), recorded as a dropout.
#  d) secagg = true with hospital-4 killed after its masked input and before Unmask: the round
#     completes from 3 answers with all 4 inputs in the sum (its self mask rebuilt).
# (The exactness of these sums is tests/test_secagg.c's; here, that the federation gets there.)
# Usage (ctest, from tests/): bash check_secagg_federation.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_secagg_federation.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_secagg_federation: "
t_expect_timeout=120
pids=()
t_on_exit 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done'
top=$work

t_federation_data "$fedlung" 4 --patients 120 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 7

# write_plan SECAGG: the study plan, with or without secure aggregation
write_plan() {
    cat <<PLAN
[study]
id = secagg-fed
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
bins = 200
[fusion]
modalities = rna,methylation,clinical
rna_features = 16
meth_features = 16
dropout = 0
rounds = 2
local_steps = 2
batch = 65536
optimizer = sgd
lr = 0.5
momentum = 0
weight_decay = 0
strategy = fedavg
weighted = false
[privacy]
clip_norm = 0.5
PLAN
    [ "$1" = true ] && echo "secagg = true"
}

# run_study DIR SECAGG [KILL]: a federation in DIR. KILL = share: hospital-4 waits before every
# upload and is killed while it waits in the first fusion round (round 2), after ShareKeys;
# KILL = unmask: the other three wait before every upload and hospital-4 is killed once its
# round-2 masked input is in, before the Unmask step (which cannot begin without the others').
run_study() {
    local dir=$1 secagg=$2 kill4=${3:-}
    # every site in every round of a and b (the statistics phase decides the features: a round
    # begun before the 4th site joined would standardize differently); c, d go on without one
    local timeout=60 min=4
    [ -n "$kill4" ] && min=3
    # the dead site is waited for at each step; the delays must fit the statistics round's
    [ -n "$kill4" ] && timeout=10
    mkdir -p "$dir" && cd "$dir" || return 1
    write_plan "$secagg" >study.plan
    local hash port k
    hash=$(sha256sum study.plan | cut -d' ' -f1)
    port=$(t_free_port)
    cat >server.conf <<CONF
[server]
listen = 127.0.0.1:$port
study = secagg-fed
state_dir = state
plan = study.plan
audit_key = $top/keys/server.key
min_clients = $min
round_timeout_s = $timeout
[tls]
ca = $top/pki/ca.crt
cert = $top/pki/fl-server.crt
key = $top/pki/fl-server.key
[clients]
allow = hospital-1, hospital-2, hospital-3, hospital-4
CONF
    for k in 1 2 3 4; do
        cat >h$k.conf <<CONF
[client]
server = 127.0.0.1:$port
study = secagg-fed
name = hospital-$k
state_dir = h$k
approve = $hash
threads = 1
[tls]
ca = $top/pki/ca.crt
cert = $top/pki/hospital-$k.crt
key = $top/pki/hospital-$k.key
[data]
cohort = $top/parts/part-$k.h5
CONF
    done
    t_start_server "$fedlung" server.conf || return 1
    pids=()
    for k in 1 2 3 4; do
        if [ "$kill4" = share ] && [ $k = 4 ]; then # its own pid, to kill it (not timeout's)
            OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf --delay-upload 5 \
                2>h$k.log &
        elif [ "$kill4" = unmask ] && [ $k = 4 ]; then
            OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf 2>h$k.log &
        elif [ "$kill4" = unmask ]; then
            OMP_WAIT_POLICY=PASSIVE timeout 150 "$fedlung" client --config h$k.conf \
                --delay-upload 4 2>h$k.log &
        else
            OMP_WAIT_POLICY=PASSIVE timeout 150 "$fedlung" client --config h$k.conf 2>h$k.log &
        fi
        pids+=($!)
    done
    if [ -n "$kill4" ]; then
        local _ mark="round 2: waiting"
        [ "$kill4" = unmask ] && mark="round 2 fusion: trained"
        for _ in $(seq 600); do
            grep -q "$mark" h4.log 2>/dev/null && break
            sleep 0.1
        done
        grep -q "$mark" h4.log || t_fail "$dir: hospital-4 never reached '$mark'"
        grep -q "secagg_shares" h4.log || t_fail "$dir: hospital-4 had not shared its keys"
        grep -q "round 2 fusion: secure aggregation: sent secagg_unmask" h4.log &&
            t_fail "$dir: hospital-4 answered Unmask before it was killed"
        kill -KILL "${pids[3]}" 2>/dev/null
        wait "${pids[3]}" 2>/dev/null
        unset 'pids[3]'
    fi
    for p in "${pids[@]}"; do
        wait "$p" || t_fail "$dir: a client exited $?: $(tail -3 h*.log)"
    done
    pids=()
    wait "$t_server_pid"
    local rc=$?
    t_server_pid=
    [ "$rc" -eq 0 ] || t_fail "$dir: the server exited $rc: $(tail -5 server.log)"
    t_expect 0 "$dir: audit verify" -- "$fedlung" audit verify state/audit.log --key "$top/keys/server.pub"
    rows=$(tail -n +2 state/rounds.csv | cut -d, -f1 | tr '\n' ' ')
    [ "$rows" = "1 2 3 " ] || t_fail "$dir: rounds.csv rounds: '$rows'"
    t_expect 0 "$dir: pooled eval" -- "$fedlung" eval --cohort "$top/pooled.h5" \
        --model h1/model.h5 --out eval --quiet
    cd "$top" || return 1
}

run_study a true
run_study b false

# a: the secagg records, and every masked update the hospitals sent is the one recorded
for kind in secagg_round secagg_adverts secagg_shares secagg_masked secagg_unmasked; do
    n=$(grep -c "\"$kind\"" a/state/audit.log)
    [ "$n" -eq 2 ] || t_fail "a: $n $kind records, expected one per fusion round"
done
n=$(grep -c '"kind":"secagg_unmasked","round":[23],[^}]*"answers":4,"survivors":4' a/state/audit.log)
[ "$n" -eq 2 ] || t_fail "a: $n rounds unmasked from all 4 sites, not 2"
for k in 1 2 3 4; do # the certificates relayed are the hospitals' own
    crt=$(openssl x509 -in pki/hospital-$k.crt -outform DER | sha256sum | cut -d' ' -f1)
    n=$(grep '"kind":"secagg_advert"' a/state/audit.log | grep "\"hospital-$k\"" |
        grep -c "\"certificate_sha256\":\"$crt\"")
    [ "$n" -eq 2 ] || t_fail "a: $n adverts of hospital-$k recorded with its certificate, not 2"
done
grep -q "key adverts signed as hospital-1" a/h1.log || t_fail "a: hospital-1 did not say how it signs"
for k in 1 2 3 4; do
    t_expect 0 "a: outbox verify $k" -- "$fedlung" audit verify a/h$k/outbox.log --key a/h$k/outbox.pub
    n=$(grep -c '"masked_update"' a/h$k/outbox.log)
    [ "$n" -eq 2 ] || t_fail "a: hospital-$k recorded $n masked updates, not 2"
    for h in $(grep -o '"sha256":"[0-9a-f]\{64\}"' a/h$k/outbox.log | cut -d'"' -f4); do
        grep -q "$h" a/state/audit.log || t_fail "a: hospital-$k sent $h, the server did not record it"
    done
done
grep -q '"masked":true' a/state/audit.log || t_fail "a: no update recorded as masked"
grep -q '"masked":true' b/state/audit.log && t_fail "b: an update recorded as masked"
grep -q "secagg" b/state/audit.log && t_fail "b: secagg records without secure aggregation"

# a vs b. The fixed-point scale is the largest power of two with 4 * round(C * scale) < 2^30
# (C = 0.5, one bit of headroom): 2^28, so each coordinate of the average update differs from
# the float one by at most 1/(2 * scale) ~ 2e-9, plus the float sum's own rounding (~1e-7
# relative, in arrival order). Two rounds of 2 SGD steps at lr 0.5 keep that far below 1e-4 in
# the predicted probabilities (measured: ~1e-6), while any wrong sum (a missing site, a wrong
# weight, a mask left in) moves them by far more.
/usr/bin/python3 - a/eval/predictions.csv b/eval/predictions.csv a/state/rounds.csv \
    b/state/rounds.csv <<'PY' || t_fail "secagg and plain runs differ beyond the fixed-point rounding"
import csv, sys
pa, pb = (list(csv.DictReader(open(f))) for f in sys.argv[1:3])
assert len(pa) == len(pb) and len(pa) > 0, "prediction counts differ"
cols = [c for c in pa[0] if c.startswith("p_")]
diff = max(abs(float(x[c]) - float(y[c])) for x, y in zip(pa, pb) for c in cols)
ra, rb = (list(csv.DictReader(open(f))) for f in sys.argv[3:5])
ldiff = max(abs(float(x["loss"]) - float(y["loss"])) for x, y in zip(ra, rb) if x["phase"] == "fusion")
print("max |p_secagg - p_plain| over %d patients: %.3g; max loss difference %.3g"
      % (len(pa), diff, ldiff))
sys.exit(0 if diff < 1e-4 and ldiff < 1e-4 else 1)
PY

# c: a hospital drops after ShareKeys; the round still completes from the other three
run_study c true share
grep -q '"dropped":\["hospital-4"\]' c/state/audit.log ||
    t_fail "c: hospital-4 not recorded as dropped after sharing its keys"
r2=$(grep '^2,' c/state/rounds.csv)
case "$r2" in 2,fusion,3,*) ;; *) t_fail "c: round 2 not aggregated from 3 sites: $r2" ;; esac
grep -q '"kind":"secagg_unmasked","round":2,[^}]*"survivors":3,"dropped":1' c/state/audit.log ||
    t_fail "c: round 2 not unmasked for 3 survivors and 1 dropped"

# d: a hospital drops after its masked input, before Unmask: its input is in the sum (its self
# mask rebuilt from the three others' shares), the round completes with all four
run_study d true unmask
grep -q '"u3":4,"dropped":\[\]' d/state/audit.log || t_fail "d: not 4 masked inputs in round 2"
grep -q '"kind":"secagg_unmasked","round":2,[^}]*"answers":3,"survivors":4' d/state/audit.log ||
    t_fail "d: round 2 not unmasked from 3 answers for 4 survivors"
r2=$(grep '^2,' d/state/rounds.csv)
case "$r2" in 2,fusion,4,*) ;; *) t_fail "d: round 2 not aggregated from 4 sites: $r2" ;; esac
t_summary check_secagg_federation
