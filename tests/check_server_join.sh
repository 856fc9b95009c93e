#!/usr/bin/env bash
# check_server_join.sh - `fedlung server` against another gRPC implementation: Debian's
# python3-grpcio, with stubs compiled from the same proto/fedlung.proto, drives Join and Status
# over mutual TLS on 127.0.0.1 with a throw-away PKI made by `fedlung pki`. An allowed client
# joins and is listed by Status; a client not on the allow-list gets PERMISSION_DENIED; a client
# of a rogue CA and one without a certificate fail at the handshake (UNAVAILABLE); a wrong study
# gets FAILED_PRECONDITION; garbage bytes get INVALID_ARGUMENT; the server survives it all and
# exits 0 on SIGTERM. Also the config file's errors, the CLI's exit codes and insecure mode.
# Usage (ctest, from tests/): bash check_server_join.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_server_join.sh /path/to/fedlung}")
proto="$(cd "$(dirname "$0")/.." && pwd)/proto"
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_need_python "grpc, grpc_tools.protoc" "apt-get install python3-grpcio python3-grpc-tools" || exit 1
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_server_join: "
t_expect_timeout=30
# ---- a throw-away PKI ----
t_pki "$fedlung" fl-server hospital-a hospital-x
t_expect 0 "pki init rogue" -- "$fedlung" pki init --out rogue --name "rogue CA"
# the rogue CA's client even carries an allowed name
t_expect 0 "pki issue rogue client" -- "$fedlung" pki issue --ca rogue --name hospital-a --client

t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out keys --name server
cat >study.plan <<PLAN
[study]
id = lung-test
classes = LUAD,LUSC,NORMAL
phases = statistics,fusion
[fusion]
modalities = rna,clinical
PLAN
plan_hash=$(sha256sum study.plan | cut -d' ' -f1)

port=$(t_free_port)
cat >server.conf <<CONF
# fedlung server configuration (test)
[server]
listen = 127.0.0.1:$port
study = lung-test
state_dir = state
plan = study.plan
audit_key = keys/server.key
min_clients = 2

[tls]
ca = pki/ca.crt
cert = pki/fl-server.crt
key = pki/fl-server.key   ; relative to this file

[clients]
allow = hospital-a, hospital-b
allow = hospital-c
CONF

# ---- the CLI and the config file ----
t_expect 2 "no --config" -- "$fedlung" server
t_expect 0 "--help" -- "$fedlung" server --help
t_expect 2 "unknown option" -- "$fedlung" server --config server.conf --bogus
t_expect 1 "missing config" -- "$fedlung" server --config nope.conf
sed 's/^min_clients = 2/min_clients = 2\ncolour = blue/' server.conf >bad1.conf
t_expect 1 "unknown key" -- "$fedlung" server --config bad1.conf
grep -q "bad1.conf:9: unknown key 'colour' in \[server\]" err.txt ||
    t_fail "unknown key message: $(cat err.txt)"
grep -v '^study' server.conf >bad2.conf
t_expect 1 "missing study" -- "$fedlung" server --config bad2.conf
grep -q "bad2.conf: \[server\] study is missing" err.txt || t_fail "missing key message: $(cat err.txt)"
sed 's/^allow = hospital-c/allow = hospital c/' server.conf >bad3.conf
t_expect 1 "bad client name" -- "$fedlung" server --config bad3.conf
grep -q "bad3.conf:17: allow: 'hospital c'" err.txt || t_fail "bad name message: $(cat err.txt)"
sed 's/^insecure.*//; s/^\[clients\]/[clients\nallow/' server.conf >bad4.conf
t_expect 1 "syntax error" -- "$fedlung" server --config bad4.conf
grep -q "bad4.conf:15: section header" err.txt || t_fail "syntax message: $(cat err.txt)"

sed 's/^study = lung-test/study = lung-test # the study/' server.conf >bad5.conf
t_expect 1 "a # comment after a value" -- "$fedlung" server --config bad5.conf
grep -q "bad5.conf:4: study: a comment after a value" err.txt || t_fail "# comment: $(cat err.txt)"

