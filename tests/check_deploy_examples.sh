#!/usr/bin/env bash
# check_deploy_examples.sh - the deployment files are real. docs/deploy.md shows
# deploy/server.conf.example and deploy/client.conf.example byte for byte; the client's approve
# line is the SHA-256 of deploy/study.plan; with a throw-away PKI and audit key, and only the
# address, state_dir and cohort lines changed, `fedlung server` starts on the server example
# (SIGTERM: exit 0), a client on the client example joins it with the plan approved, and the
# same client config against no server exits 1 with the "cannot reach" sentence (not a config
# error). The systemd units pass `systemd-analyze verify` (where it exists) and name the
# examples' paths; deploy/trial-setup.sh (the compose trial's setup) runs and makes configs
# that differ from the examples only where it says; deploy/compose.yaml parses. Docker itself
# is not run here.
# Usage (ctest, from tests/): bash check_deploy_examples.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_deploy_examples.sh /path/to/fedlung}")
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
deploy=$(realpath "$(dirname "$0")/../deploy")
doc=$(realpath "$(dirname "$0")/../docs/deploy.md")
t_workdir
client_pid=
t_on_exit '[ -n "$client_pid" ] && kill -KILL "$client_pid" 2>/dev/null'
cd "$work" || exit 1
t_fail_prefix="FAIL check_deploy_examples: "
t_expect_timeout=60

# ---- the docs show the examples as they are ----
# doc_block FIRST: the ```ini block of docs/deploy.md whose first line starts with FIRST
doc_block() {
    awk -v first="$1" '
        $0 == "```ini" { inblock = 1; start = 1; next }
        inblock && $0 == "```" { if (printing) exit; inblock = 0; next }
        inblock && start { start = 0; printing = index($0, first) == 1 }
        printing { print }' "$doc"
}
for ex in server client; do
    first=$(head -1 "$deploy/$ex.conf.example" | cut -c1-30)
    doc_block "$first" >"doc-$ex.conf"
    if [ ! -s "doc-$ex.conf" ]; then
        t_fail "docs/deploy.md has no \`\`\`ini block starting with '$first'"
    elif ! diff "doc-$ex.conf" "$deploy/$ex.conf.example" >diff.txt; then
        t_fail "docs/deploy.md's $ex.conf differs from deploy/$ex.conf.example: $(head -20 diff.txt)"
    fi
done

# ---- the plan the client example approves is deploy/study.plan ----
plan_hash=$(sha256sum "$deploy/study.plan" | cut -c1-64)
grep -q "^approve = $plan_hash\$" "$deploy/client.conf.example" ||
    t_fail "deploy/client.conf.example does not approve deploy/study.plan ($plan_hash):" \
        "update its approve line (and docs/deploy.md) when the plan changes"

# ---- a coordinator's and a hospital's /etc/fedlung, made as docs/deploy.md says ----
t_pki "$fedlung" fl-server hospital-a
mkdir -p server-etc/tls hospital-etc/tls state
cp pki/ca.crt pki/fl-server.crt pki/fl-server.key server-etc/tls/
cp pki/ca.crt pki/hospital-a.crt pki/hospital-a.key hospital-etc/tls/
t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out server-etc/audit --name server
cp "$deploy/study.plan" server-etc/study.plan
t_expect 0 "cohort synth" -- "$fedlung" cohort synth --out cohort.h5 --patients 24 --sites 1 \
    --tiles-per-patient 1 --genes 64 --probes 64
port=$(t_free_port)

# change_lines N EXAMPLE OUT SED...: OUT is EXAMPLE through sed; exactly N lines must differ
change_lines() {
    local n=$1 ex=$2 out=$3 got
    shift 3
    sed "$@" "$ex" >"$out"
    got=$(diff "$ex" "$out" | grep -c '^>')
    [ "$got" -eq "$n" ] || t_fail "$out: $got lines changed from $ex, expected $n (a sed missed)"
}
change_lines 2 "$deploy/server.conf.example" server-etc/server.conf \
    -e "s|^listen = 0.0.0.0:50051 |listen = 127.0.0.1:$port|" \
    -e "s|^state_dir = /var/lib/fedlung/server |state_dir = $work/state/server |"
change_lines 3 "$deploy/client.conf.example" hospital-etc/client-lung-demo.conf \
    -e "s|^server = fl.lung-consortium.org:50051 |server = 127.0.0.1:$port |" \
    -e "s|^state_dir = /var/lib/fedlung/client-lung-demo |state_dir = $work/state/client |" \
    -e "s|^cohort = /srv/fedlung/cohort.h5 |cohort = $work/cohort.h5 |"
export OMP_WAIT_POLICY=PASSIVE

# ---- the server starts on the example; a hospital joins with the plan approved ----
if t_start_server "$fedlung" server-etc/server.conf; then
    grep -q "SERVER_START study lung-demo on 127.0.0.1:$port (port $port) with mutual TLS, plan ${plan_hash:0:16}…, 3 clients allowed" \
        server.log || t_fail "start line: $(cat server.log)"
    "$fedlung" client --config hospital-etc/client-lung-demo.conf --threads 1 \
        >client.out 2>client.err &
    client_pid=$!
    for _ in $(seq 200); do
        grep -q "JOIN hospital-a joined: 24 patients, plan approved" server.log && break
        kill -0 "$client_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "JOIN hospital-a joined: 24 patients, plan approved" server.log ||
        t_fail "the example client did not join: $(tail -5 client.err) / $(tail -5 server.log)"
    grep -q "plan ${plan_hash:0:16}.. approved: study lung-demo, 3 classes" client.err ||
        t_fail "the client did not approve the plan: $(cat client.err)"
    kill -KILL "$client_pid" 2>/dev/null
    wait "$client_pid" 2>/dev/null
    client_pid=
    [ -s state/client/outbox.pub ] || t_fail "no state/client/outbox.pub"
    t_stop_server
    rc=$?
    [ "$rc" -eq 0 ] || t_fail "SIGTERM: the server exited $rc, not 0: $(tail -5 server.log)"
    for f in audit.log rounds.csv; do
        [ -e "state/server/$f" ] || t_fail "no state/server/$f"
    done
    t_expect 0 "the server's audit log verifies" -- "$fedlung" audit verify \
        state/server/audit.log --key server-etc/audit/server.pub
