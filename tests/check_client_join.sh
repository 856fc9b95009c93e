#!/usr/bin/env bash
# check_client_join.sh - `fedlung client` against `fedlung server` over mutual TLS on 127.0.0.1
# with a throw-away PKI made by `fedlung pki`: an allowed hospital joins and prints a Status that
# lists it; a hospital not on the allow-list, a wrong study and a plan the hospital has not
# approved are final refusals (exit 1, one sentence); with no server the client retries with
# back-off and gives up after --max-attempts; a server started late, within the back-off, is
# joined (reconnect). Also the config's errors. (check_client_tasks.sh runs a whole study.)
# Usage (ctest, from tests/): bash check_client_join.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_client_join.sh /path/to/fedlung}")
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
client_pid=
t_on_exit '[ -n "$client_pid" ] && kill -KILL "$client_pid" 2>/dev/null'
cd "$work" || exit 1
t_fail_prefix="FAIL check_client_join: "
t_expect_timeout=30
# client_conf NAME STUDY FILE: a client config for certificate NAME and study STUDY that approves
# the plan.
client_conf() {
    cat >"$3" <<CONF
# fedlung client configuration (test)
[client]
server = 127.0.0.1:$port
study = $2
name = $1
state_dir = client-state
approve = $plan_hash

[tls]
ca = pki/ca.crt
cert = pki/$1.crt
key = pki/$1.key   ; relative to this file
CONF
}

# ---- a throw-away PKI, the server's audit key, a study plan ----
t_pki "$fedlung" fl-server hospital-a hospital-x
t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out . --name server
cat >study.plan <<PLAN
[study]
id = lung-test
classes = LUAD,LUSC,NORMAL
phases = image
[fusion]
modalities = image   ; no omics: a hospital without a cohort may join
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
[tls]
ca = pki/ca.crt
cert = pki/fl-server.crt
key = pki/fl-server.key
[clients]
allow = hospital-a, hospital-b
CONF
client_conf hospital-a lung-test a.conf
client_conf hospital-x lung-test x.conf
client_conf hospital-a other-study wrong.conf

# ---- the CLI and the config file ----
t_expect 2 "no --config" -- "$fedlung" client
t_expect 0 "--help" -- "$fedlung" client --help
t_expect 2 "bad --max-attempts" -- "$fedlung" client --config a.conf --max-attempts zero
t_expect 1 "missing config" -- "$fedlung" client --config nope.conf
sed 's/^name = hospital-a/name = hospital-a\ncolour = blue/' a.conf >bad1.conf
t_expect 1 "unknown key" -- "$fedlung" client --config bad1.conf
grep -q "bad1.conf:6: unknown key 'colour' in \[client\]" err.txt ||
    t_fail "unknown key message: $(cat err.txt)"
grep -v '^study' a.conf >bad2.conf
t_expect 1 "missing study" -- "$fedlung" client --config bad2.conf
grep -q "bad2.conf: \[client\] study is missing" err.txt || t_fail "missing key: $(cat err.txt)"
sed 's/^approve = .*/approve = 12ab/' a.conf >bad3.conf
t_expect 1 "bad approve" -- "$fedlung" client --config bad3.conf
grep -q "bad3.conf:7: approve '12ab' is not a plan hash (64 hex digits)" err.txt ||
    t_fail "bad approve: $(cat err.txt)"
sed 's/^approve = .*/threads = -1/' a.conf >bad4.conf
t_expect 1 "bad threads" -- "$fedlung" client --config bad4.conf
grep -q "threads '-1' is not a number from 0 to 4096" err.txt || t_fail "threads: $(cat err.txt)"

