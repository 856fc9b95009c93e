#!/usr/bin/env bash
# check_audit_cli.sh - `fedlung audit keygen|verify|show` from the command line: key files and
# their modes, exit codes (0 intact, 1 broken, 2 bad usage), the one-line verdict, the table.
# The log is written here by an independent implementation of docs/audit.md (Python's hashlib
# + `openssl pkeyutl` for Ed25519), so this also checks that the documented format is the one
# fedlung verifies.
set -uo pipefail
fedlung=${1:?usage: check_audit_cli.sh /path/to/fedlung}
py=/usr/bin/python3
source "$(dirname "$0")/lib.sh"
t_workdir
cd "$work"
has() { grep -q -- "$2" "$1" || t_fail "$3: no \"$2\" in $(head -c 400 "$1")"; }

# ---- keygen ----
t_expect 2 "keygen without --out" -- "$fedlung" audit keygen
t_expect 2 "keygen with a bad name" -- "$fedlung" audit keygen --out keys --name ../x
t_expect 0 "keygen" -- "$fedlung" audit keygen --out keys
has out.txt "key id" "keygen prints the key id"
[ "$(stat -c %a keys/server.key)" = 600 ] || t_fail "server.key is not mode 0600"
grep -q "BEGIN PRIVATE KEY" keys/server.key || t_fail "server.key is no PEM private key"
grep -q "BEGIN PUBLIC KEY" keys/server.pub || t_fail "server.pub is no PEM public key"
cp keys/server.key first.key
t_expect 1 "keygen over an existing key" -- "$fedlung" audit keygen --out keys
has err.txt "keys/server.key" "the refusal names the key"
cmp -s keys/server.key first.key || t_fail "a refused keygen changed the key"
t_expect 0 "keygen --force" -- "$fedlung" audit keygen --out keys --force
cmp -s keys/server.key first.key && t_fail "keygen --force kept the old key"
t_expect 0 "keygen --name" -- "$fedlung" audit keygen --out keys --name hospital_a
[ -f keys/hospital_a.key ] && [ -f keys/hospital_a.pub ] || t_fail "no hospital_a key pair"

# ---- a log written from the documentation ----
$py - keys/server.key keys/server.pub <<'PY' || { t_fail "could not write the logs"; exit 1; }
import base64, hashlib, json, os, subprocess, sys

key, pub = sys.argv[1], sys.argv[2]
der = base64.b64decode("".join(l for l in open(pub).read().split("\n") if l and "-----" not in l))
key_id = hashlib.sha256(der[-32:]).hexdigest()  # raw Ed25519 key: the last 32 bytes of the SPKI

def s(x):  # the log's string escaping for the plain ASCII used here
    return json.dumps(x, ensure_ascii=False)

def line(r, with_sig=True):
    t = ('{"seq":%d,"time":%s,"kind":%s,"round":%d,"actor":%s,"data":%s,"prev":"%s"'
         % (r["seq"], s(r["time"]), s(r["kind"]), r["round"], s(r["actor"]), r["data"], r["prev"]))
    if with_sig and "sig" in r:
        t += ',"sig":"%s"' % r["sig"]
    return t + "}"

def mth(leaves):  # RFC 6962
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

lines, leaves, last_cp = [], [], 0

def add(kind, rnd, actor, data):
    prev = hashlib.sha256(lines[-1].encode()).hexdigest() if lines else "0" * 64
    r = {"seq": len(lines) + 1, "time": "2025-03-0%dT10:00:00Z" % (1 + len(lines) % 9),
         "kind": kind, "round": rnd, "actor": actor, "data": data, "prev": prev}
    if kind == "checkpoint":
        global last_cp
        root = mth(leaves).hex()
        r["data"] = ('{"from":%d,"to":%d,"count":%d,"merkle_root":"%s","key_id":"%s"}'
                     % (last_cp + 1, r["seq"] - 1, r["seq"] - 1 - last_cp, root, key_id))
        open("msg.bin", "wb").write(b"fedlung-audit/1 checkpoint\n" + line(r, False).encode())
        subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", "msg.bin",
                        "-out", "sig.bin"], check=True)
        r["sig"] = open("sig.bin", "rb").read().hex()
        last_cp = r["seq"]
        leaves.clear()
    else:
        leaves.append(hashlib.sha256(b"\x00" + line(r).encode()).digest())
    lines.append(line(r))

h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
add("log_created", -1, "audit", '{"format":"fedlung-audit/1","key_id":"%s"}' % key_id)
add("join", -1, "hospital_a", '{"cn":"hospital_a"}')
add("join", -1, "hospital_b", '{"cn":"hospital_b"}')
for rnd in (1, 2):
    add("task", rnd, "server", '{"clients":2}')
    add("update_accepted", rnd, "hospital_a", '{"sha256":"%s","clip":1.0,"sigma":0.8}' % h)
    add("update_rejected", rnd, "hospital_b", '{"reason":"stale round"}')
    add("aggregate", rnd, "server", '{"sha256":"%s"}' % h)
    add("checkpoint", rnd, "audit", None)