# an expired client certificate with an allowed name, signed by the consortium CA (fedlung pki
# refuses to make one, so python3-cryptography does)
"$py" - <<'PYEOF' || t_fail "could not make an expired certificate"
import datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
ca_key = serialization.load_pem_private_key(open("pki/ca.key", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open("pki/ca.crt", "rb").read())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.utcnow()
cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hospital-a")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256()))
open("pki/expired.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open("pki/expired.key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PYEOF

# ---- the server over mTLS, driven from Python ----
"$py" -m grpc_tools.protoc -I"$proto" --python_out=. --grpc_python_out=. "$proto/fedlung.proto" ||
    t_fail "grpc_tools.protoc failed"
t_start_server "$fedlung" server.conf || exit 1
[ -d state ] || t_fail "state_dir was not created"

"$py" - "$port" "$plan_hash" <<'PYEOF'
import sys
import grpc
import fedlung_pb2 as pb
import fedlung_pb2_grpc as pbg

port = sys.argv[1]
plan_hash = bytes.fromhex(sys.argv[2])
target = "127.0.0.1:" + port
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL check_server_join: " + what, file=sys.stderr)


def read(p):
    return open(p, "rb").read()


ca = read("pki/ca.crt")


def channel(cert=None, key=None):
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(target, creds)


def client(name, pki="pki"):
    return channel(read("%s/%s.crt" % (pki, name)), read("%s/%s.key" % (pki, name)))


def code_of(fn, *args):
    try:
        fn(*args, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


join = pb.JoinRequest(study_id="lung-test", software_version="0.1.0", protocol_version=1,
                      approved_plan_hashes=[plan_hash],
                      data=pb.DataSummary(class_names=["LUAD", "LUSC", "NORMAL"],
                                          patients_per_class=[10, 12, 5], patients=27,
                                          modalities=[
                                              pb.ModalityCount(modality=pb.MODALITY_RNA,
                                                               patients=27, features=100,
                                                               features_sha256=b"r" * 32),
                                              pb.ModalityCount(modality=pb.MODALITY_CLINICAL,
                                                               patients=27, features=4,
                                                               features_sha256=b"c" * 32)]))

# the allowed hospital
with client("hospital-a") as ch:
    stub = pbg.FederationStub(ch)
    r = stub.Join(join, timeout=10)
    check(r.study_id == "lung-test", "Join study_id %r" % r.study_id)
    check(r.client_id == "hospital-a", "Join client_id %r" % r.client_id)
    check(r.round == 1 and r.protocol_version == 1, "Join round/protocol %d/%d"
          % (r.round, r.protocol_version))
    check(r.plan_hash == plan_hash and r.plan == open("study.plan", "rb").read(),
          "Join plan and plan_hash")
    check(r.max_message_bytes == (4 << 20) + (64 << 10),
          "Join max_message_bytes %d" % r.max_message_bytes)
    s = stub.Status(pb.StatusRequest(study_id="lung-test"), timeout=10)
    check(s.study_id == "lung-test" and s.round == 1 and s.phase == pb.PHASE_UNSPECIFIED,
          "Status study/round/phase %r/%d/%d" % (s.study_id, s.round, s.phase))
    check([p.client_id for p in s.participants] == ["hospital-a"],
          "Status participants %r" % [p.client_id for p in s.participants])
    check(s.participants_joined == 1 and s.updates_needed == 2,
          "Status joined/needed %d/%d" % (s.participants_joined, s.updates_needed))
    check(s.participants[0].state == pb.PARTICIPANT_STATE_JOINED, "participant state")
    # a wrong study
    c, d = code_of(stub.Join, pb.JoinRequest(study_id="other-study"))
    check(c == grpc.StatusCode.FAILED_PRECONDITION and "other-study" in d and "lung-test" in d,
          "wrong study: %s %r" % (c, d))
    c, d = code_of(stub.Status, pb.StatusRequest(study_id="other-study"))
    check(c == grpc.StatusCode.FAILED_PRECONDITION, "Status wrong study: %s %r" % (c, d))
    # one of two hospitals joined: no task yet (wait_ms 0 answers at once)
    t = stub.NextTask(pb.TaskRequest(study_id="lung-test", wait_ms=0), timeout=10)
    check(t.kind == pb.TASK_KIND_WAIT and "join" in t.reason, "NextTask: %r" % t)
    # a long poll is held until its wait ends
    import time
    t0 = time.time()
    t = stub.NextTask(pb.TaskRequest(study_id="lung-test", wait_ms=700), timeout=10)
    check(t.kind == pb.TASK_KIND_WAIT and time.time() - t0 >= 0.6,
          "NextTask long poll answered after %.2f s: %r" % (time.time() - t0, t))
    # an update without a task, a model that does not exist, an evaluation without a task
    hdr = pb.UpdateChunk(header=pb.UpdateHeader(study_id="lung-test", round=1, length=8,
                         n_params=2, sha256=b"\0" * 32, encoding=pb.ENCODING_FLOAT32))
    c, d = code_of(stub.PutUpdate, iter([hdr]))
    check(c == grpc.StatusCode.FAILED_PRECONDITION, "PutUpdate without a task: %s %r" % (c, d))
    c, d = code_of(stub.PutUpdate, iter([pb.UpdateChunk(data=pb.DataChunk(data=b"x"))]))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "PutUpdate without a header: %s %r" % (c, d))
    c, d = code_of(lambda timeout: list(stub.GetModel(pb.ModelRequest(
        study_id="lung-test", round=1, model_version=7), timeout=timeout)))
    check(c == grpc.StatusCode.FAILED_PRECONDITION, "GetModel of no model: %s %r" % (c, d))
    c, d = code_of(stub.PutEval, pb.EvalReport(study_id="lung-test", round=1, n_classes=3,
                                               bins=2, histogram=[0] * 12))
    check(c == grpc.StatusCode.FAILED_PRECONDITION, "PutEval without a task: %s %r" % (c, d))
    c, d = code_of(stub.PutEval, pb.EvalReport(study_id="lung-test", round=1, n_classes=3,
                                               bins=2, histogram=[0] * 11))
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "PutEval with a short histogram: %s %r" % (c, d))
    # garbage where a JoinRequest belongs: a length-delimited field running past the end
    raw = ch.unary_unary("/fedlung.v1.Federation/Join")
    c, d = code_of(raw, b"\x0a\xff\xff\xff\x0f\x01\x02")
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "garbage Join: %s %r" % (c, d))
    c, d = code_of(raw, b"\x0a\x03a b")  # a study id that is not an id
    check(c == grpc.StatusCode.INVALID_ARGUMENT, "bad study id: %s %r" % (c, d))
    # over the 4 MiB + 64 KiB receive limit
    c, d = code_of(raw, b"\x00" * (5 << 20))
    check(c == grpc.StatusCode.RESOURCE_EXHAUSTED, "5 MiB Join: %s %r" % (c, d))
    # a path no one serves
    c, d = code_of(ch.unary_unary("/fedlung.v1.Federation/Nope"), b"")
    check(c == grpc.StatusCode.UNIMPLEMENTED, "unknown method: %s %r" % (c, d))

