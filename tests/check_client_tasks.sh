#!/usr/bin/env bash
# check_client_tasks.sh - a whole study over mutual TLS on 127.0.0.1: `fedlung server` and two
# `fedlung client`s on a tiny synthetic cohort split in two, with a plan of a statistics round and
# two fusion rounds. Both clients exit 0 and write state_dir/model.h5; their outbox logs verify
# (`fedlung audit verify --strict`) with one record per message sent; a download damaged in
# transit (--corrupt-downloads) is discarded and fetched again; an evaluation of model v and the
# training that follows from v download it once; --delay-upload slows a client down without
# dropping it; a hospital that has not approved the plan refuses it (exit 1). Then the server is
# killed in the middle of a study and restarted: the clients join again and finish.
# Usage (ctest, from tests/): bash check_client_tasks.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_client_tasks.sh /path/to/fedlung}")
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
pids=()
t_on_exit 'for p in ${pids[@]+"${pids[@]}"}; do kill -KILL "$p" 2>/dev/null; done'
cd "$work" || exit 1
t_fail_prefix="FAIL check_client_tasks: "
t_expect_timeout=60

# ---- PKI, keys, cohort, plan, configs ----
t_pki "$fedlung" fl-server hospital-a hospital-b
t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out . --name server
t_expect 0 "cohort synth" -- "$fedlung" cohort synth --out all.h5 --patients 60 --sites 2 \
    --tile 16 --tiles-per-patient 1 --genes 64 --probes 64
t_expect 0 "cohort split" -- "$fedlung" cohort split all.h5 --partition site --out parts
cat >study.plan <<'PLAN'
# a tiny study: omics statistics, then two rounds of the fusion model
[study]
id = lung-test
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
bins = 100
[fusion]
modalities = rna,methylation,clinical
rna_features = 16
meth_features = 16
enc_dim = 512
hidden = 512
rounds = 2
epochs = 1
batch = 16
PLAN
plan_hash=$(sha256sum study.plan | cut -c1-64)
port=$(t_free_port)
cat >server.conf <<CONF
[server]
listen = 127.0.0.1:$port
study = lung-test
state_dir = state
min_clients = 2
plan = study.plan
audit_key = server.key
round_timeout_s = 60
[tls]
ca = pki/ca.crt
cert = pki/fl-server.crt
key = pki/fl-server.key
[clients]
allow = hospital-a, hospital-b
CONF
# client_conf NAME PART FILE [APPROVE]: hospital NAME with cohort part PART.
client_conf() {
    cat >"$3" <<CONF
[client]
server = 127.0.0.1:$port
study = lung-test
name = $1
state_dir = state-$1
approve = ${4:-$plan_hash}
threads = 1
[tls]
ca = pki/ca.crt
cert = pki/$1.crt
key = pki/$1.key
[data]
cohort = parts/part-$2.h5
CONF
}
client_conf hospital-a 1 a.conf
client_conf hospital-b 2 b.conf
client_conf hospital-a 1 refuse.conf "$(printf 'another plan' | sha256sum | cut -c1-64)"
export OMP_WAIT_POLICY=PASSIVE

# run_client NAME ARGS...: starts a client in the background, output in NAME.out / NAME.err
run_client() {
    local name=$1
    shift
    "$fedlung" client "$@" >"$name.out" 2>"$name.err" &
    pids+=($!)
}
# wait_all WHAT: waits (60 s at most) for the started clients, each must exit 0
wait_all() {
    local p rc i=0
    for p in "${pids[@]}"; do
        if timeout 60 tail --pid="$p" -f /dev/null; then
            wait "$p"
            rc=$?
            [ "$rc" -eq 0 ] || t_fail "$1: client $i exited $rc: $(tail -5 "client$i.err")"
        else
            t_fail "$1: client $i still runs after 60 s: $(tail -5 "client$i.err")"
        fi
        i=$((i + 1))
    done
    pids=()
}

# ---- a whole study ----
t_start_server "$fedlung" server.conf || exit 1
t_expect 1 "a plan this hospital has not approved" -- "$fedlung" client --config refuse.conf
grep -q "fedlung: refused plan $plan_hash: not approved by this hospital (client.conf approve)" \
    err.txt || t_fail "refusal: $(cat err.txt)"
