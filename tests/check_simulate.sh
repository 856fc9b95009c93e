#!/usr/bin/env bash
# check_simulate.sh - `fedlung simulate` end to end: a small federation (3 hospitals, a tiny
# synthetic cohort split IID, a short plan) runs a server and three clients over gRPC with
# mutual TLS on 127.0.0.1 and finishes: rounds.csv has one row per round of the plan, the audit
# log verifies against server.pub, model.h5 and the charts are there. With --kill-server-at 2
# the server is killed during round 2 and restarted on the same port: the study still
# completes and rounds.csv has each round exactly once. Under --dp the hospitals standardize
# their own patients (--standardize site): the demo plan has no statistics round and lists its
# features, ranked on a public cohort DIR/public.h5 with the hospitals' features; --standardize
# federated is refused with --dp, and a --plan that says otherwise than --standardize is refused;
# a site-standardized plan with the image modality runs with an empty features round (each
# hospital standardizes its embeddings itself).
# With --dp patient (fusion only, a plan listing its features) the
# hospitals' epsilon per round (training and the noised evaluation reports, composed as
# `fedlung privacy epsilon` composes them) lands in privacy.csv and the round lines, every
# evaluation left each hospital noised and was charged to its ledger, the server's audit log
# has no site metric, and a small --epsilon-max makes them refuse; --dp client --adaptive-clip, with the server killed during
# a round, resumes with the clip norm the rule had reached, and rounds.csv, privacy.csv and the
# round lines show the clip norm shrinking from far above the update norms; --secagg completes
# with masked sums, with --dp patient too (the same epsilon). A SIGINT stops the run with exit 1.
# No run leaves a process behind. Also the command line's exit codes.
# Usage (ctest, from tests/): bash check_simulate.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_simulate.sh /path/to/fedlung}")
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_simulate: "
t_expect_timeout=180
sim_pid=
t_on_exit '[ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null'