# a hospital with a valid certificate that is not on the allow-list
with client("hospital-x") as ch:
    c, d = code_of(pbg.FederationStub(ch).Join, join)
    check(c == grpc.StatusCode.PERMISSION_DENIED and "hospital-x" in d,
          "hospital-x: %s %r" % (c, d))

# a certificate from a rogue CA (with an allowed name), and no certificate at all
with client("hospital-a", "rogue") as ch:
    c, d = code_of(pbg.FederationStub(ch).Join, join)
    check(c == grpc.StatusCode.UNAVAILABLE, "rogue CA: %s %r" % (c, d))
with channel() as ch:
    c, d = code_of(pbg.FederationStub(ch).Join, join)
    check(c == grpc.StatusCode.UNAVAILABLE, "no certificate: %s %r" % (c, d))
with client("expired") as ch:
    c, d = code_of(pbg.FederationStub(ch).Join, join)
    check(c == grpc.StatusCode.UNAVAILABLE, "expired certificate: %s %r" % (c, d))
# plaintext against the TLS port
with grpc.insecure_channel(target) as ch:
    c, d = code_of(pbg.FederationStub(ch).Join, join)
    check(c == grpc.StatusCode.UNAVAILABLE, "plaintext: %s %r" % (c, d))

# still serving after all that
with client("hospital-a") as ch:
    s = pbg.FederationStub(ch).Status(pb.StatusRequest(study_id="lung-test"), timeout=10)
    check(len(s.participants) == 1, "Status after the refusals: %r" % s)
