#!/bin/bash
# check_umap_trust.sh - eval/knn.c's fl_trustworthiness against sklearn.manifold.trustworthiness
# on random embeddings (noise, a noisy projection, a clustered set, a 1-d embedding, tiny and
# larger k) to 1e-9 absolute. Builds nothing: it runs `test_umap --trust X.npy Y.npy K` from the
# build tree of the fedlung binary.
# Usage (ctest, from tests/): bash check_umap_trust.sh /path/to/fedlung
set -euo pipefail

fedlung=${1:?usage: check_umap_trust.sh /path/to/fedlung}
source "$(dirname "$0")/lib.sh"
tu=$(t_sibling "$fedlung" test_umap) || exit 1
py=/usr/bin/python3

t_need_python "numpy, sklearn" "apt-get install python3-sklearn" || exit 1

t_workdir fedlung-trust
tmp=$work

"$py" - "$tu" "$tmp" <<'EOF'
import os
import subprocess
import sys

import numpy as np
from sklearn.manifold import trustworthiness

tu, tmp = sys.argv[1], sys.argv[2]
TOL = 1e-9
rng = np.random.default_rng(20261126)


def cases():
    X = rng.normal(size=(200, 12))
    yield "noise", X, rng.normal(size=(200, 2)), 10
    W = rng.normal(size=(12, 2))
    yield "projection", X, X @ W + 0.3 * rng.normal(size=(200, 2)), 10
    yield "projection_k1", X, X @ W + 0.3 * rng.normal(size=(200, 2)), 1
    centres = 6 * rng.normal(size=(4, 30))
    B = centres[rng.integers(0, 4, 500)] + rng.normal(size=(500, 30))
    yield "blobs", B, B[:, :2] + 0.5 * rng.normal(size=(500, 2)), 10
    yield "blobs_k40", B, B[:, :2] + 0.5 * rng.normal(size=(500, 2)), 40
    X = rng.normal(size=(60, 5))
    yield "one_dim", X, X[:, :1] + 0.1 * rng.normal(size=(60, 1)), 5
    yield "largest_k", X, rng.normal(size=(60, 2)), 29


failures, checked = [], 0
for name, X, Y, k in cases():
    X = X.astype(np.float32)  # what C reads is exactly what sklearn gets, as float64
    Y = Y.astype(np.float32)
    xp, yp = os.path.join(tmp, name + "_X.npy"), os.path.join(tmp, name + "_Y.npy")
    np.save(xp, X)
    np.save(yp, Y)
    r = subprocess.run([tu, "--trust", xp, yp, str(k)], capture_output=True, text=True)
    checked += 1
    if r.returncode != 0:
        failures.append(f"{name}: test_umap --trust failed ({r.returncode}): {r.stderr.strip()}")
        continue
    got = float(r.stdout)
    want = float(trustworthiness(X.astype(np.float64), Y.astype(np.float64), n_neighbors=k))
    print(f"check_umap_trust: {name}: n={len(X)} k={k}: C {got:.12f}, sklearn {want:.12f}")
    if abs(got - want) > TOL:
        failures.append(f"{name}: C {got!r}, sklearn {want!r}")

if failures:
    for f in failures:
        print("check_umap_trust: MISMATCH " + f)
    print(f"check_umap_trust: FAIL: {len(failures)} of {checked} cases differ by more than {TOL:g}")
    sys.exit(1)
print(f"check_umap_trust: ok: {checked} cases match sklearn to {TOL:g}")
EOF
