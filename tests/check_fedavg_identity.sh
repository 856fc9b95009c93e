#!/usr/bin/env bash
# check_fedavg_identity.sh - FedAvg's defining identity over the real system: a server and three
# hospital clients on 127.0.0.1 over mutual TLS, the statistics phase, then 3 rounds in which
# each client takes one local step of full-batch plain SGD (no momentum, no weight decay, no
# dropout) and the server averages with example weights and learning rate 1. The federated
# model must equal 3 steps of centralized full-batch SGD on the union of the three hospitals'
# data (tests/fedavg_reference.c) to float tolerance. Also: federated evaluation ran, the audit
# log and each hospital's outbox log verify, and every round is in rounds.csv exactly once.
# Usage (ctest, from tests/): bash check_fedavg_identity.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_fedavg_identity.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
ref=$(t_sibling "$fedlung" fedavg_reference) || exit 1
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_fedavg_identity: "
t_expect_timeout=120
pids=()
t_on_exit 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done'

t_federation_data "$fedlung" 3 --patients 120 --tile 0 \
    --genes 96 --probes 96 --no-missing --seed 5
cat >study.plan <<PLAN
[study]
id = fedavg-identity
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
bins = 500
[fusion]
modalities = rna,methylation,clinical
rna_features = 32
meth_features = 32
dropout = 0
rounds = 3
local_steps = 1
batch = 65536
optimizer = sgd
lr = 0.5
momentum = 0
weight_decay = 0
strategy = fedavg
server_lr = 1
weighted = true
PLAN
t_study_confs fedavg-identity 3 3 "round_timeout_s = 60"

t_start_server "$fedlung" server.conf || exit 1
for k in 1 2 3; do
    OMP_WAIT_POLICY=PASSIVE timeout 120 "$fedlung" client --config h$k.conf 2>h$k.log &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || t_fail "a client exited $?: $(tail -3 h*.log)"
done
pids=()
wait "$t_server_pid"
rc=$?
t_server_pid=
[ "$rc" -eq 0 ] || t_fail "the server exited $rc: $(tail -5 server.log)"

t_expect 0 "centralized reference" -- "$ref" study.plan pooled.h5 3 state/model.h5
cat out.txt
rows=$(tail -n +2 state/rounds.csv | cut -d, -f1 | tr '\n' ' ')
[ "$rows" = "1 2 3 4 " ] || t_fail "rounds.csv rounds: '$rows'"
last=$(tail -1 state/rounds.csv)
case "$last" in 4,fusion,3,0.*,[01].*) ;; *) t_fail "last round not evaluated: $last" ;; esac
t_expect 0 "audit verify" -- "$fedlung" audit verify state/audit.log --key keys/server.pub
for k in 1 2 3; do
    t_expect 0 "outbox verify $k" -- "$fedlung" audit verify h$k/outbox.log --key h$k/outbox.pub
    [ -s h$k/model.h5 ] || t_fail "hospital-$k wrote no model.h5"
    # every update and evaluation that left the hospital is in the server's log, same SHA-256
    for h in $(grep -o '"sha256":"[0-9a-f]\{64\}"' h$k/outbox.log | cut -d'"' -f4); do
        grep -q "$h" state/audit.log || t_fail "hospital-$k sent $h, the server did not record it"
    done
done
# Federated evaluation: what the server merged from the hospitals' reports equals the same
# model scored on the pooled test patients (fedlung eval): the mean cross-entropy exactly (to
# float rounding), the AUC per class up to binning.
t_expect 0 "pooled eval" -- "$fedlung" eval --cohort pooled.h5 --model h1/model.h5 --out eval --quiet
/usr/bin/python3 - state/rounds.csv eval/metrics.json eval/predictions.csv <<'PY' ||
import csv, json, math, sys
row = list(csv.DictReader(open(sys.argv[1])))[-1]
m = json.load(open(sys.argv[2]))
bad = 0
for k, v in m["per_class"].items():
    fed = float(row["auc_" + k])
    print("AUC %s: federated (histograms) %.4f, pooled exact %.4f" % (k, fed, v["auc"]))
    bad += abs(fed - v["auc"]) > 0.01
preds = list(csv.DictReader(open(sys.argv[3])))
loss = sum(-math.log(max(float(p["p_" + p["label"]]), 1e-12)) for p in preds) / len(preds)
print("loss: federated %.6f, pooled %.6f (%d patients)" % (float(row["loss"]), loss, len(preds)))
bad += abs(float(row["loss"]) - loss) > 1e-4
sys.exit(1 if bad else 0)
PY
    t_fail "federated evaluation differs from the pooled one"
t_summary check_fedavg_identity
