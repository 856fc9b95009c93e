#!/usr/bin/env bash
# check_federation_rnet.sh - a small study that skips the image phase and starts from a given
# RNet ([image] model in the plan): statistics, features (each hospital embeds its patients
# with the RNet the server sends; the embeddings' sums give the image standardization), then
# fusion on image + RNA. Two hospitals over mTLS on 127.0.0.1. The study completes, and the
# model a hospital keeps (with its RNet beside it) scores its cohort with `fedlung eval`.
# Usage (ctest, from tests/): bash check_federation_rnet.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_federation_rnet.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_federation_rnet: "
t_expect_timeout=120
pids=()
t_on_exit 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done'

t_federation_data "$fedlung" 2 --patients 60 --tile 32 \
    --tiles-per-patient 4 --genes 64 --probes 64 --no-missing --seed 9
t_expect 0 "train the given RNet" -- "$fedlung" train image --cohort pooled.h5 --out rnet.h5 \
    --arch resnet18 --stem small --width 0.125 --epochs 1 --threads 1 --quiet
cat >study.plan <<PLAN
[study]
id = given-rnet
classes = LUAD,LUSC,NORMAL
phases = statistics,features,fusion
[image]
arch = resnet18
stem = small
tile = 32
width = 0.125
model = rnet.h5
[fusion]
modalities = image,rna
rna_features = 16
rounds = 2
epochs = 2
PLAN
t_study_confs given-rnet 2 2
t_start_server "$fedlung" server.conf || exit 1
for k in 1 2; do
    OMP_WAIT_POLICY=PASSIVE timeout 120 "$fedlung" client --config h$k.conf 2>h$k.log &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || t_fail "a client exited $?: $(tail -3 h*.log)"; done
pids=()
wait "$t_server_pid"
rc=$?
t_server_pid=
[ "$rc" -eq 0 ] || t_fail "the server exited $rc: $(tail -5 server.log)"
phases=$(tail -n +2 state/rounds.csv | cut -d, -f2 | tr '\n' ' ')
[ "$phases" = "statistics features fusion fusion " ] || t_fail "phases: '$phases'"
grep -q "features: embedded" h1.log || t_fail "hospital-1 did not embed: $(tail -3 h1.log)"
t_expect 0 "eval the hospital's model" -- "$fedlung" eval --cohort parts/part-1.h5 \
    --model h1/model.h5 --out eval --quiet
[ -s eval/metrics.json ] || t_fail "no metrics.json"
t_expect 0 "audit verify" -- "$fedlung" audit verify state/audit.log --key keys/server.pub
t_summary check_federation_rnet