# leftovers DIR: the processes whose working folder is under DIR (the server and clients run
# in DIR/server and DIR/hospitals/hospital-K).
leftovers() {
    local p cwd
    for p in /proc/[0-9]*; do
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        case "$cwd" in "$work/$1"/*) echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline")" ;; esac
    done
}

# check_run DIR ROUNDS: the results of a finished run with ROUNDS rounds.
check_run() {
    local dir=$1 rounds=$2 f
    for f in rounds.csv audit.log server.pub model.h5 auc.png loss.png study.plan; do
        [ -s "$dir/$f" ] || t_fail "$dir: no $f"
    done
    head -1 "$dir/rounds.csv" | grep -q "^round,phase,participants,loss,macro_auc,auc_LUAD,auc_LUSC,auc_NORMAL$" ||
        t_fail "$dir: rounds.csv header: $(head -1 "$dir/rounds.csv")"
    local got want
    got=$(tail -n +2 "$dir/rounds.csv" | cut -d, -f1 | tr '\n' ' ')
    want=$(seq -s ' ' 1 "$rounds")
    [ "$got" = "$want " ] || t_fail "$dir: rounds.csv rounds are '$got', not '$want '"
    got=$(tail -n +2 "$dir/rounds.csv" | cut -d, -f2 | tr '\n' ' ')
    [ "$got" = "$phases " ] || t_fail "$dir: rounds.csv phases are '$got', not '$phases '"
    [ "$(grep -c '^round ' out.txt)" -eq "$rounds" ] ||
        t_fail "$dir: not one line per round on stdout: $(cat out.txt)"
    grep -q "^audit log verified with server.pub: intact" out.txt ||
        t_fail "$dir: no audit verdict: $(cat out.txt)"
    grep -Eq "^final fusion macro AUC [01]\.[0-9]{3} \(round $rounds\)$" out.txt ||
        t_fail "$dir: no final fusion AUC: $(cat out.txt)"
    "$fedlung" audit verify "$dir/audit.log" --key "$dir/server.pub" >verify.txt 2>&1 ||
        t_fail "$dir: audit verify: $(cat verify.txt)"
    [ -z "$(leftovers "$dir")" ] || t_fail "$dir: processes left behind: $(leftovers "$dir")"
}

# ---- the command line ----
t_expect 0 "--help" -- "$fedlung" simulate --help
grep -q "^usage: fedlung simulate" out.txt || t_fail "--help: $(head -3 out.txt)"
t_expect 2 "unknown option" -- "$fedlung" simulate --bogus
t_expect 2 "bad --hospitals" -- "$fedlung" simulate --hospitals 0
t_expect 2 "bad --partition" -- "$fedlung" simulate --partition sideways
t_expect 2 "--drop-client of no hospital" -- "$fedlung" simulate --hospitals 3 --drop-client 4@2
t_expect 2 "bad --straggler" -- "$fedlung" simulate --straggler 1
t_expect 2 "--cohort with synthetic options" -- "$fedlung" simulate --cohort c.h5 --patients 9
t_expect 2 "--plan with --rounds" -- "$fedlung" simulate --plan p.plan --rounds 3
t_expect 2 "every hospital dropped" -- "$fedlung" simulate --hospitals 2 --drop-client 1@2 \
    --drop-client 2@2
t_expect 1 "no such cohort" -- "$fedlung" simulate --out nocohort --cohort nope.h5
grep -q "nope.h5" err.txt || t_fail "no such cohort: $(cat err.txt)"
t_expect 2 "bad --standardize" -- "$fedlung" simulate --standardize global
t_expect 2 "--standardize federated with --dp" -- "$fedlung" simulate --dp patient \
    --epsilon-max 9 --standardize federated
grep -q "standardize federated is refused with --dp: the statistics phase's sums" err.txt ||
    t_fail "--standardize federated --dp: $(head -1 err.txt)"
t_expect 2 "--cohort, site standardization, no --plan" -- "$fedlung" simulate --cohort c.h5 \
    --dp client --epsilon-max 9
grep -q "needs --plan FILE naming the features" err.txt || t_fail "--cohort --dp: $(head -1 err.txt)"

# ---- a small federation ----
# 90 patients with 2 tiles of 32 px each, 64 genes and probes; the plan: statistics, one image
# round of a narrow ResNet-18, features, two fusion rounds.
cat >small.plan <<'PLAN'
[study]
id = simulate-test
classes = LUAD,LUSC,NORMAL
phases = statistics,image,features,fusion
[image]
arch = resnet18
stem = small
tile = 32
width = 0.25
rounds = 1
local_steps = 2
batch = 16
[fusion]
rounds = 2
epochs = 5
rna_features = 32
meth_features = 32
PLAN
phases="statistics image features fusion fusion"
small=(--hospitals 3 --patients 90 --tile 32 --tiles-per-patient 2 --genes 64 --probes 64
    --partition iid --plan small.plan --threads 2)
start=$(date +%s)
t_expect 0 "small federation" -- "$fedlung" simulate --out run "${small[@]}"
echo "check_simulate: the small federation took $(($(date +%s) - start)) s"
check_run run 5
[ "$(find run/hospitals -name cohort.h5 | wc -l)" -eq 3 ] || t_fail "not 3 hospital cohorts"
for k in 1 2 3; do
    grep -q "^approve = $(sha256sum small.plan | cut -d' ' -f1)$" \
        "run/hospitals/hospital-$k/client.conf" || t_fail "hospital-$k does not approve the plan"
done
"$fedlung" pki verify --ca run/pki --server run/pki/server.crt >/dev/null 2>&1 ||
    t_fail "the server certificate does not verify"

t_expect 1 "--standardize site, a federated --plan" -- "$fedlung" simulate --out std "${small[@]}" \
    --standardize site
grep -q "standardize site, but small.plan standardizes federated" err.txt ||
    t_fail "--standardize site --plan: $(tail -1 err.txt)"

# ---- the server killed during round 2 and restarted ----
# hospital-1 waits 3 s before each upload, so that round 2 lasts long enough to be interrupted
t_expect 0 "--kill-server-at 2" -- "$fedlung" simulate --out kill "${small[@]}" --kill-server-at 2 \
    --straggler 1:3
check_run kill 5
grep -q "fault: the server killed during round 2" err.txt || t_fail "no kill: $(cat err.txt)"
grep -q "restarting the server" err.txt || t_fail "no restart: $(cat err.txt)"
grep -q "^--- fedlung simulate: server killed" kill/server/server.log ||
    t_fail "no restart marker in the server's log"

# ---- privacy: --dp patient with a budget, --secagg ----
t_expect 2 "--update-clip without --dp patient --secagg" -- "$fedlung" simulate --dp client \
    --secagg --update-clip 5
grep -q "update-clip needs --dp patient and --secagg" err.txt || t_fail "--update-clip: $(head -1 err.txt)"
t_expect 2 "--dp client --secagg with too little noise" -- "$fedlung" simulate --dp client \
    --secagg --noise-multiplier 1e-9
grep -q "below 4" err.txt || t_fail "--dp client --secagg tiny noise: $(head -1 err.txt)"
printf '[study]\nid = p\nclasses = A,B\nphases = statistics,fusion\n[fusion]\nmodalities = rna\n\
rounds = 1\nepochs = 1\n[privacy]\nclip_norm = 1\n' >own-privacy.plan
t_expect 2 "--plan with its own [privacy] and --secagg" -- "$fedlung" simulate \
    --plan own-privacy.plan --secagg
grep -q "own-privacy.plan:10 has a \[privacy\] section of its own" err.txt ||
    t_fail "--plan [privacy] --secagg: $(head -1 err.txt)"
t_expect 2 "--eval-noise without --dp" -- "$fedlung" simulate --eval-noise 0
grep -q "eval-noise needs --dp" err.txt || t_fail "--eval-noise without --dp: $(head -1 err.txt)"
t_expect 2 "--dp patient without --epsilon-max" -- "$fedlung" simulate --dp patient
t_expect 2 "--sample-rate without --dp" -- "$fedlung" simulate --sample-rate 0.5
# three fusion rounds of ceil(epochs / q) = 4 DP-SGD steps at q = 0.25, sigma 1, each followed
# by a noised evaluation report (the plan's default eval_noise_multiplier 4: one Gaussian
# mechanism at q 1): eps_after K is the epsilon after K of both (delta 1e-5), 4.99, 6.47, 7.63.
# Under DP each hospital standardizes its own patients (no statistics round): the plan lists 16
# genes and the clinical columns, ranked by `fedlung plan features` on a public cohort of other
# patients (the generator's gene names do not depend on its seed)
eps_after() { "$fedlung" privacy epsilon --phase "0.25,1,$((4 * $1))" --phase "1,4,$1" --delta 1e-5; }
e1=$(eps_after 1)
e3=$(eps_after 3)
e3r=$(printf %.2f "$e3")
t_expect 0 "public cohort" -- "$fedlung" cohort synth --out public.h5 --patients 64 --sites 1 \
    --tile 0 --genes 64 --probes 64 --seed 7920
t_expect 0 "plan features" -- "$fedlung" plan features public.h5 --rna 16 --modalities rna,clinical \
    --out lists.plan
cat >dp.plan <<'PLAN'
[study]
id = simulate-dp
classes = LUAD,LUSC,NORMAL
phases = fusion
[fusion]
modalities = rna,clinical
rounds = 3
epochs = 1
optimizer = sgd
lr = 0.1
PLAN
grep -q "^meth_names" lists.plan && t_fail "plan features --modalities rna,clinical listed methylation"
cat lists.plan >>dp.plan
# ---- site standardization with the image modality (no DP): no statistics round, the features
# round's updates are empty acknowledgments, each hospital standardizes its embeddings itself ----
{
    sed -n '/^\[study\]/,/^\[fusion\]/p' small.plan | sed 's/^phases = .*/phases = image,features,fusion/'
    printf 'modalities = image,rna,clinical\nrounds = 1\nepochs = 5\n'
    cat lists.plan
} >siteimg.plan
phases="image features fusion"
t_expect 0 "site standardization with the image" -- "$fedlung" simulate --out siteimg \
    "${small[@]/small.plan/siteimg.plan}"