[ -e state-hospital-a/outbox.log ] && t_fail "a refused plan opened the outbox"
run_client client0 --config a.conf --corrupt-downloads 1
run_client client1 --config b.conf --delay-upload 0.5
wait_all "study"
t_wait_server 30 # it ends by itself once the study is done
rc=$?
[ "$rc" -eq 0 ] || t_fail "the server exited $rc: $(tail -5 server.log)"
grep -q "STUDY_DONE" server.log || t_fail "no STUDY_DONE: $(tail -5 server.log)"
grep -Eq "JOIN hospital-a joined( again)?: 38 patients, plan approved" server.log ||
    t_fail "data summary: $(grep JOIN server.log)"
for h in hospital-a hospital-b; do
    [ -s "state-$h/model.h5" ] || t_fail "$h: no state-$h/model.h5"
    t_expect 0 "$h: outbox verifies" -- "$fedlung" audit verify "state-$h/outbox.log" \
        --key "state-$h/outbox.pub" --strict
    grep -q "intact: 9 records, 3 signed checkpoints" out.txt || t_fail "$h outbox: $(cat out.txt)"
    for kind in statistics:1 update:2 eval:2; do
        t_expect 0 "$h: audit show" -- "$fedlung" audit show "state-$h/outbox.log" \
            --kind "${kind%:*}"
        n=$(grep -c " ${kind%:*} *$h " out.txt)
        [ "$n" -eq "${kind#*:}" ] || t_fail "$h: $n ${kind%:*} records, not ${kind#*:}"
    done
done
t_expect 0 "server audit log verifies" -- "$fedlung" audit verify state/audit.log --key server.pub
# the per-task lines
for want in "round 1 statistics: 396 sums over 25 training patients, sent 1.6 kB sha256" \
    "round 2 fusion: trained 1 epoch on 25 patients, loss" \
    "round 3 fusion: evaluated model 3 on 7 test patients" \
    "wrote the final fusion model (version 3) to state-hospital-a/model.h5"; do
    grep -qF "$want" client0.err || t_fail "no '$want': $(cat client0.err)"
done
# the damaged download: discarded, fetched again
grep -q "model 1, download 1 of 4: GetModel: the model's bytes hash to .*discarded" client0.err ||
    t_fail "no discarded download: $(cat client0.err)"
[ "$(grep -c 'model 1: fetched' client0.err)" -eq 1 ] || t_fail "model 1 fetched: $(cat client0.err)"
# evaluation of model 2 in round 2, training from it in round 3: one download
for c in client0 client1; do
    [ "$(grep -c 'model 2: fetched' $c.err)" -eq 1 ] || t_fail "$c: model 2 fetched not once"
done
grep -q "waiting 0.5 s before the upload (--delay-upload)" client1.err ||
    t_fail "no delay logged: $(cat client1.err)"
grep -q "discarded" client1.err && t_fail "hospital-b discarded a download"

# ---- the server dies in the middle of a study and comes back ----
rm -rf state state-hospital-a state-hospital-b
t_start_server "$fedlung" server.conf || exit 1
run_client client0 --config a.conf --delay-upload 1
run_client client1 --config b.conf --delay-upload 1
for _ in $(seq 200); do
    grep -q "ROUND_COMMITTED round 2" server.log && break
    sleep 0.1
done
grep -q "ROUND_COMMITTED round 2" server.log || t_fail "restart: round 2 never committed"
{
    kill -KILL "$t_server_pid"
    wait "$t_server_pid"
} 2>/dev/null
cp server.log server-1.log
sleep 1.5
t_start_server "$fedlung" server.conf || exit 1
wait_all "restart"
t_wait_server 30 # it ends by itself once the study is done
rc=$?
[ "$rc" -eq 0 ] || t_fail "restart: the server exited $rc: $(tail -5 server.log)"
grep -q "STUDY_DONE" server.log || t_fail "restart: no STUDY_DONE: $(tail -5 server.log)"
for c in client0 client1; do
    grep -q "joining again" $c.err || t_fail "restart: $c did not join again: $(cat $c.err)"
done
for h in hospital-a hospital-b; do
    [ -s "state-$h/model.h5" ] || t_fail "restart: $h wrote no model"
    t_expect 0 "restart: $h outbox verifies" -- "$fedlung" audit verify \
        "state-$h/outbox.log" --key "state-$h/outbox.pub" --strict
done
grep -q "Sanitizer" ./*.err server*.log && t_fail "sanitizer report"

t_summary check_client_tasks
