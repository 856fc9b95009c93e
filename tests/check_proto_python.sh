#!/bin/bash
# check_proto_python.sh - proto/fedlung.proto as another gRPC implementation sees it: Debian's
# python3-grpcio and python3-grpc-tools compile it; the service's method paths and streaming
# kinds must be the ones proto/rpc.c's table prints (`test_proto --print-methods`); Python
# decodes C's encodings (the chunks from the zero-copy encoders) to the expected values and
# re-encodes them to the same bytes; C decodes Python's encodings
# (`test_proto_chunks --read-samples`).
# The server interop test (Status and Join over a real channel) comes with the server.
# Builds nothing: it runs test_proto and test_proto_chunks from the build tree of the fedlung
# binary.
# Usage (ctest, from tests/): bash check_proto_python.sh /path/to/fedlung
# FL_KEEP_TEST_FILES=1 keeps the generated modules and the sample files.
set -euo pipefail

fedlung=${1:?usage: check_proto_python.sh /path/to/fedlung}
source "$(dirname "$0")/lib.sh"
tp=$(t_sibling "$fedlung" test_proto) || exit 1
tpc=$(t_sibling "$fedlung" test_proto_chunks) || exit 1
proto="$(cd "$(dirname "$0")/.." && pwd)/proto"
py=/usr/bin/python3

t_need_python "grpc, grpc_tools.protoc, google.protobuf" \
    "apt-get install python3-grpcio python3-grpc-tools python3-protobuf" || exit 1

t_workdir fedlung-proto # FL_KEEP_TEST_FILES=1: kept
tmp=$work

"$py" -m grpc_tools.protoc -I"$proto" --python_out="$tmp" --grpc_python_out="$tmp" \
    "$proto/fedlung.proto"
"$tp" --print-methods >"$tmp/methods.txt"
"$tpc" --write-samples "$tmp" >/dev/null

"$py" - "$tmp" <<'EOF'
import os
import sys

tmp = sys.argv[1]
sys.path.insert(0, tmp)
import grpc  # noqa: E402
import fedlung_pb2 as pb  # noqa: E402
import fedlung_pb2_grpc as pbg  # noqa: E402

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL check_proto_python: " + what, file=sys.stderr)


# ---- methods: paths and kinds, Python's view against proto/rpc.c's table ----
svc = pb.DESCRIPTOR.services_by_name["Federation"]
stub = pbg.FederationStub(grpc.insecure_channel("127.0.0.1:9"))  # never dialled
kinds = {"_UnaryUnaryMultiCallable": "unary", "_UnaryStreamMultiCallable": "server-stream",
         "_StreamUnaryMultiCallable": "client-stream", "_StreamStreamMultiCallable": "bidi"}
py_methods = ["/%s/%s\t%s" % (svc.full_name, m.name, kinds[type(getattr(stub, m.name)).__name__])
              for m in svc.methods]
c_methods = open(os.path.join(tmp, "methods.txt")).read().split("\n")[:-1]
check(py_methods == c_methods, "methods differ:\n  python %s\n  C      %s" % (py_methods, c_methods))
stub_src = open(os.path.join(tmp, "fedlung_pb2_grpc.py")).read()
for line in c_methods:
    check("'%s'" % line.split("\t")[0] in stub_src, "generated stub lacks " + line)


# ---- C's encodings decoded by Python ----
def load(name, cls):
    raw = open(os.path.join(tmp, name), "rb").read()
    m = cls()
    m.ParseFromString(raw)
    check(m.SerializeToString() == raw, name + ": Python re-encodes different bytes")
    return m


j = load("join_request.bin", pb.JoinRequest)
check(j.study_id == "lung-2025" and j.protocol_version == 1, "join_request ids")
check(list(j.data.class_names) == ["LUAD", "LUSC", "NORMAL"], "join_request class names")
check(list(j.data.patients_per_class) == [120, 98, 31], "join_request patients")
check([(m.modality, m.patients) for m in j.data.modalities] ==
      [(pb.MODALITY_IMAGE, 249), (pb.MODALITY_RNA, 201)], "join_request modalities")
check(len(j.approved_plan_hashes) == 2 and all(len(h) == 32 for h in j.approved_plan_hashes),
      "join_request hashes")
check((j.budget.epsilon_max, j.budget.epsilon_spent, j.budget.delta) == (8, 1.25, 1e-5),
      "join_request budget")
t = load("task.bin", pb.Task)
check(t.kind == pb.TASK_KIND_TRAIN and t.phase == pb.PHASE_IMAGE, "task kind and phase")
check(t.hyper.lr == 0.01 and t.hyper.optimizer == pb.OPTIMIZER_SGD, "task hyper-parameters")
check(t.update.encoding == pb.ENCODING_FIXED32 and t.update.fixed_scale == 65536, "task encoding")
check(t.deadline_unix_ms == 1767225600000 and len(t.model_sha256) == 32, "task deadline, hash")
e = load("eval_report.bin", pb.EvalReport)
check(e.n_classes == 3 and e.bins == 4 and len(e.histogram) == 24, "eval sizes")
check(e.histogram[5] == 25 + 2**31 and e.loss_sum == 41.25, "eval values")
s = load("status_reply.bin", pb.StatusReply)
check(len(s.participants) == 2 and s.progress == 0.3, "status participants, progress")
check(s.participants[1].state == pb.PARTICIPANT_STATE_DROPPED, "status participant state")
mc = load("model_chunk.bin", pb.ModelChunk)
check(mc.offset == 8192 and mc.data == bytes((i * 13 + 5) & 255 for i in range(256)),
      "model chunk payload")
check(mc.header.total_length == 4 * (11689512 + 9600) and mc.header.n_buffers == 9600,
      "model chunk header")
ud = load("update_data.bin", pb.UpdateChunk)
check(ud.WhichOneof("part") == "data" and ud.data.offset == 1 << 20 and len(ud.data.data) == 256,
      "update data chunk")
uh = load("update_header.bin", pb.UpdateChunk)
check(uh.WhichOneof("part") == "header", "update header part")
check(uh.header.encoding == pb.ENCODING_FIXED32 and uh.header.count_kind == pb.COUNT_KIND_NOISED
      and uh.header.example_count == 117.5, "update header fields")

# ---- Python's encodings, for test_proto_chunks --read-samples ----
payload = bytes((i * 7) & 255 for i in range(1000))
sha = b"\x11" * 32


def save(name, m):
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(m.SerializeToString())


save("py_model_chunk.bin", pb.ModelChunk(offset=1048576, data=payload, header=pb.ModelHeader(
    study_id="py-study", round=1, model_version=1, total_length=1024, sha256=sha, n_params=250,
    n_buffers=6)))
save("py_update_data.bin", pb.UpdateChunk(data=pb.DataChunk(offset=4096, data=payload)))
save("py_update_header.bin", pb.UpdateChunk(header=pb.UpdateHeader(
    study_id="py-study", round=1, encoding=pb.ENCODING_FLOAT32, length=1024, sha256=sha,
    n_params=250, n_buffers=6)))
save("py_join_request.bin", pb.JoinRequest(study_id="py-study", data=pb.DataSummary(
    class_names=["LUAD", "LUSC", "NORMAL"], patients_per_class=[1, 2, 31])))

sys.exit(1 if failures else 0)
EOF

"$tpc" --read-samples "$tmp"
echo "check_proto_python: ok ($(wc -l <"$tmp/methods.txt") methods, samples both ways)"
