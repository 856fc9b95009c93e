#!/usr/bin/env bash
# check_audit_report.sh - `fedlung audit report` and `fedlung audit verify --inclusion` on the
# logs of a real study: a server and three hospitals on 127.0.0.1 over mutual TLS train with
# DP-SGD, hospital-3 with an epsilon_max that makes it refuse the last round. The report must be
# one self-contained HTML file with no URL in it, and, rendered by headless Chromium, show each
# hospital's epsilon exactly as its outbox log has it (a screenshot is kept). Every record of
# each outbox log that the server should have logged is proved included in the server log.
# An edited, removed, reordered or appended-by-someone-else record of an outbox log is caught by
# verify, shown by the report, and (appended) by --inclusion.
# Usage (ctest, from tests/): bash check_audit_report.sh /path/to/fedlung
set -uo pipefail
fedlung=$(realpath "${1:?usage: check_audit_report.sh /path/to/fedlung}")
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work" || exit 1
t_fail_prefix="FAIL check_audit_report: "
t_expect_timeout=60
pids=()
t_on_exit 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done'
chromium=/usr/bin/chromium
[ -x "$chromium" ] ||
  t_fail "$chromium is not installed: run scripts/install-deps (Debian package chromium)"

# ---- a DP study, standardized at each site (no statistics phase): rounds 1-3 (fusion); each
# round spends 4 steps at q = 0.25, sigma = 1 (epsilon 4.87, 6.25, 7.33 after 1, 2, 3 rounds):
# with epsilon_max 7, hospital-3 refuses round 3 ----
t_federation_data "$fedlung" 3 --patients 90 --tile 0 \
    --genes 64 --probes 64 --no-missing --seed 3
# ini FILE ARG...: an INI file; an ARG "[name]" starts a section, KEY=VALUE is "KEY = VALUE"
ini() {
  local f=$1 a
  shift
  for a in "$@"; do
    case $a in "["*) printf '%s\n' "$a" ;; *) printf '%s = %s\n' "${a%%=*}" "${a#*=}" ;; esac
  done >"$f"
}
ini study.plan "[study]" id=audit-report classes=LUAD,LUSC,NORMAL phases=fusion \
  "[fusion]" modalities=rna,clinical \
  "rna_names=NKX2-1, NAPSA, SFTA2, SFTA3, TMC5, CEACAM6, KRT7, MUC1" \
  "rna_names=KRT5, KRT6A, KRT6B, TP63, SOX2, DSG3, CALML3, PKP1" \
  "clinical_names=age, male, never_smoker, pack_years" rounds=3 epochs=1 optimizer=sgd lr=0.1 \
  "[privacy]" mechanism=dp-sgd clip_norm=1 noise_multiplier=1 sample_rate=0.25
hash=$(sha256sum study.plan | cut -d' ' -f1)
port=$(t_free_port)
ini server.conf "[server]" listen=127.0.0.1:$port study=audit-report state_dir=state \
  plan=study.plan audit_key=keys/server.key min_clients=2 round_timeout_s=30 \
  "[tls]" ca=pki/ca.crt cert=pki/fl-server.crt key=pki/fl-server.key \
  "[clients]" "allow=hospital-1, hospital-2, hospital-3"
eps_max=("" 100 100 7)
for k in 1 2 3; do
  ini h$k.conf "[client]" server=127.0.0.1:$port study=audit-report name=hospital-$k \
    state_dir=h$k approve=$hash threads=1 \
    "[tls]" ca=pki/ca.crt cert=pki/hospital-$k.crt key=pki/hospital-$k.key \
    "[data]" cohort=parts/part-$k.h5 "[privacy]" epsilon_max=${eps_max[$k]} delta=1e-5
done
t_start_server "$fedlung" server.conf || exit 1
# hospital-3, then hospital-1, so that both are in from the first round (it starts with two
# hospitals; hospital-2 joins during it and takes part from a later round)
for k in 3 1 2; do
  OMP_WAIT_POLICY=PASSIVE timeout 60 "$fedlung" client --config h$k.conf 2>h$k.log &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "JOIN hospital-$k" server.log && break
    sleep 0.1
  done
