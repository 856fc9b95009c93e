#!/bin/bash
# check_metrics_sklearn.sh - eval/metrics.c against scikit-learn: per-class one-vs-rest ROC AUC
# and average precision, macro means, accuracy and the confusion matrix on random scores, heavily
# tied scores (rounded to one decimal), all-equal scores and a class without samples, for 2, 3
# and 5 classes; the full ROC and PR curves of two cases; and the histogram metrics (20 bins,
# three merged "sites") against sklearn on the binned scores. All to 1e-9 absolute.
# Builds nothing: it runs `test_metrics --dump DIR` from the build tree of the fedlung binary.
# Usage (ctest, from tests/): bash check_metrics_sklearn.sh /path/to/fedlung
# FL_KEEP_TEST_FILES=1 keeps the cases (with their predictions.csv, metrics.json, roc.png, pr.png).
set -euo pipefail

fedlung=${1:?usage: check_metrics_sklearn.sh /path/to/fedlung}
source "$(dirname "$0")/lib.sh"
tm=$(t_sibling "$fedlung" test_metrics) || exit 1
py=/usr/bin/python3

t_need_python "numpy, sklearn" "apt-get install python3-sklearn" || exit 1

t_workdir fedlung-metrics # FL_KEEP_TEST_FILES=1: kept
tmp=$work

"$py" - "$tm" "$tmp" <<'EOF'
import csv
import math
import os
import subprocess
import sys
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix,
                             precision_recall_curve, roc_auc_score, roc_curve)

warnings.filterwarnings("ignore")  # sklearn's "no positive class" warnings are expected
tm, tmp = sys.argv[1], sys.argv[2]
B = 20
TOL = 1e-9
rng = np.random.default_rng(20240611)
failures = []
checked = 0


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def random_case(n, K, signal=1.0):
    y = rng.integers(0, K, n)
    z = rng.normal(size=(n, K))
    z[np.arange(n), y] += signal
    return softmax(z).astype(np.float32), y


def cases():
    for K, n in ((2, 200), (3, 500), (5, 1000)):
        p, y = random_case(n, K)
        yield f"random_k{K}", p, y
    for K, n in ((2, 150), (3, 400), (5, 300)):
        p, y = random_case(n, K, 0.7)
        yield f"tied_k{K}", np.round(p.astype(np.float64), 1).astype(np.float32), y
    y = rng.integers(0, 3, 60)
    yield "all_same_k3", np.full((60, 3), 0.5, dtype=np.float32), y
    p, y = random_case(120, 3)
    y[y == 2] = 1  # class 2 has no samples: AUC and AP undefined
    yield "missing_class_k3", p, y
    p, y = random_case(80, 3)
    y[:] = 0  # class 0 has no negatives, classes 1 and 2 no positives
    yield "one_label_k3", p, y
    p, y = random_case(40, 2)
    yield "signed_k2", (p.astype(np.float64) * 4 - 1.5).astype(np.float32), y  # not in [0, 1]


def fail(case, what, got, want):
    failures.append(f"{case}: {what}: C {got!r}, sklearn {want!r}")


def same(a, b):
    if isinstance(b, float) and math.isnan(b):
        return math.isnan(a)
    return not math.isnan(a) and abs(a - b) <= TOL


def compare(case, what, got, want):
    global checked
    checked += 1
    if not same(got, want):
        fail(case, what, got, want)


