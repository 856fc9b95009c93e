#!/usr/bin/env bash
# check_federation_faults.sh - the federation under faults, with real processes on 127.0.0.1
# over mutual TLS: (1) the server is killed with SIGKILL mid-study and a torn record is left at
# the end of its audit log; restarted with the same config it cuts the torn record (and logs the
# cut), resumes after the last committed round, the clients reconnect with back-off, and every
# round is committed exactly once; (2) a hospital killed mid-round is dropped at the deadline and
# the study goes on with the others; (3) when too few hospitals remain, the round is retried,
# then the study stops with exit status 3 and a study_stopped record.
# Usage (ctest, from tests/): bash check_federation_faults.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_federation_faults.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_federation_faults: "
t_expect_timeout=60
declare -A pid
t_on_exit 'for p in "${pid[@]}"; do kill -KILL "$p" 2>/dev/null; done'

t_federation_data "$fedlung" 3 --patients 90 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 3

# setup NAME MIN RETRIES TIMEOUT ROUNDS: a study folder NAME with its plan and configs
setup() {
    mkdir -p "$1"
    cat >"$1/study.plan" <<PLAN
[study]
id = faults
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
[fusion]
modalities = rna,clinical
rna_features = 16
rounds = $5
epochs = 1
PLAN
    local hash port k
    hash=$(sha256sum "$1/study.plan" | cut -d' ' -f1)
    port=$(t_free_port)
    cat >"$1/server.conf" <<CONF
[server]
listen = 127.0.0.1:$port
study = faults
state_dir = state
plan = study.plan
audit_key = ../keys/server.key
min_clients = $2
retries = $3
round_timeout_s = $4
[tls]
ca = ../pki/ca.crt
cert = ../pki/fl-server.crt
key = ../pki/fl-server.key
[clients]
allow = hospital-1, hospital-2, hospital-3
CONF
    for k in 1 2 3; do
        cat >"$1/h$k.conf" <<CONF
[client]
server = 127.0.0.1:$port
study = faults
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
CONF
    done
}

# start_client K [OPTIONS]: hospital K in the current study folder
start_client() {
    local k=$1
    shift
    OMP_WAIT_POLICY=PASSIVE "$fedlung" client --config h$k.conf "$@" 2>>h$k.log &
    pid[c$k]=$!
}

# committed: rounds committed so far (rows of state/rounds.csv)
committed() {
    [ -f state/rounds.csv ] && echo $(($(wc -l <state/rounds.csv) - 1)) || echo 0
}

# wait_rounds N SECONDS: until N rounds are committed
wait_rounds() {
    local _
    for _ in $(seq $(($2 * 10))); do
        [ "$(committed)" -ge "$1" ] && return 0
        sleep 0.1
    done
    t_fail "$(pwd): only $(committed) of $1 rounds after $2 s: $(tail -3 server.log)"
    return 1
}

# ---- (1) kill -9 of the server, a torn audit record, restart and resume ----
setup s1 2 2 30 6
cd s1 || exit 1
t_start_server "$fedlung" server.conf || exit 1
start_client 1 --delay-upload 0.4
start_client 2 --delay-upload 0.4
wait_rounds 3 40
kill -KILL "$t_server_pid"
wait "$t_server_pid" 2>/dev/null
before=$(committed)
printf '{"seq":99999,"time":"2026-' >>state/audit.log # a record torn by the crash
cp server.log server-1.log
t_start_server "$fedlung" server.conf || exit 1
for k in 1 2; do
    wait "${pid[c$k]}" || t_fail "hospital-$k exited $? after the restart: $(tail -3 h$k.log)"
    unset "pid[c$k]"
done
wait "$t_server_pid"
rc=$?
t_server_pid=
[ "$rc" -eq 0 ] || t_fail "the restarted server exited $rc: $(tail -5 server.log)"
rows=$(tail -n +2 state/rounds.csv | cut -d, -f1 | tr '\n' ' ')
[ "$rows" = "1 2 3 4 5 6 7 " ] || t_fail "rounds after the restart: '$rows' (killed after $before)"
t_expect 0 "audit verify after the crash" -- "$fedlung" audit verify state/audit.log --key ../keys/server.pub
"$fedlung" audit show state/audit.log >audit.txt
grep -q " cut " audit.txt || t_fail "no cut record for the torn line"
grep -q " resume " audit.txt || t_fail "no resume record"
grep -q "RESUME .*resuming after round $before" server.log || t_fail "no resume line: $(head -5 server.log)"
grep -q "joining again" h1.log || t_fail "hospital-1 did not join again after the restart"
cd ..

# ---- (2) a hospital killed mid-round is dropped at the deadline ----
setup s2 2 0 3 3
cd s2 || exit 1
t_start_server "$fedlung" server.conf || exit 1
for k in 1 2 3; do start_client $k --delay-upload 0.3; done
wait_rounds 2 40
kill -KILL "${pid[c3]}"
unset "pid[c3]"
for k in 1 2; do
    wait "${pid[c$k]}" || t_fail "hospital-$k exited $?: $(tail -3 h$k.log)"
    unset "pid[c$k]"
done
wait "$t_server_pid"
rc=$?
t_server_pid=
[ "$rc" -eq 0 ] || t_fail "(2) the server exited $rc: $(tail -5 server.log)"
grep -q "DROPPED hospital-3" server.log || t_fail "hospital-3 was not dropped: $(tail -5 server.log)"
[ "$(tail -1 state/rounds.csv | cut -d, -f3)" = 2 ] ||
    t_fail "the last round had not 2 participants: $(tail -1 state/rounds.csv)"
cd ..

# ---- (3) too few hospitals: a retry, then the study stops (exit 3) ----
setup s3 2 1 2 4
cd s3 || exit 1
t_start_server "$fedlung" server.conf || exit 1
start_client 1 --delay-upload 0.3
start_client 2 --delay-upload 0.3
wait_rounds 2 40
kill -KILL "${pid[c2]}"
unset "pid[c2]"
wait "$t_server_pid"
rc=$?
t_server_pid=
[ "$rc" -eq 3 ] || t_fail "(3) the server exited $rc, not 3: $(tail -5 server.log)"
grep -q "ROUND_RETRY" server.log || t_fail "no retry: $(tail -5 server.log)"
grep -q "STUDY_STOPPED round .* had 1 of the 2 updates needed after 2 attempts" server.log ||
    t_fail "no study_stopped line: $(tail -5 server.log)"
wait "${pid[c1]}"
rc=$?
unset "pid[c1]"
grep -q "DONE" h1.log || t_fail "hospital-1 was not told the study ended: $(tail -3 h1.log)"
t_expect 0 "audit verify (3)" -- "$fedlung" audit verify state/audit.log --key ../keys/server.pub
cd ..
t_summary check_federation_faults