add("evaluation", 2, "server", '{"auc":0.91}')  # line 14, after the last checkpoint

def save(name, ls, tail="\n"):
    open(name, "w").write("\n".join(ls) + tail)

save("log.audit", lines)
edited = list(lines); edited[4] = edited[4].replace('"clip":1.0', '"clip":9.0'); save("edit.audit", edited)
save("delete.audit", lines[:3] + lines[4:])
swapped = list(lines); swapped[4], swapped[5] = swapped[5], swapped[4]; save("swap.audit", swapped)
save("torn.audit", lines[:-1] + [lines[-1][:30]], tail="")
# Someone without the key appends a well-chained record after the last checkpoint...
forged = {"seq": 15, "time": "2025-03-09T10:00:00Z", "kind": "update_accepted", "round": 2,
          "actor": "hospital_b", "data": '{"sha256":"%s"}' % h,
          "prev": hashlib.sha256(lines[-1].encode()).hexdigest()}
save("appended.audit", lines + [line(forged)])
# ... and a checkpoint over it with a made-up signature.
fcp = {"seq": 16, "time": "2025-03-09T10:00:00Z", "kind": "checkpoint", "round": 2,
       "actor": "audit",
       "data": '{"from":14,"to":15,"count":2,"merkle_root":"%s","key_id":"%s"}' % ("ab" * 32, key_id),
       "prev": hashlib.sha256(line(forged).encode()).hexdigest(), "sig": "cd" * 64}
save("forged_cp.audit", lines + [line(forged), line(fcp)])
# A log whose strings try to inject HTML into `fedlung audit report`.
lines, leaves, last_cp = [], [], 0
evil = "<script>alert(1)</script>"
add("log_created", -1, "audit", '{"format":"fedlung-audit/1","key_id":"%s"}' % key_id)
add("server_start", -1, "server", '{"listen":"127.0.0.1:1","plan_sha256":"%s"}' % h)
add("join", 1, evil, '{"patients":3}')
add("refused", 1, evil, '{"refused_round":1,"reason":"<img src=x onerror=alert(2)> & \\"q\\""}')
add("round_committed", 1, "server", '{"phase":"fusion\'><b>","participants":1,"macro_auc":-1}')
add("checkpoint", 1, "audit", None)
save("inject.audit", lines)
PY

# ---- verify ----
t_expect 2 "verify without --key" -- "$fedlung" audit verify log.audit
t_expect 2 "verify without a log" -- "$fedlung" audit verify --key keys/server.pub
t_expect 0 "verify an intact log" -- "$fedlung" audit verify log.audit --key keys/server.pub
has out.txt "intact: 14 records, 2 signed checkpoints" "verify's verdict"
has out.txt "line 14 is not signed yet" "verify warns about the unsigned tail"
[ "$(wc -l <out.txt)" -eq 1 ] || t_fail "verify printed more than one line"
t_expect 1 "verify --strict with an unsigned tail" -- "$fedlung" audit verify log.audit \
  --key keys/server.pub --strict
t_expect 1 "verify with the wrong key" -- "$fedlung" audit verify log.audit --key keys/hospital_a.pub
has out.txt "BROKEN at line 1" "the wrong key"
has out.txt "wrong public key" "the wrong key"
t_expect 1 "an edited byte" -- "$fedlung" audit verify edit.audit --key keys/server.pub
has out.txt "BROKEN at line 6" "an edited byte"
has out.txt "line 5 was altered" "an edited byte"
t_expect 1 "a removed record" -- "$fedlung" audit verify delete.audit --key keys/server.pub
has out.txt "BROKEN at line 4" "a removed record"
t_expect 1 "two records swapped" -- "$fedlung" audit verify swap.audit --key keys/server.pub
has out.txt "BROKEN at line 5" "two records swapped"
t_expect 1 "a torn last line" -- "$fedlung" audit verify torn.audit --key keys/server.pub
has out.txt "torn" "a torn last line"
t_expect 0 "a record appended by someone else" -- "$fedlung" audit verify appended.audit \
  --key keys/server.pub
has out.txt "lines 14-15 are not signed yet" "an appended record is reported unsigned"
t_expect 1 "... and with --strict" -- "$fedlung" audit verify appended.audit --key keys/server.pub \
  --strict