check_run siteimg 3
[ "$(grep -c '"kind":"update_accepted","round":2,.*"bytes":0,' siteimg/audit.log)" -eq 3 ] ||
    t_fail "site standardization: the features round's updates are not 3 empty ones: $(grep '"round":2' siteimg/audit.log | grep update_accepted)"
for k in 1 2 3; do
    h=siteimg/hospitals/hospital-$k
    [ "$(grep -c '"kind":"statistics"' $h/state/outbox.log)" -eq 1 ] &&
        grep -q '"kind":"statistics","round":2,.*"phase":"features".*"bytes":0,' $h/state/outbox.log ||
        t_fail "hospital-$k sent other statistics than one empty features update"
    grep -q "features: embedded patients .* and standardized here (site standardization)" \
        $h/client.log || t_fail "hospital-$k did not standardize its embeddings: $(grep features $h/client.log)"
done

dp=(--hospitals 3 --patients 90 --tile 0 --genes 64 --probes 64 --partition iid --plan dp.plan
    --threads 2)
# the demo's own plan under --dp (and --secagg): no statistics round, its feature lists ranked on
# DIR/public.h5 (whose probes must be the hospitals' for their cohorts to have every listed one)
t_expect 0 "--dp patient --secagg, the demo plan" -- "$fedlung" simulate --out dpdemo \
    --hospitals 2 --patients 60 --tile 0 --genes 64 --probes 64 --partition iid --rounds 1 \
    --threads 2 --dp patient --epsilon-max 100 --secagg
