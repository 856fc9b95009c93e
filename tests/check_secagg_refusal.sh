#!/usr/bin/env bash
# check_secagg_refusal.sh - the server refuses a secure-aggregation key advert whose certificate
# is not the one of the TLS connection it came on, or whose signature does not verify: a server
# with a secagg plan (image phase, resnet18 small, clip_norm 1, min_clients 2) and two fake
# hospitals over mutual TLS from python3-grpcio (tests/fake_hospitals.py's Hospital), which join
# and ask for tasks until each has its SECAGG_ADVERTISE task. Then hospital-1 sends
#  a) an advert carrying hospital-2's DER certificate: INVALID_ARGUMENT naming the mismatch
#     (hospital-2's CN where the connection's certificate says hospital-1);
#  b) an advert with its own certificate and a corrupted ECDSA signature: INVALID_ARGUMENT,
#     "the signature does not verify";
#  c) the control: its own certificate, correctly signed (the bytes of crypto/secagg.c's
#     fl_secagg_advert_bytes) - accepted, so that a) and b) fail for their one defect.
# Each refusal is a `secagg_refused` record of hospital-1 in state/audit.log (which verifies),
# followed by the call's `refused` record with the reason, and a SECAGG_REFUSED line in the log.
# The X25519 keys are random 32-byte strings: the server checks the certificate and the signature
# before it looks at the keys (server/study_secagg.c, check_advert).
# (The hospitals' side of these refusals is tests/test_task_secagg.c's.)
# Usage (ctest, from tests/): bash check_secagg_refusal.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_secagg_refusal.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
tests=$(realpath "$(dirname "$0")")
t_need_python "grpc, grpc_tools, cryptography" \
    "apt-get install python3-grpcio python3-grpc-tools python3-cryptography" || exit 1
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_secagg_refusal: "
t_expect_timeout=60

# no cohort: fake hospitals train nothing (t_federation_data's PKI and audit key alone)
t_pki "$fedlung" fl-server hospital-1 hospital-2
t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out keys --name server
for k in 1 2; do
    openssl x509 -in pki/hospital-$k.crt -outform der -out pki/hospital-$k.der ||
        t_fail "openssl x509 -outform der of hospital-$k.crt"
done
"$py" -m grpc_tools.protoc -I"$tests/../proto" --python_out=. --grpc_python_out=. \
    "$tests/../proto/fedlung.proto" || t_fail "grpc_tools.protoc failed"

# fusion with omics needs the statistics phase, whose tasks a fake hospital cannot answer: the
# image phase runs secure aggregation just the same
cat >study.plan <<PLAN
[study]
id = sa-refusal
classes = LUAD,LUSC,NORMAL
phases = image
[image]
arch = resnet18
stem = small
tile = 32
width = 0.125
rounds = 1
local_steps = 1
weighted = false
[fusion]
modalities = image
[privacy]
clip_norm = 1
secagg = true
PLAN
t_study_confs sa-refusal 2 2 "retries = 0" "round_timeout_s = 30"
t_start_server "$fedlung" server.conf || exit 1

"$py" - "$tests" "$port" <<'PYEOF'
import os
import struct
import sys
import types

sys.path.insert(0, sys.argv[1])
import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
import fake_hospitals as fh

a = types.SimpleNamespace(stubs=".", pki="pki", target="127.0.0.1:" + sys.argv[2],
                          study="sa-refusal",
                          plan_hash=fh.hashlib.sha256(open("study.plan", "rb").read()).digest())
pb, pbg = fh.load_stubs(a)
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL check_secagg_refusal: " + what, file=sys.stderr)


hs = {k: fh.Hospital("hospital-%d" % k, a, pb, pbg, None) for k in (1, 2)}
for h in hs.values():
    h.join()
tasks = {}
for k, h in hs.items():
    for _ in range(20):  # the round begins once both joined
        t = h.stub.NextTask(pb.TaskRequest(study_id=a.study, wait_ms=2000), timeout=10)
        if t.kind != pb.TASK_KIND_WAIT:
            break
    tasks[k] = t
    check(t.kind == pb.TASK_KIND_SECAGG_ADVERTISE and t.secagg.index,
          "hospital-%d: task %s, not SECAGG_ADVERTISE: %r" % (k, pb.TaskKind.Name(t.kind), t))
if failures:
    sys.exit(1)

