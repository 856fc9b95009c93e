#!/usr/bin/env bash
# check_opcheck.sh - the CPU side of the GPU validation kit (bench/gpu-check): `fedlung model
# opcheck --device cpu` against the committed references tests/gpu_ref (a regression test of
# the CPU backend, op by op; regenerated with --write, their inputs and manifest are
# byte-identical, so the fixtures are the committed tool's output), and failing (exit 1, the case named) on a reference perturbed past
# its 1e-5 bound or missing; every case redone in PyTorch (tests/gpu/torch_parity.py ops, CPU);
# `fedlung model step --device cpu` on a small ResNet-18 against PyTorch float64 (loss, logits,
# gradients, BN buffers within 1e-4); `bench/gpu-check --dry-run`. Needs Debian's torch
# (/usr/bin/python3). About 15 s on 2 cores.
# Usage (ctest, from tests/): bash check_opcheck.sh /path/to/fedlung
set -uo pipefail
fedlung=${1:?usage: check_opcheck.sh /path/to/fedlung}
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
t_need_python "torch" "apt-get install python3-torch" || exit 1
t_workdir
cd "$work"
ref=$here/gpu_ref
t_expect_timeout=300

# 1. The CPU backend reproduces its committed references, and --out writes every array.
t_expect 0 "opcheck --device cpu against tests/gpu_ref" -- \
    "$fedlung" model opcheck --device cpu --ref "$ref" --out got
n=$(find "$ref" -name '*.npy' | wc -l)
grep -q "cases, 0 failed" out.txt || t_fail "opcheck's summary line: $(tail -n 1 out.txt)"
if grep -q FAIL out.txt; then t_fail "opcheck printed a FAIL: $(grep FAIL out.txt | head -3)"; fi
[ "$(find got -name '*.npy' | wc -l)" -eq "$n" ] ||
    t_fail "--out wrote $(find got -name '*.npy' | wc -l) arrays, tests/gpu_ref has $n"
[ -s got/manifest.json ] || t_fail "--out wrote no manifest.json"
size=$(du -sb "$ref" | cut -f1)
[ "$size" -lt 1000000 ] || t_fail "tests/gpu_ref holds $size bytes (should stay under 1 MB)"
# The committed files are what the committed tool writes: regenerated here, every input array
# and the manifest are byte-identical (outputs may differ in the last bits with the thread count;
# step 1 holds them to their bounds).
t_expect 0 "opcheck --device cpu --write" -- \
    "$fedlung" model opcheck --device cpu --ref regen --write
cmp -s regen/manifest.json "$ref/manifest.json" || t_fail "manifest.json differs when regenerated"
$py - "$ref" regen <<'EOF' || t_fail "regenerated inputs differ from tests/gpu_ref"
import json, sys
ref, regen = sys.argv[1:]
bad = 0
for c in json.load(open(ref + "/manifest.json"))["cases"]:
    for a in c["arrays"]:
        if a["role"] != "in":
            continue
        f = "/%s.%s.npy" % (c["name"], a["name"])
        if open(ref + f, "rb").read() != open(regen + f, "rb").read():
            print("FAIL check_opcheck: %s differs when regenerated" % f[1:], file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
EOF

# 2. A reference perturbed past its bound (one element of one output by 1e-4 of the array's
# scale, ten times the fp32 bound), or missing, fails with exit 1 and names its case; PyTorch's
# parity check flags the same perturbation.
cp -r "$ref" perturbed
$py - perturbed "$here/gpu" <<'EOF' || t_fail "could not perturb a reference"
import sys
sys.path.insert(0, sys.argv[2])
import fl_io
path = sys.argv[1] + "/conv3x3_s1_p1_bias_beta1.dw.npy"
a = fl_io.read_npy(path)
flat = a.reshape(-1)
flat[5] += 1e-4 * max(1.0, float(a.abs().max()))
fl_io.write_npy(path, a)
EOF
t_expect 1 "opcheck against a perturbed reference" -- \
    "$fedlung" model opcheck --device cpu --ref perturbed
grep -q "^conv3x3_s1_p1_bias_beta1 .*dw .*FAIL" out.txt ||
    t_fail "the perturbed case is not the one reported: $(grep FAIL out.txt | head -3)"
[ "$(grep -c FAIL out.txt)" -eq 1 ] || t_fail "more than the perturbed case failed"
grep -q "cases, 1 failed" out.txt || t_fail "summary after a perturbation: $(tail -n 1 out.txt)"
t_expect 1 "torch_parity.py ops on a perturbed output" -- \
    "$py" "$here/gpu/torch_parity.py" ops --ref "$ref" --got perturbed --device cpu
grep -q "^| conv3x3_s1_p1_bias_beta1 .*FAIL |" out.txt ||
    t_fail "PyTorch parity does not flag the perturbed case: $(grep FAIL out.txt | head -3)"
rm perturbed/relu.dx.npy
t_expect 1 "opcheck with a reference missing" -- \
    "$fedlung" model opcheck --device cpu --ref perturbed --case relu
grep -q "relu.dx.npy" out.txt err.txt || t_fail "the missing file is not named"
t_expect 2 "opcheck without --ref" -- "$fedlung" model opcheck --device cpu
t_expect 2 "opcheck --write with --case" -- \
    "$fedlung" model opcheck --device cpu --ref x --write --case relu
t_expect 1 "opcheck --case matching nothing" -- \
    "$fedlung" model opcheck --device cpu --ref "$ref" --case no_such_case
t_expect 2 "opcheck with bf16 on the cpu" -- \
    "$fedlung" model opcheck --device cpu --precision bf16 --ref "$ref"

# 3. The same cases in PyTorch (CPU, fp32): the CPU references and the fresh outputs.
t_expect 0 "torch_parity.py ops (cpu)" -- \
    "$py" "$here/gpu/torch_parity.py" ops --ref "$ref" --got got --device cpu --outdir parity
grep -q "0 failed" out.txt || t_fail "ops parity: $(grep -E 'FAIL|failed' out.txt | head -3)"

# 4. One training step of a small ResNet-18 against PyTorch float64. The small stem keeps
# layer4 at 4x4, so train-mode BN normalises 32 values per channel: with the imagenet stem at
# 32 px layer4 is 1x1, BN sees 2 values, and PyTorch's own float32 is 6e-4 off float64.
t_expect 0 "model step parity (cpu)" -- \
    "$py" "$here/gpu/torch_parity.py" step --fedlung "$fedlung" --device cpu --arch resnet18 \
    --tile 32 --stem small --width 0.25 --batch 2 --bound 1e-4 --strict --threads 2 --work step \
    --outdir parity
grep -q "tensors, 0 failed" out.txt || t_fail "step parity: $(tail -n 3 out.txt)"
[ -s parity/step_parity_resnet18.md ] || t_fail "no step_parity_resnet18.md written"
t_expect 2 "model step without its files" -- "$fedlung" model step --device cpu --arch resnet18 \
    --tile 32 --weights step/w.safetensors
t_expect 1 "model step with labels that do not fit" -- "$fedlung" model step --device cpu \
    --arch resnet18 --tile 32 --stem small --width 0.25 --weights step/w.safetensors \
    --input step/x.npy --labels got/relu.x.npy --out g.safetensors
grep -q "relu.x.npy" err.txt || t_fail "the labels' file is not named"

# 5. The GPU script's own checks and plan, without a GPU.
t_expect 0 "bench/gpu-check --dry-run" -- "$here/../bench/gpu-check" --dry-run dry
grep -q "plan" out.txt || t_fail "the dry run printed no plan"

t_summary "$t_name"