# ---- no server: retries with back-off, then gives up ----
start=$(date +%s)
t_expect 1 "no server, --max-attempts 2" -- "$fedlung" client --config a.conf --max-attempts 2
elapsed=$(($(date +%s) - start))
n=$(grep -c "fedlung client: attempt" err.txt)
[ "$n" -eq 2 ] || t_fail "no server: $n attempts logged, not 2: $(cat err.txt)"
grep -q "attempt 1: Join: UNAVAILABLE.*retrying in" err.txt ||
    t_fail "no retry line: $(cat err.txt)"
grep -q "cannot reach the server" err.txt || t_fail "no final sentence: $(cat err.txt)"
[ "$elapsed" -le 8 ] || t_fail "no server: gave up after $elapsed s"

# ---- the server starts late: the client joins once it is up ----
"$fedlung" client --config a.conf --max-attempts 6 >late.out 2>late.err &
client_pid=$!
sleep 1.5
t_start_server "$fedlung" server.conf || exit 1
if timeout 30 tail --pid="$client_pid" -f /dev/null; then
    wait "$client_pid"
    rc=$?
    [ "$rc" -eq 0 ] || t_fail "late server: client exit $rc: $(cat late.err)"
else
    t_fail "late server: the client did not finish within 30 s: $(cat late.err)"
fi
client_pid=
grep -q "retrying in" late.err || t_fail "late server: no retry logged: $(cat late.err)"
grep -q "Join 127.0.0.1:$port: OK" late.err || t_fail "late server: no Join OK: $(cat late.err)"
grep -q "^  hospital-a PARTICIPANT_STATE_JOINED" late.out || t_fail "late server: $(cat late.out)"

# ---- the allowed hospital, the refusals ----
t_expect 0 "hospital-a joins" -- "$fedlung" client --config a.conf --max-attempts 3
# (the study has not started: the server's round is 0 or 1, depending on how it counts)
grep -Eq "^study lung-test: round [01], phase PHASE_UNSPECIFIED, 1 joined, 2 needed" out.txt ||
    t_fail "status line: $(cat out.txt)"
grep -q "^  hospital-a PARTICIPANT_STATE_JOINED" out.txt || t_fail "participant: $(cat out.txt)"
# with a cohort but without approving the plan: the client refuses it (exit 1, one line)
t_expect 0 "cohort synth" -- "$fedlung" cohort synth --out cohort.h5 --patients 40 --tile 16 \
    --tiles-per-patient 1 --genes 64
other=$(printf 'other' | sha256sum | cut -c1-64)
sed "s/^approve = .*/approve = $other/" a.conf | cat - <(printf '\n[data]\ncohort = cohort.h5\n') \
    >cohort.conf
t_expect 1 "hospital-a with a cohort, plan not approved" -- "$fedlung" client --config cohort.conf
grep -q "fedlung: refused plan $plan_hash: not approved by this hospital (client.conf approve)" \
    err.txt || t_fail "plan refusal: $(cat err.txt)"
grep -q "REFUSED hospital-a has not approved plan" server.log ||
    t_fail "no refusal in the server log: $(grep hospital-a server.log)"
t_expect 1 "hospital-x is not allowed" -- "$fedlung" client --config x.conf --max-attempts 3
grep -q "permission denied.*hospital-x" err.txt || t_fail "hospital-x: $(cat err.txt)"
[ "$(grep -c 'fedlung client: attempt' err.txt)" -eq 1 ] || t_fail "PERMISSION_DENIED retried"
t_expect 1 "wrong study" -- "$fedlung" client --config wrong.conf --max-attempts 3
grep -q "refused study 'other-study'" err.txt || t_fail "wrong study: $(cat err.txt)"
grep -q "JOIN hospital-a joined" server.log || t_fail "no JOIN in the server log"
grep -q "REFUSED hospital-x Join PERMISSION_DENIED" server.log || t_fail "no REFUSED hospital-x"
grep -q "Sanitizer" late.err err.txt && t_fail "sanitizer report"
t_stop_server
rc=$?
[ "$rc" -eq 0 ] || t_fail "the server exited $rc on SIGTERM"

t_summary check_client_join
