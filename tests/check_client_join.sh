#!/usr/bin/env bash
# check_client_join.sh - `fedlung client` against `fedlung server` over mutual TLS on 127.0.0.1
# with a throw-away PKI made by `fedlung pki`: an allowed hospital joins and prints a Status that
# lists it; a hospital not on the allow-list and a wrong study are final refusals (exit 1, one
# sentence); with no server the client retries with back-off and gives up after --max-attempts;
# a server started late, within the back-off, is joined (reconnect). Also the config's errors.
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
# client_conf NAME STUDY FILE: a client config for certificate NAME and study STUDY.
client_conf() {
    cat >"$3" <<CONF
# fedlung client configuration (test)
[client]
server = 127.0.0.1:$port
study = $2
name = $1
state_dir = client-state

[tls]
ca = pki/ca.crt
cert = pki/$1.crt
key = pki/$1.key   ; relative to this file
CONF
}

# ---- a throw-away PKI ----
t_pki "$fedlung" fl-server hospital-a hospital-x

port=$(t_free_port)
cat >server.conf <<CONF
[server]
listen = 127.0.0.1:$port
study = lung-test
state_dir = state
min_clients = 2
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
grep -q "^study lung-test: round 0, phase PHASE_UNSPECIFIED, 1 joined, 2 needed" out.txt ||
    t_fail "status line: $(cat out.txt)"
grep -q "^  hospital-a PARTICIPANT_STATE_JOINED" out.txt || t_fail "participant: $(cat out.txt)"
# with a cohort: the server logs the data summary (counts only)
t_expect 0 "cohort synth" -- "$fedlung" cohort synth --out cohort.h5 --patients 40 --tile 16 \
    --tiles-per-patient 1 --genes 64
printf '\n[data]\ncohort = cohort.h5\n' | cat a.conf - >cohort.conf
t_expect 0 "hospital-a joins with a cohort" -- "$fedlung" client --config cohort.conf
grep -q "JOIN hospital-a joined again: software 0.1.0, protocol 1, 40 patients in 3 classes" \
    server.log || t_fail "no data summary in the server log: $(grep JOIN server.log)"
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