[ -s dpdemo/public.h5 ] || t_fail "--dp, the demo plan: no public.h5"
grep -Eq "^round 1 +fusion +2 hospitals" out.txt || t_fail "--dp, the demo plan: $(cat out.txt)"
[ "$(grep -c '"kind":"secagg_unmasked"' dpdemo/audit.log)" -eq 1 ] ||
    t_fail "--dp, the demo plan: not 1 unmasked sum in the audit log"
grep -q "^phases = fusion$" dpdemo/study.plan && grep -q "^standardize = site$" dpdemo/study.plan &&
    grep -q "^rna_names = " dpdemo/study.plan && grep -q "^meth_names = cg" dpdemo/study.plan &&
    grep -q "^clinical_names = age, male, never_smoker, pack_years$" dpdemo/study.plan ||
    t_fail "--dp, the demo plan: $(cat dpdemo/study.plan)"
[ -z "$(leftovers dpdemo)" ] || t_fail "--dp, the demo plan: processes left behind: $(leftovers dpdemo)"
t_expect 0 "--dp patient" -- "$fedlung" simulate --out dp "${dp[@]}" --dp patient \
    --sample-rate 0.25 --epsilon-max 100
for f in privacy.csv epsilon.png rounds.csv; do [ -s "dp/$f" ] || t_fail "--dp: no $f"; done
grep -q "^mechanism = dp-sgd$" dp/study.plan || t_fail "--dp: the plan has no dp-sgd"
grep -q "^epsilon_max = 100$" dp/hospitals/hospital-2/client.conf || t_fail "--dp: no epsilon_max"
grep -Fq " ε 1:$e3r 2:$e3r 3:$e3r" out.txt && grep -Eq "^round 3 +fusion .* ε 1:$e3r" out.txt ||
    t_fail "--dp: not ε $e3r: $(cat out.txt)"