done
for p in "${pids[@]}"; do
  wait "$p" || t_fail "a client exited $?: $(tail -3 h*.log)"
done
pids=()
if timeout 60 tail --pid="$t_server_pid" -f /dev/null; then
  wait "$t_server_pid" || t_fail "the server exited $?: $(tail -5 server.log)"
fi
t_server_pid=
grep -q '"kind":"refused","round":3,"actor":"hospital-3"' h3/outbox.log ||
  t_fail "hospital-3 did not refuse round 3: $(grep -i refused h3.log)"

outboxes=()
for k in 1 2 3; do outboxes+=(--outbox h$k/outbox.log --outbox-key h$k/outbox.pub); done

# ---- verify --inclusion ----
t_expect 2 "--inclusion without --outbox-key" -- "$fedlung" audit verify state/audit.log \
  --key keys/server.pub --inclusion h1/outbox.log
t_expect 2 "--outbox with verify" -- "$fedlung" audit verify state/audit.log \
  --key keys/server.pub --outbox h1/outbox.log --outbox-key h1/outbox.pub
for k in 1 2 3; do
  t_expect 0 "verify --inclusion h$k" -- "$fedlung" audit verify state/audit.log \
    --key keys/server.pub --inclusion h$k/outbox.log --outbox-key h$k/outbox.pub
  n=$(grep -c '"sha256":' h$k/outbox.log) # updates and evaluations (no statistics under DP)
  r=$(grep -c '"kind":"refused"' h$k/outbox.log)
  grep -q "^h$k/outbox.log: $((n + r)) of $((n + r)) records .* are included" out.txt ||
    t_fail "verify --inclusion h$k: $(tail -1 out.txt)"
  [ "$(grep -c ": included: state/audit.log line [0-9]*, leaf .* proof of [0-9]* hash.* verified$" \
    out.txt)" -eq $((n + r)) ] || t_fail "verify --inclusion h$k lines: $(cat out.txt)"
done
grep -q "line [0-9]* refused round 3 (hospital-3): included" out.txt ||
  t_fail "hospital-3's refusal is not matched in the server log: $(cat out.txt)"

# ---- the report ----
t_expect 2 "report without --out" -- "$fedlung" audit report state/audit.log --key keys/server.pub
t_expect 2 "report with an outbox log but no key" -- "$fedlung" audit report state/audit.log \
  --key keys/server.pub --out x.html --outbox h1/outbox.log
t_expect 0 "report" -- "$fedlung" audit report state/audit.log --key keys/server.pub \
  --out report.html "${outboxes[@]}"