def compare_curve(case, what, got, want):
    global checked
    checked += 1
    want = np.asarray(want, dtype=np.float64)
    if len(got) != len(want):
        fail(case, f"{what} has {len(got)} points", len(got), len(want))
        return
    got = np.asarray(got, dtype=np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    bad = ~both_nan & ~(np.abs(got - want) <= TOL)
    if bad.any():
        i = int(np.argmax(bad))
        fail(case, f"{what}[{i}]", float(got[i]), float(want[i]))


def nanmean(v):
    v = [x for x in v if not math.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def binned(s):
    return np.clip(np.floor(s.astype(np.float64) * B), 0, B - 1)


def sk_auc(t, s):
    if t.all() or not t.any():
        return float("nan")
    return float(roc_auc_score(t, s))


def sk_ap(t, s):
    if not t.any():
        return float("nan")  # sklearn: 0 and a warning; fedlung: undefined
    return float(average_precision_score(t, s))


curve_cases = {"tied_k3", "random_k2", "one_label_k3"}
for case, p, y in cases():
    n, K = p.shape
    d = os.path.join(tmp, case)
    os.makedirs(d)
    with open(os.path.join(d, "input.csv"), "w") as f:
        f.write("label," + ",".join(f"class{k}" for k in range(K)) + "\n")
        for i in range(n):
            f.write(f"{y[i]}," + ",".join("%.9g" % float(v) for v in p[i]) + "\n")
    # What C reads back is exactly p (9 digits round-trip a float32).
    r = subprocess.run([tm, "--dump", d, str(B)], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{case}: test_metrics --dump failed ({r.returncode}): {r.stderr.strip()}")
        continue
    out = {}
    with open(os.path.join(d, "out.csv")) as f:
        for row in csv.DictReader(f):
            out.setdefault((row["key"], int(row["k"])), {})[int(row["j"])] = float(row["value"])

    def get(key, k=0, j=0):
        return out[(key, k)][j]

    def series(key, k):
        v = out.get((key, k), {})
        return [v[j] for j in range(len(v))]

    aucs, aps = [], []
    for k in range(K):
        t = y == k
        s = p[:, k]
        a, ap = sk_auc(t, s), sk_ap(t, s)
        aucs.append(a)
        aps.append(ap)
        compare(case, f"class {k} AUC", get("auc", k), a)
        compare(case, f"class {k} AP", get("ap", k), ap)
        compare(case, f"class {k} curve AUC", get("curve_auc", k), a)
        compare(case, f"class {k} curve AP", get("curve_ap", k), ap)
        sb = binned(s)
        compare(case, f"class {k} histogram AUC", get("hist_auc", k), sk_auc(t, sb))
        compare(case, f"class {k} histogram AP", get("hist_ap", k), sk_ap(t, sb))
        if case in curve_cases:
            fpr, tpr, thr = roc_curve(t, s, drop_intermediate=False)
            compare_curve(case, f"class {k} ROC fpr", series("roc_fpr", k), fpr)
            compare_curve(case, f"class {k} ROC tpr", series("roc_tpr", k), tpr)
            # Threshold 0 is "above every score": max + 1 in sklearn 1.2, inf from 1.3 on.
            compare_curve(case, f"class {k} ROC thresholds", series("roc_thr", k)[1:], thr[1:])
            prec, rec, pthr = precision_recall_curve(t, s)
            compare_curve(case, f"class {k} PR precision", series("pr_precision", k), prec)
            compare_curve(case, f"class {k} PR recall", series("pr_recall", k), rec)
            compare_curve(case, f"class {k} PR thresholds", series("pr_thr", k), pthr)
    compare(case, "macro AUC", get("macro_auc"), nanmean(aucs))
    compare(case, "macro AP", get("macro_ap"), nanmean(aps))
    pred = np.argmax(p, axis=1)
    compare(case, "accuracy", get("accuracy"), float(accuracy_score(y, pred)))
    cm = confusion_matrix(y, pred, labels=list(range(K)))
    for a in range(K):
        for b in range(K):
            compare(case, f"confusion[{a}][{b}]", get("confusion", a, b), float(cm[a, b]))
    for name in ("predictions.csv", "metrics.json", "roc.png", "pr.png"):
        checked += 1
        if not os.path.getsize(os.path.join(d, name)):
            failures.append(f"{case}: {name} is empty")
    print(f"check_metrics_sklearn: {case}: n={n} K={K} macro AUC {get('macro_auc'):.6f} "
          f"AP {get('macro_ap'):.6f} accuracy {get('accuracy'):.4f}")

if failures:
    for f in failures[:40]:
        print("check_metrics_sklearn: MISMATCH " + f)
    print(f"check_metrics_sklearn: FAIL: {len(failures)} of {checked} checks differ from sklearn "
          f"by more than {TOL:g}")
    sys.exit(1)
print(f"check_metrics_sklearn: ok: {checked} checks match sklearn to {TOL:g}")
EOF