t_expect 1 "a forged checkpoint" -- "$fedlung" audit verify forged_cp.audit --key keys/server.pub
has out.txt "BROKEN at line 16" "a forged checkpoint"
t_expect 1 "a missing log" -- "$fedlung" audit verify nope.audit --key keys/server.pub
has err.txt "nope.audit" "the error names the missing log"
t_expect 1 "a missing key" -- "$fedlung" audit verify log.audit --key nope.pub
has err.txt "nope.pub" "the error names the missing key"

# ---- show ----
t_expect 0 "show" -- "$fedlung" audit show log.audit
[ "$(wc -l <out.txt)" -eq 15 ] || t_fail "show printed $(wc -l <out.txt) lines, expected a header and 14 rows"
head -1 out.txt | grep -q "seq.*time.*round.*kind.*actor.*data" || t_fail "show's header: $(head -1 out.txt)"
grep -q "update_accepted *hospital_a *sha256=9f86d081884c\.\.\. clip=1.0 sigma=0.8" out.txt ||
  t_fail "show's update row: $(grep update_accepted out.txt | head -1)"
grep -q "^ *8 .* 1 *checkpoint *audit *from=1 to=7 count=7 merkle_root=" out.txt ||
  t_fail "show's checkpoint row: $(grep checkpoint out.txt | head -1)"
t_expect 0 "show --kind" -- "$fedlung" audit show log.audit --kind update_accepted
[ "$(wc -l <out.txt)" -eq 3 ] || t_fail "show --kind update_accepted: $(cat out.txt)"
t_expect 0 "show --round" -- "$fedlung" audit show log.audit --round 2
[ "$(wc -l <out.txt)" -eq 7 ] || t_fail "show --round 2: $(cat out.txt)"
t_expect 0 "show --round -1" -- "$fedlung" audit show log.audit --round -1
[ "$(wc -l <out.txt)" -eq 4 ] || t_fail "show --round -1: $(cat out.txt)"
t_expect 1 "show a torn log" -- "$fedlung" audit show torn.audit
has out.txt "line 14 does not parse" "show marks the torn line"
t_expect 2 "show with --key" -- "$fedlung" audit show log.audit --key keys/server.pub
t_expect 2 "an unknown subcommand" -- "$fedlung" audit frobnicate
t_expect 0 "--help" -- "$fedlung" audit --help
has out.txt "fedlung audit verify" "--help"
if command -v jq >/dev/null; then
  jq -e -s 'length == 14 and .[7].kind == "checkpoint" and (.[7].sig | length) == 128' log.audit \
    >/dev/null || t_fail "jq does not read the log as 14 JSON records"
fi

# ---- report ----
t_expect 2 "report without --key" -- "$fedlung" audit report log.audit --out r.html
t_expect 2 "report with --inclusion" -- "$fedlung" audit report log.audit --key keys/server.pub \
  --out r.html --inclusion log.audit --outbox-key keys/server.pub
t_expect 0 "report" -- "$fedlung" audit report log.audit --key keys/server.pub --out r.html
has out.txt "r.html: 0 rounds, 2 hospitals; every log intact" "report's summary"
has r.html "intact: 14 records, 2 signed checkpoints" "the report's verification status"
has r.html "1 record after the last checkpoint, not signed yet: not shown" "the unsigned tail"
has r.html "stale round" "the rejected update's reason"
has r.html "No record carries a privacy spend" "a log without DP"
t_expect 1 "report on an edited log" -- "$fedlung" audit report edit.audit --key keys/server.pub \
  --out e.html
has e.html 'data-status="broken" class="bad">BROKEN at line 6' "the report on an edited log"
t_expect 1 "report to a missing folder" -- "$fedlung" audit report log.audit \
  --key keys/server.pub --out nope/r.html
t_expect 0 "report on hostile strings" -- "$fedlung" audit report inject.audit \
  --key keys/server.pub --out inject.html
grep -qiE "<script|<img|<b>|onerror=|src=" inject.html &&
  t_fail "the report lets markup through: $(grep -oiE ".{20}(<script|<img|<b>|onerror=|src=).{20}" inject.html | head -3)"
has inject.html "&#60;script&#62;alert(1)&#60;&#47;script&#62;" "the escaped client id"
has inject.html "&#60;img src&#61;x onerror&#61;alert(2)&#62; &#38; &#34;q&#34;" "the escaped reason"
if [ -x /usr/bin/chromium ]; then # check_audit_report.sh requires it; here it is a bonus
  timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/chrome" \
    --dump-dom "file://$work/inject.html" >dom.html 2>/dev/null || t_fail "chromium --dump-dom"
  grep -q "<script" dom.html && t_fail "chromium found a script element in the report"
  has dom.html "&lt;script&gt;alert(1)&lt;/script&gt;" "the client id rendered as text"
  has dom.html "&lt;img src=x onerror=alert(2)&gt; &amp; \"q\"" "the reason rendered as text"
fi

t_summary check_audit_cli