grep -q "report.html: 3 rounds, 3 hospitals; every log intact" out.txt || t_fail "report: $(cat out.txt)"
ls report.html.tmp* >/dev/null 2>&1 && t_fail "report left a temporary file"
grep -qiE "https?:|//|src=|href|url\(|@import|<script|<link|<img|<iframe" report.html &&
  t_fail "the report has a URL or a loaded resource: $(grep -oiE ".{30}(https?:|//|src=|href|url\(|@import|<script|<link|<img|<iframe).{30}" report.html | head -3)"
grep -q "<svg" report.html || t_fail "the report has no inline SVG chart"
[ "$(grep -c 'data-status="intact"' report.html)" -eq 4 ] || t_fail "not 4 logs shown intact"

# expected.txt: "hospital epsilon" from each outbox log: the epsilon_total of its last update,
# as written (a refusal's is what the round would have brought, not what was spent)
$py - h1/outbox.log h2/outbox.log h3/outbox.log >expected.txt <<'PY' || t_fail "expected epsilons"
import json, re, sys
for path in sys.argv[1:]:
    last = None
    for line in open(path):
        r = json.loads(line)
        m = re.search(r'"epsilon_total":([^,}]+)', line)
        if m and r["kind"] != "refused":
            last = (r["actor"], m.group(1))
    print("%s %s" % last)
PY
[ "$(wc -l <expected.txt)" -eq 3 ] || t_fail "expected.txt: $(cat expected.txt)"
# the epsilons in the HTML as written (the browser check below is the one that counts)
grep -q "data-epsilon=\"$(sed -n 3p expected.txt | cut -d' ' -f2)\"" report.html ||
  t_fail "hospital-3's epsilon is not in report.html: $(grep -o 'data-epsilon="[^"]*"' report.html)"

# ---- rendered by Chromium ----
chrome() {
  timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$work/chrome" \
    --no-first-run --disable-extensions "$@" 2>>chromium.log
}
if [ -x "$chromium" ]; then
  chrome --dump-dom "file://$work/report.html" >dom.html || t_fail "chromium --dump-dom failed: $(tail -3 chromium.log)"
  $py - dom.html expected.txt <<'PY' || t_fail "the rendered epsilons differ from the outbox logs"
import sys
from html.parser import HTMLParser

class Cells(HTMLParser):  # the text of each element with data-hospital and data-epsilon
    def __init__(self):
        super().__init__()
        self.cells, self.open = [], None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-hospital" in a and "data-epsilon" in a:
            self.open = [a["data-hospital"], a["data-epsilon"], ""]
    def handle_data(self, data):
        if self.open:
            self.open[2] += data
    def handle_endtag(self, tag):
        if self.open:
            self.cells.append(self.open)
            self.open = None

p = Cells()
p.feed(open(sys.argv[1]).read())
got = {h: (e, text) for h, e, text in p.cells}
bad = 0
for line in open(sys.argv[2]):
    h, eps = line.split()
    e, text = got.get(h, (None, None))
    print("%s: outbox log %s, rendered %r (data-epsilon %r)" % (h, eps, text, e))
    if e != eps or text != eps:
        print("FAIL check_audit_report: %s's rendered epsilon is not its outbox log's" % h,
              file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
  grep -q "refused: round 3 would spend ε" dom.html || t_fail "the rendered page lacks the refusal"
  chrome --screenshot="$work/report.png" --window-size=1200,1600 "file://$work/report.html" \
    >/dev/null || t_fail "chromium --screenshot failed: $(tail -3 chromium.log)"
  if [ "$(head -c 8 report.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
    [ "$(stat -c %s report.png)" -gt 20000 ]; then
    shot="$(dirname "$fedlung")/check_audit_report.png"
    cp report.png "$shot" && echo "check_audit_report: screenshot $shot"
  else
    t_fail "report.png is not a PNG of a rendered page ($(stat -c %s report.png 2>&1))"
  fi
fi

# ---- a tampered outbox log ----
# mallory.key: someone else's key; outbox.N.log: hospital-1's outbox log, tampered
t_expect 0 "keygen mallory" -- "$fedlung" audit keygen --out keys --name mallory
$py - h1/outbox.log keys/mallory.pub <<'PY' || t_fail "could not tamper with the outbox log"
import base64, hashlib, re, sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
der = base64.b64decode("".join(l for l in open(sys.argv[2]) if "-----" not in l))
mallory = hashlib.sha256(der[-32:]).hexdigest()
up = next(i for i, l in enumerate(lines) if '"kind":"update"' in l)  # 0-based
def save(name, ls):
    open(name, "w").write("".join(l + "\n" for l in ls))
def chained(ls, r):  # r as the record after ls, in the log's canonical form
    line = ('{"seq":%d,"time":"%s","kind":"%s","round":%d,"actor":"%s","data":%s,"prev":"%s"'
            % (len(ls) + 1, r["time"], r["kind"], r["round"], r["actor"], r["data"],
               hashlib.sha256(ls[-1].encode()).hexdigest()))
    return line + (',"sig":"%s"}' % r["sig"] if "sig" in r else "}")
edited = list(lines)
edited[up] = re.sub(r'"epsilon_total":[^,}]+', '"epsilon_total":0.5', edited[up])
save("outbox.edited.log", edited)
save("outbox.removed.log", lines[:up] + lines[up + 1:])
save("outbox.reordered.log", lines[:up] + [lines[up + 1], lines[up]] + lines[up + 2:])
# someone else appends an update that claims a tiny epsilon after the last checkpoint...
fake = {"time": "2030-01-01T00:00:00Z", "kind": "update", "round": 9, "actor": "hospital-1",
        "data": '{"phase":"fusion","model_version":9,"bytes":1,"sha256":"%s","clip_norm":1,'
                '"noise_multiplier":1,"epsilon_round":0.01,"epsilon_total":0.01}' % ("ab" * 32)}
appended = lines + [chained(lines, fake)]
save("outbox.appended.log", appended)
# ... and a checkpoint over it signed with another key
cp = {"time": "2030-01-01T00:00:00Z", "kind": "checkpoint", "round": 9, "actor": "audit",
      "data": '{"from":%d,"to":%d,"count":1,"merkle_root":"%s","key_id":"%s"}'
              % (len(lines) + 1, len(lines) + 1, "cd" * 32, mallory), "sig": "ef" * 64}
save("outbox.foreign.log", appended + [chained(appended, cp)])
PY
up=$(grep -n '"kind":"update"' h1/outbox.log | head -1 | cut -d: -f1)
n=$(wc -l <h1/outbox.log)
want_eps=$(sed -n 1p expected.txt | cut -d' ' -f2)
# tamper CASE LINE MESSAGE: verify and the report say where it broke
tamper() {
  t_expect 1 "verify an outbox log with $1" -- "$fedlung" audit verify outbox.$1.log \
    --key h1/outbox.pub
  grep -q "BROKEN at line $2: .*$3" out.txt || t_fail "verify, $1: $(cat out.txt)"
  t_expect 1 "report with $1" -- "$fedlung" audit report state/audit.log --key keys/server.pub \
    --out $1.html --outbox outbox.$1.log --outbox-key h1/outbox.pub
  grep -q "WARNING: a log fails verification" out.txt || t_fail "report, $1: $(cat out.txt)"
  grep -q "data-log=\"1\" data-status=\"broken\" class=\"bad\">BROKEN at line $2:" $1.html ||
    t_fail "the report does not show the $1 outbox log broken at line $2"
}
tamper edited $((up + 1)) "line $up was altered"
tamper removed "$up" "a record was removed, inserted or reordered"
tamper reordered "$up" "a record was removed, inserted or reordered"
tamper foreign $((n + 2)) "signed by key id"
# the appended record without a checkpoint: chained but unsigned, so never believed
t_expect 0 "verify an outbox log with an appended record" -- "$fedlung" audit verify \
  outbox.appended.log --key h1/outbox.pub
grep -q "WARNING: line $((n + 1)) is not signed yet" out.txt || t_fail "appended: $(cat out.txt)"
t_expect 1 "... --strict" -- "$fedlung" audit verify outbox.appended.log --key h1/outbox.pub --strict
t_expect 1 "... --inclusion" -- "$fedlung" audit verify state/audit.log --key keys/server.pub \
  --inclusion outbox.appended.log --outbox-key h1/outbox.pub
grep -q "line $((n + 1)) update round 9 (hospital-1): MISSING: state/audit.log has no \"update_accepted\" record of hospital-1 with sha256 abab" \
  out.txt || t_fail "--inclusion does not report the appended update missing: $(cat out.txt)"
t_expect 1 "report with an appended record" -- "$fedlung" audit report state/audit.log \
  --key keys/server.pub --out appended.html --outbox outbox.appended.log --outbox-key h1/outbox.pub
grep -q "1 record after the last checkpoint, not signed yet: not shown" appended.html ||
  t_fail "the report does not say that the appended record is left out"
grep -q "data-hospital=\"hospital-1\" data-epsilon=\"$want_eps\"" appended.html ||
  t_fail "the appended record changed hospital-1's epsilon: $(grep -o 'data-epsilon="[^"]*"' appended.html)"
t_expect 1 "report with the wrong outbox key" -- "$fedlung" audit report state/audit.log \
  --key keys/server.pub --out wrong.html --outbox h1/outbox.log --outbox-key h2/outbox.pub
grep -q "data-status=\"broken\" class=\"bad\">BROKEN at line 1: .*wrong public key" wrong.html ||
  t_fail "the report does not show the wrong key"

t_summary check_audit_report
