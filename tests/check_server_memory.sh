#!/usr/bin/env bash
# check_server_memory.sh - the server's memory must not grow with the number of clients: updates
# are added to one running sum chunk by chunk, downloads share one model version. The real
# `fedlung server` runs one round of a ~106 MB model (ResNet-50 at 224 px, width 1.07: the
# smallest ResNet-50 of at least 100 MiB) over mutual TLS on 127.0.0.1, once with 2 and once
# with 8 fake hospitals (tests/fake_hospitals.py: grpcio clients, one process each, that
# download, upload a delta and report an evaluation without training). The server's peak RSS
# (VmHWM) with 8 must exceed the one with 2 by less than one model size. Also: every hospital
# reached DONE, the server exited 0 by itself, and each study committed its one round with
# all its hospitals. About 20 s on 2 cores.
# Usage (ctest, from tests/): bash check_server_memory.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_server_memory.sh /path/to/fedlung}")
here=$(cd "$(dirname "$0")" && pwd)
proto="$here/../proto"
py=/usr/bin/python3
source "$here/lib.sh"
t_need_python "grpc, grpc_tools.protoc" "apt-get install python3-grpcio python3-grpc-tools" ||
    exit 1
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_server_memory: "
t_expect_timeout=60

names=$(seq -s, -f "hospital-%g" 1 8)
t_pki "$fedlung" fl-server ${names//,/ }
t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out keys --name server
"$py" -m grpc_tools.protoc -I"$proto" --python_out=. --grpc_python_out=. "$proto/fedlung.proto" ||
    t_fail "grpc_tools.protoc failed"
cat >study.plan <<PLAN
[study]
id = memory-test
classes = LUAD,LUSC,NORMAL
phases = image
[image]
arch = resnet50
tile = 224
width = 1.07
rounds = 1
local_steps = 1
PLAN

# run N: one round with N hospitals; the driver starts the server and prints JSON to run-N.json
run() {
    local n=$1 port
    port=$(t_free_port)
    cat >server-$n.conf <<CONF
[server]
listen = 127.0.0.1:$port
study = memory-test
state_dir = state-$n
plan = study.plan
audit_key = keys/server.key
min_clients = $n
round_timeout_s = 3600
[tls]
ca = pki/ca.crt
cert = pki/fl-server.crt
key = pki/fl-server.key
[clients]
allow = $names
CONF
    timeout -k 5 200 "$py" "$here/fake_hospitals.py" --target "127.0.0.1:$port" \
        --study memory-test --plan study.plan --pki pki --stubs . \
        --names "$(seq -s, -f "hospital-%g" 1 "$n")" --procs "$n" --deadline 150 \
        --server "$fedlung" --config server-$n.conf --server-log server-$n.log \
        --json run-$n.json >/dev/null 2>err-$n.txt ||
        t_fail "$n hospitals: $(tail -c 600 err-$n.txt); server: $(tail -3 server-$n.log)"
    local rows
    rows=$(tail -n +2 state-$n/rounds.csv 2>/dev/null | cut -d, -f1-3 | tr '\n' ' ')
    [ "$rows" = "1,image,$n " ] ||
        t_fail "$n hospitals: rounds.csv rows '$rows' (round,phase,participants)"
    grep -q "round 1 (image 1) committed: $n updates, $n evaluations" server-$n.log ||
        t_fail "$n hospitals: no commit of $n updates and evaluations: $(tail -3 server-$n.log)"
}
run 2
run 8

"$py" - <<'PYEOF' || t_fail "peak RSS grows with the number of clients (see above)"
import json
import sys

r = {n: json.load(open("run-%d.json" % n)) for n in (2, 8)}
model = r[8]["summary"]["model_bytes"]
peak = {n: r[n]["server"]["vm_hwm"] for n in r}
diff = peak[8] - peak[2]
for n in (2, 8):
    s = r[n]["summary"]
    print("check_server_memory: %d hospitals: server peak RSS %.1f MB (%.2f x the model), "
          "round %.1f s" % (n, peak[n] / 1e6, peak[n] / model, s.get("round_s", float("nan"))))
print("check_server_memory: model %.1f MB; peak RSS with 8 - with 2 = %+.1f MB (%.0f%% of the "
      "model; the limit is 100%%)" % (model / 1e6, diff / 1e6, 100 * diff / model))
if model < 100 << 20:
    sys.exit("FAIL check_server_memory: the model has %d bytes, under 100 MiB" % model)
if not diff < model:
    sys.exit("FAIL check_server_memory: peak RSS with 8 hospitals %d bytes, with 2 %d: "
             "%d more, not less than the model's %d" % (peak[8], peak[2], diff, model))
PYEOF
t_summary check_server_memory
