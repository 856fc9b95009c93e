#!/usr/bin/env bash
# check_model_cli.sh - `fedlung model info|forward|bench` from the command line: exit codes
# (2 bad usage, 1 failure naming the file and what is wrong), `bench --json` printing exactly
# one JSON object with the promised keys, and forward's output shape; --device and --precision
# (a GPU that cannot start: exit 1 and one sentence; on a machine with a usable GPU, the run).
set -uo pipefail
fedlung=${1:?usage: check_model_cli.sh /path/to/fedlung}
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"
m="--arch resnet18 --tile 32 --width 0.125 --classes 3"
t_expect 2 "unknown arch" -- "$fedlung" model info --arch resnet19 --tile 64
t_expect 2 "tile below 32" -- "$fedlung" model info --arch resnet18 --tile 16
t_expect 2 "forward without weights" -- "$fedlung" model forward $m --input x.npy --out y.npy
t_expect 0 "info" -- "$fedlung" model info $m
grep -q "parameters" out.txt || t_fail "info prints no parameter count"
t_expect 0 "bench --json" -- "$fedlung" model bench $m --batch 4 --steps 2 --json
$py -c '
import json, sys
d = json.loads(open("out.txt").read())
for k in ("images_per_second", "peak_rss_bytes", "first_loss"):
    assert k in d and d[k] > 0, k
assert d["device"] == "cpu" and d["precision"] == "fp32", (d["device"], d["precision"])
' || t_fail "bench --json is not one JSON object with images_per_second, peak_rss_bytes, first_loss, device cpu, precision fp32"
# --device and --precision: names are checked as usage (2), before any work.
t_expect 2 "unknown device" -- "$fedlung" model bench $m --batch 2 --device tpu
grep -q "tpu" err.txt || t_fail "the error does not name tpu"
t_expect 2 "malformed cuda ordinal" -- "$fedlung" model bench $m --batch 2 --device cuda:x
t_expect 2 "unknown precision" -- "$fedlung" model bench $m --batch 2 --precision fp16
t_expect 2 "bf16 on the cpu" -- "$fedlung" model bench $m --batch 2 --precision bf16 --device cpu
grep -q "needs --device cuda" err.txt || t_fail "the bf16-on-cpu error does not say it needs cuda"
t_expect 2 "tf32 on the default device" -- "$fedlung" model forward $m --precision tf32 \
  --weights partial.safetensors --input x.npy --out y.npy
# Weights: a complete file from the engine's own initialisation is not available from the
# CLI, so build one in python with the right names from a torchvision-shaped width-1/8 model.
$py - <<'PY' || t_fail "could not write the fixtures"
import json, struct, numpy as np
def save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes()); off += a.nbytes
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
np.save("x.npy", np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
np.save("wrong.npy", np.zeros((2, 3, 16, 16), np.float32))
save("partial.safetensors", {"conv1.weight": np.zeros((8, 3, 7, 7))})
PY
t_expect 1 "missing weights file" -- "$fedlung" model forward $m --weights nope.safetensors \
  --input x.npy --out y.npy
grep -q "nope.safetensors" err.txt || t_fail "the error does not name nope.safetensors"
t_expect 1 "weights missing a tensor" -- "$fedlung" model forward $m \
  --weights partial.safetensors --input x.npy --out y.npy
grep -q "partial.safetensors" err.txt || t_fail "the error does not name partial.safetensors"
# The input's shape is checked before the weights are read.
t_expect 1 "input of the wrong tile size" -- "$fedlung" model forward $m \
  --weights partial.safetensors --input wrong.npy --out y.npy
grep -q "wrong.npy" err.txt || t_fail "the error does not name wrong.npy"
head -c 64 /dev/urandom >junk.npy
t_expect 1 "unreadable input" -- "$fedlung" model forward $m --weights partial.safetensors \
  --input junk.npy --out y.npy
[ -e y.npy ] && t_fail "a failed forward left y.npy"
# --device cuda: without a usable GPU (no module, driver or device), exit 1 with one sentence
# that names cuda; with one, the run itself (its JSON says cuda).
"$fedlung" model bench $m --batch 2 --steps 1 --json --device cuda >out.txt 2>err.txt
rc=$?
if [ $rc -eq 0 ]; then
  grep -q '"device": "cuda"' out.txt || t_fail "bench --device cuda --json does not say cuda"
elif [ $rc -eq 1 ]; then
  [ "$(wc -l <err.txt)" -eq 1 ] || t_fail "bench --device cuda: not one line: $(cat err.txt)"
  grep -qi "cuda" err.txt || t_fail "bench --device cuda: the error does not mention cuda"
  [ -s out.txt ] && t_fail "bench --device cuda failed but printed on stdout"
else
  t_fail "bench --device cuda exited $rc: $(head -c 300 err.txt)"
fi
"$fedlung" model forward $m --device cuda:0 --weights partial.safetensors --input x.npy \
  --out y.npy >out.txt 2>err.txt
rc=$?
[ $rc -eq 1 ] || t_fail "forward --device cuda:0 with partial weights exited $rc, not 1"
[ "$(wc -l <err.txt)" -eq 1 ] || t_fail "forward --device cuda:0: not one line: $(cat err.txt)"
[ -e y.npy ] && t_fail "a failed forward on cuda left y.npy"
t_summary check_model_cli