fi

# ---- the same client config against no server: unreachable, not a config error ----
t_expect 1 "client, no server" -- "$fedlung" client --config hospital-etc/client-lung-demo.conf \
    --max-attempts 1
grep -q "^fedlung: cannot reach the server at 127.0.0.1:$port (" err.txt ||
    t_fail "client, no server: $(cat err.txt)"
grep -q "client-lung-demo.conf:" err.txt && t_fail "client, no server: a config error: $(cat err.txt)"

# ---- systemd units ----
unit_has() { # UNIT LINE: the unit holds LINE exactly
    grep -qxF "$2" "$deploy/systemd/$1" || t_fail "$1: no line '$2'"
}
for u in fedlung-server.service fedlung-client@.service; do
    for l in "NoNewPrivileges=yes" "ProtectSystem=strict" "PrivateTmp=yes" "User=fedlung" \
        "Restart=on-failure" "RestartPreventExitStatus=3 0"; do
        unit_has "$u" "$l"
    done
done
unit_has fedlung-server.service "ExecStart=/usr/local/bin/fedlung server --config /etc/fedlung/server.conf"
unit_has fedlung-server.service "ReadWritePaths=/var/lib/fedlung/server"
grep -q "^state_dir = /var/lib/fedlung/server " "$deploy/server.conf.example" ||
    t_fail "server.conf.example's state_dir is not the unit's /var/lib/fedlung/server"
unit_has fedlung-client@.service "ExecStart=/usr/local/bin/fedlung client --config /etc/fedlung/client-%i.conf"
unit_has fedlung-client@.service "ReadWritePaths=/var/lib/fedlung/client-%i"
grep -q "^state_dir = /var/lib/fedlung/client-lung-demo " "$deploy/client.conf.example" ||
    t_fail "client.conf.example's state_dir is not the unit's /var/lib/fedlung/client-%i"
if command -v systemd-analyze >/dev/null; then
    mkdir units
    for u in fedlung-server.service fedlung-client@.service; do
        sed "s|/usr/local/bin/fedlung|$fedlung|" "$deploy/systemd/$u" >"units/$u"
    done
    (cd units && systemd-analyze verify --man=no ./fedlung-server.service \
        ./fedlung-client@.service) >verify.txt 2>&1 ||
        t_fail "systemd-analyze verify: $(cat verify.txt)"
    grep -q "fedlung" verify.txt && t_fail "systemd-analyze verify: $(cat verify.txt)"
else
    echo "check_deploy_examples: no systemd-analyze here; the units' syntax is not checked" >&2
fi

# ---- the compose trial: its setup script and file ----
t_expect 0 "trial-setup.sh" -- env FEDLUNG="$fedlung" DEPLOY="$deploy" TRIAL="$work/trial" \
    sh "$deploy/trial-setup.sh"
cmp -s trial/server-etc/server.conf "$deploy/server.conf.example" ||
    t_fail "trial-setup.sh: server.conf is not the example"
for h in hospital-a hospital-b hospital-c; do
    f=trial/$h-etc/client-lung-demo.conf
    for g in "$f" "trial/$h-etc/tls/$h.key" "trial/$h-etc/tls/$h.crt" "trial/$h-data/cohort.h5"; do
        [ -s "$g" ] || t_fail "trial-setup.sh: no $g"
    done
    [ -s "$f" ] || continue
    grep -q "^server = server:50051 " "$f" || t_fail "$f does not dial server:50051"
    n=$(diff "$deploy/client.conf.example" "$f" | grep -c '^>')
    want=1 # server
    [ "$h" != hospital-a ] && want=4 # and name, cert and key name the hospital
    [ "$n" -eq "$want" ] || t_fail "$f: $n lines differ from the example, expected $want"
done
"$fedlung" pki show trial/server-etc/tls/fl-server.crt | grep -q "DNS:server" ||
    t_fail "the trial's server certificate lacks DNS:server"
if "$py" -c "import yaml" 2>/dev/null; then
    "$py" - "$deploy/compose.yaml" >compose.txt 2>&1 <<'PY' || t_fail "compose.yaml: $(cat compose.txt)"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
declared = set(d["volumes"])
want = {"setup", "server", "hospital-a", "hospital-b", "hospital-c"}
assert set(d["services"]) == want, sorted(d["services"])
for name, s in d["services"].items():
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        assert src == "." or src in declared, f"{name}: volume {src} is not declared"
assert d["services"]["server"]["ports"] == ["50051:50051"]
for h in ("hospital-a", "hospital-b", "hospital-c"):
    assert "ports" not in d["services"][h], f"{h} publishes a port"
PY
else
    echo "check_deploy_examples: $py has no yaml module; compose.yaml is not parsed" >&2
fi

t_summary check_deploy_examples