head -1 dp/rounds.csv | grep -q "^round,phase,participants,loss,macro_auc,auc_LUAD,auc_LUSC,auc_NORMAL$" ||
    t_fail "--dp: rounds.csv header changed: $(head -1 dp/rounds.csv)"
# a row per hospital per fusion round, each hospital's epsilon rising
awk -F, 'NR > 1 { n[$3]++; if ($4 + 0 <= last[$3] + 0) bad = bad " " $1 ":" $3; last[$3] = $4 }
    END { for (h in n) if (n[h] != 3) bad = bad " " h "x" n[h]; if (length(n) != 3) bad = bad " hospitals"
          if (bad) { print bad; exit 1 } }' dp/privacy.csv >awk.txt ||
    t_fail "--dp: privacy.csv:$(cat awk.txt): $(cat dp/privacy.csv)"
grep -q "^3,fusion,hospital-3,${e3:0:5}" dp/privacy.csv || t_fail "--dp: not $e3: $(cat dp/privacy.csv)"
# every evaluation report left noised and charged; the server kept no site metric
E3=$e3 /usr/bin/python3 - <<'PY' || t_fail "--dp: noised evaluation (outboxes, ledgers, audit.log)"
import csv, json, os, sys
e3 = float(os.environ["E3"])
wrong = []  # what is not as it should be
for k in (1, 2, 3):
    h = "dp/hospitals/hospital-%d/state/" % k
    out = [json.loads(l) for l in open(h + "outbox.log")]
    ev = [r["data"] for r in out if r["kind"] == "eval"]
    if len(ev) != 3 or not all(d.get("noised") is True and d.get("noise_multiplier") == 4 and
                               d.get("steps") == 1 and d.get("sample_rate") == 1 and
                               "examples" not in d for d in ev):
        wrong.append("hospital-%d eval records %r" % (k, ev))
    last = max(out, key=lambda r: r["round"] * 2 + (r["kind"] == "eval"))
    if last["kind"] != "eval" or abs(last["data"]["epsilon_total"] - e3) > 1e-9 * e3:
        wrong.append("hospital-%d's last epsilon_total %r, `fedlung privacy` composes %r" %
                     (k, last["data"].get("epsilon_total"), e3))
    lines = [l for l in open(h + "privacy.state") if l.startswith("round=")]
    if len(lines) != 6 or sum(l.rstrip().endswith(" eval") for l in lines) != 3:
        wrong.append("hospital-%d privacy.state %r" % (k, lines))
audit = [json.loads(l) for l in open("dp/audit.log")]
ev = [r["data"] for r in audit if r["kind"] == "evaluation"]
if len(ev) != 9 or not all(d.get("noised") is True and d.get("noise_multiplier") == 4 and
                           "macro_auc" not in d and "patients" not in d for d in ev):
    wrong.append("server evaluation records %r" % ev)
rows = [r for r in csv.DictReader(open("dp/rounds.csv")) if r["phase"] == "fusion"]
if len(rows) != 3 or not all(0 <= float(r["macro_auc"]) <= 1 for r in rows):
    wrong.append("rounds.csv: the noised histograms' macro AUC %r" % [r["macro_auc"] for r in rows])
for w in wrong:
    print("FAIL check_simulate: --dp: " + w, file=sys.stderr)
sys.exit(1 if wrong else 0)
PY
[ -z "$(leftovers dp)" ] || t_fail "--dp: processes left behind: $(leftovers dp)"
# epsilon_max 4.9 allows the first fusion round's training (4.87) but not its evaluation report
# (4.99): every hospital refuses the evaluation of round 1 (the round commits with none), then
# the second fusion round; the server retries it and stops the study (exit 1 here)
e1t=$("$fedlung" privacy epsilon --sample-rate 0.25 --noise-multiplier 1 --steps 4 --delta 1e-5)
awk -v t="$e1t" -v e="$e1" 'BEGIN { exit !(t <= 4.9 && e > 4.9) }' ||
    t_fail "the first fusion round spends $e1t, with its evaluation $e1: 4.9 is not between"