sys.exit(1 if failures else 0)
PYEOF
[ $? -eq 0 ] || t_fail "the Python client's checks failed"

kill -0 "$t_server_pid" 2>/dev/null || t_fail "the server died: $(tail -5 server.log)"
grep -q "JOIN hospital-a joined" server.log || t_fail "no JOIN line in the log"
grep -q "REFUSED hospital-x Join PERMISSION_DENIED" server.log ||
    t_fail "no PERMISSION_DENIED line for hospital-x in the log"
"$fedlung" audit verify state/audit.log --key keys/server.pub >/dev/null 2>err.txt ||
    t_fail "the audit log does not verify: $(cat err.txt)"
"$fedlung" audit show state/audit.log >audit.txt 2>&1
grep -q "refused .*hospital-x" audit.txt || t_fail "no refused record for hospital-x: $(cat audit.txt)"
grep -q "handshake_refused.*certificate verify failed" state/audit.log ||
    t_fail "no handshake_refused record for the rogue CA: $(grep handshake audit.txt)"
grep -q "handshake_refused.*did not return a certificate" state/audit.log ||
    t_fail "no handshake_refused record for the missing certificate: $(grep handshake audit.txt)"
[ "$(grep -c "handshake_refused.*certificate verify failed" state/audit.log)" -ge 2 ] ||
    t_fail "no handshake_refused record for the expired certificate"
grep -q "REFUSED hospital-a Join INVALID_ARGUMENT" server.log ||
    t_fail "no INVALID_ARGUMENT line in the log"
grep -q "WARNING" server.log && t_fail "a WARNING under mTLS: $(grep WARNING server.log)"
# a second server of the same state_dir must fail (the audit log's lock), and one on the same
# port too (SO_REUSEPORT off)
t_expect 1 "second server of the same state" -- "$fedlung" server --config server.conf
grep -q "in use by another process" err.txt || t_fail "second server: $(cat err.txt)"
sed 's/^state_dir = state/state_dir = state2/' server.conf >second.conf
t_expect 1 "second server on the same port" -- "$fedlung" server --config second.conf
grep -q "cannot listen" err.txt || t_fail "second server: $(cat err.txt)"
t_stop_server
rc=$?
[ "$rc" -eq 0 ] || t_fail "the server exited $rc on SIGTERM, not 0: $(tail -5 server.log)"

# ---- insecure mode: a warning on start, the identity from metadata ----
port=$(t_free_port)
cat >insecure.conf <<CONF
[server]
listen = 127.0.0.1:$port
study = lung-test
state_dir = state-insecure
plan = study.plan
[tls]
insecure = true
[clients]
allow = hospital-a
CONF
t_start_server "$fedlung" insecure.conf || exit 1
grep -q "WARNING insecure = true" server.log || t_fail "no insecure warning: $(cat server.log)"
"$py" - "$port" <<'PYEOF'
import sys
import grpc
import fedlung_pb2 as pb
import fedlung_pb2_grpc as pbg
with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as ch:
    stub = pbg.FederationStub(ch)
    r = stub.Join(pb.JoinRequest(study_id="lung-test"), timeout=10,
                  metadata=[("fedlung-client-id", "hospital-a")])
    assert r.client_id == "hospital-a", r
    try:
        stub.Join(pb.JoinRequest(study_id="lung-test"), timeout=10)
        sys.exit("Join without a client id succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
PYEOF
[ $? -eq 0 ] || t_fail "insecure mode's checks failed"
t_stop_server
rc=$?
[ "$rc" -eq 0 ] || t_fail "the insecure server exited $rc on SIGTERM"

if [ "$t_fails" -ne 0 ]; then
    echo "check_server_join: $t_fails failure(s)" >&2
    exit 1
fi
echo "check_server_join: ok (mTLS Join/Status from python3-grpcio, refusals, shutdown)"