t = tasks[1]
der = {k: open("pki/hospital-%d.der" % k, "rb").read() for k in (1, 2)}
key1 = serialization.load_pem_private_key(open("pki/hospital-1.key", "rb").read(), None)
c_pk, s_pk = os.urandom(32), os.urandom(32)
# fl_secagg_advert_bytes: label, study, client id (each with its NUL), round and index big-endian
msg = (b"fedlung-secagg-v1 advert\0" + a.study.encode() + b"\0" + struct.pack(">QI", t.round,
       t.secagg.index) + b"hospital-1\0" + c_pk + s_pk)
sig = key1.sign(msg, ec.ECDSA(hashes.SHA256()))
bad = bytearray(sig)
bad[-1] ^= 0x01  # the last byte of s
bad = bytes(bad)


def advertise(cert, signature):
    try:
        r = hs[1].stub.AdvertiseKeys(pb.SecAggAdvert(
            study_id=a.study, round=t.round, index=t.secagg.index, c_pk=c_pk, s_pk=s_pk,
            signature=signature, certificate=cert), timeout=10)
        return grpc.StatusCode.OK, r
    except grpc.RpcError as e:
        return e.code(), e.details()


# a) hospital-2's certificate on hospital-1's connection
c, d = advertise(der[2], sig)
check(c == grpc.StatusCode.INVALID_ARGUMENT and
      "its CN is hospital-2, the connection's certificate says hospital-1" in d,
      "a) hospital-2's certificate: %s %r" % (c, d))
# b) its own certificate, a corrupted signature
c, d = advertise(der[1], bad)
check(c == grpc.StatusCode.INVALID_ARGUMENT and "the signature does not verify" in d,
      "b) corrupted signature: %s %r" % (c, d))
# c) the control: the same advert, intact
c, r = advertise(der[1], sig)
check(c == grpc.StatusCode.OK and r.round == t.round, "c) a valid advert: %s %r" % (c, r))
for h in hs.values():
    h.close()
sys.exit(1 if failures else 0)
PYEOF
[ $? -eq 0 ] || t_fail "the fake hospitals' checks failed"

kill -0 "$t_server_pid" 2>/dev/null || t_fail "the server died: $(tail -5 server.log)"
t_stop_server || t_fail "the server exited $? on SIGTERM, not 0: $(tail -5 server.log)"
"$py" - <<'PYEOF' || t_fail "audit records: $(grep secagg state/audit.log)"
import json
import sys
recs = [json.loads(l) for l in open("state/audit.log") if l.strip()]
ref = [r for r in recs if r.get("kind") == "secagg_refused"]
ok = [r for r in recs if r.get("kind") == "secagg_advert"]
# each secagg_refused record says what and why, as the "refused" record of the call after it
why = [r["data"].get("reason", "") for r in recs if r.get("kind") == "refused" and
       r.get("data", {}).get("method") == "AdvertiseKeys" and r.get("actor") == "hospital-1"]
own = [r["data"].get("reason", "") for r in ref if r["data"].get("message") == "advert"]
fails = 0
if [r.get("actor") for r in ref] != ["hospital-1"] * 2 or len(ok) != 1 or \
        ok[0].get("actor") != "hospital-1":
    print("FAIL check_secagg_refusal: expected 2 secagg_refused and then 1 secagg_advert records, "
          "all hospital-1's: %r" % (ref + ok), file=sys.stderr)
    fails += 1
elif not ref[1]["seq"] < ok[0]["seq"]:
    print("FAIL check_secagg_refusal: the advert was accepted before the refusals", file=sys.stderr)
    fails += 1
want = ["its CN is hospital-2, the connection's certificate says hospital-1",
        "the signature does not verify"]
for said, where in ((why, "refused"), (own, "secagg_refused")):
    if len(said) != 2 or not all(w in y for w, y in zip(want, said)):
        print("FAIL check_secagg_refusal: the %s records of hospital-1's adverts say %r, "
              "expected %r" % (where, said, want), file=sys.stderr)
        fails += 1
sys.exit(1 if fails else 0)
PYEOF
n=$(grep -c "SECAGG_REFUSED hospital-1 advert refused: its certificate: " server.log)
[ "$n" -eq 2 ] ||
    t_fail "$n SECAGG_REFUSED lines of hospital-1, expected 2: $(grep REFUSED server.log)"
t_expect 0 "audit verify" -- "$fedlung" audit verify state/audit.log --key keys/server.pub
t_summary check_secagg_refusal