t_expect 1 "--dp patient, a small budget" -- "$fedlung" simulate --out dp5 "${dp[@]}" --dp patient \
    --sample-rate 0.25 --epsilon-max 4.9 --round-timeout 4
e1r=$(awk -v a="$e1" -v b="$e1t" 'BEGIN { printf "%.2f", a - b }')
grep -q "refused: the evaluation of round 1 would spend ε $e1r, total" dp5/hospitals/hospital-1/client.log ||
    t_fail "--epsilon-max 4.9: hospital-1 did not refuse the evaluation: $(grep refused dp5/hospitals/hospital-1/client.log)"
grep -q "refused: round 2 would spend" dp5/hospitals/hospital-1/client.log ||
    t_fail "--epsilon-max 4.9: hospital-1 did not refuse: $(tail -3 dp5/hospitals/hospital-1/client.log)"
[ "$(grep '"kind":"refused"' dp5/server/state/audit.log | grep -c '"task":"eval"')" -eq 3 ] ||
    t_fail "--epsilon-max 4.9: not 3 refused evaluations in the audit log"
grep -q '"kind":"refused".*"task":"eval"' dp5/hospitals/hospital-2/state/outbox.log ||
    t_fail "--epsilon-max 4.9: hospital-2's outbox has no refused evaluation"
grep -q '"kind":"evaluation"' dp5/server/state/audit.log && t_fail "--epsilon-max 4.9: an evaluation was sent"
awk -F, '$1 == 1 && $5 != "" { exit 1 }' dp5/server/state/rounds.csv ||
    t_fail "--epsilon-max 4.9: round 1 has a macro AUC: $(cat dp5/server/state/rounds.csv)"
grep -q "too few hospitals" err.txt || t_fail "--epsilon-max 4.9: $(tail -2 err.txt)"
[ "$(tail -n +2 dp5/privacy.csv | wc -l)" -eq 3 ] || t_fail "--epsilon-max 4.9: $(cat dp5/privacy.csv)"
[ -z "$(leftovers dp5)" ] || t_fail "--epsilon-max 4.9: processes left behind: $(leftovers dp5)"
# ---- --dp client --adaptive-clip: C from 5 (update norms are about 0.3) shrinks each round;
# the server killed during round 2 resumes with round 1's next C ----
t_expect 2 "--adaptive-clip without --dp client" -- "$fedlung" simulate --adaptive-clip
grep -q "need --dp client" err.txt || t_fail "--adaptive-clip alone: $(head -1 err.txt)"
t_expect 2 "--dp client without --epsilon-max" -- "$fedlung" simulate --dp client
grep -q "dp client needs --epsilon-max" err.txt || t_fail "--dp client: $(head -1 err.txt)"
t_expect 2 "--adaptive-clip, default bit noise" -- "$fedlung" simulate --dp client --adaptive-clip \
    --epsilon-max 9
grep -q "adaptive_clip needs clip_bit_noise above noise_multiplier / 2" err.txt ||
    t_fail "--adaptive-clip, sigma 1: $(head -1 err.txt)"
t_expect 0 "--dp client --adaptive-clip" -- "$fedlung" simulate --out ada "${dp[@]}" --dp client \
    --adaptive-clip --noise-multiplier 0.2 --clip-norm 5 --epsilon-max 1000 --kill-server-at 2 \
    --straggler 1:2
grep -q "^adaptive_clip = true$" ada/study.plan || t_fail "--adaptive-clip: the plan has none"
grep -q "restarting the server" err.txt || t_fail "--adaptive-clip: no restart: $(cat err.txt)"
grep -Eq "^round 2 +fusion .*  C 4\.[5-7][0-9]*  ε 1:" out.txt ||
    t_fail "--adaptive-clip: $(cat out.txt)"
/usr/bin/python3 - <<'PY' || t_fail "--adaptive-clip: rounds.csv, privacy.csv, audit.log"
import csv, json, sys
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL check_simulate: --adaptive-clip: " + what, file=sys.stderr)
        bad += 1
rows = [r for r in csv.DictReader(open("ada/rounds.csv")) if r["phase"] == "fusion"]
cs = [float(r["clip_norm"]) for r in rows]
check(len(cs) == 3 and cs[0] == 5 and cs[0] > cs[1] > cs[2], "rounds.csv clip norms %r" % cs)
priv = list(csv.DictReader(open("ada/privacy.csv")))
check(len(priv) == 9 and all(float(p["clip_norm"]) == cs[int(p["round"]) - 1] for p in priv),
      "privacy.csv %r" % priv)
audit = [json.loads(l) for l in open("ada/audit.log")]
dp = {r["round"]: r["data"] for r in audit if r["kind"] == "dp_round"}
resume = [r["data"] for r in audit if r["kind"] == "resume"]
check(len(resume) == 1 and resume[0].get("clip_norm") == dp[1]["clip_next"] == dp[2]["clip_norm"],
      "resumed with C %r, round 1's next C %r, round 2's C %r" %
      (resume and resume[0].get("clip_norm"), dp[1]["clip_next"], dp[2]["clip_norm"]))
sys.exit(1 if bad else 0)
PY
[ -z "$(leftovers ada)" ] || t_fail "--adaptive-clip: processes left behind: $(leftovers ada)"
t_expect 0 "--secagg" -- "$fedlung" simulate --out secagg "${dp[@]}" --secagg
grep -q "^secagg = true$" secagg/study.plan || t_fail "--secagg: the plan has no secagg"
[ "$(grep -c '"kind":"secagg_unmasked"' secagg/audit.log)" -eq 3 ] ||
    t_fail "--secagg: not 3 unmasked sums in the audit log"
[ -e secagg/privacy.csv ] && t_fail "--secagg: a privacy.csv without DP"
[ -z "$(leftovers secagg)" ] || t_fail "--secagg: processes left behind: $(leftovers secagg)"
# DP-SGD under secure aggregation: the same epsilon as without it, the updates masked
t_expect 0 "--dp patient --secagg" -- "$fedlung" simulate --out dpsa "${dp[@]}" --dp patient \
    --sample-rate 0.25 --epsilon-max 100 --secagg --update-clip 50
grep -q "^update_clip = 50$" dpsa/study.plan || t_fail "--dp patient --secagg: no update_clip"
[ "$(grep -c '"kind":"secagg_unmasked"' dpsa/audit.log)" -eq 3 ] ||
    t_fail "--dp patient --secagg: not 3 unmasked sums in the audit log"
grep -Eq "^round 3 +fusion .* ε 1:$e3r 2:$e3r 3:$e3r$" out.txt ||
    t_fail "--dp patient --secagg: $(cat out.txt)"
[ -z "$(leftovers dpsa)" ] || t_fail "--dp patient --secagg: processes left behind: $(leftovers dpsa)"

# ---- Ctrl-C: the children are stopped, exit 1 ----
"$fedlung" simulate --out int "${small[@]}" --straggler 2:5 >int.out 2>int.err &
sim_pid=$!
for _ in $(seq 100); do
    [ -s int/hospitals/hospital-3/client.log ] && break
    sleep 0.2
done
sleep 1
kill -INT "$sim_pid"
rc=0
wait "$sim_pid" || rc=$?
sim_pid=
[ "$rc" -eq 1 ] || t_fail "SIGINT: exit $rc, not 1: $(tail -3 int.err)"
grep -q "interrupted" int.err || t_fail "SIGINT: $(tail -3 int.err)"
[ -z "$(leftovers int)" ] || t_fail "SIGINT: processes left behind: $(leftovers int)"

t_summary check_simulate
