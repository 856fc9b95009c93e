#!/usr/bin/env bash
# check_pki_openssl.sh - `fedlung pki` against Debian's openssl: the CA and certificates the CLI
# makes pass `openssl verify` for their purpose and fail it for the other, carry the SANs asked
# for, keys are 0600, and a real mutual-TLS handshake (openssl s_server -Verify / s_client on
# 127.0.0.1) succeeds with the hospital's certificate and is refused without one or with one
# from a rogue CA. Also the CLI's exit codes (2 bad usage, 1 failure).
set -uo pipefail
fedlung=${1:?usage: check_pki_openssl.sh /path/to/fedlung}
command -v openssl >/dev/null || { echo "check_pki_openssl: openssl is not installed" >&2; exit 1; }
source "$(dirname "$0")/lib.sh"
t_workdir
server_pid=
t_on_exit '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null'
cd "$work"
mode() { stat -c %a "$1" 2>/dev/null; }

# ---- the CLI ----
t_expect 2 "no subcommand" -- "$fedlung" pki
t_expect 0 "--help" -- "$fedlung" pki --help
t_expect 2 "unknown subcommand" -- "$fedlung" pki sign --out x
t_expect 2 "init without --out" -- "$fedlung" pki init
t_expect 2 "init --days 0" -- "$fedlung" pki init --out ca --days 0
t_expect 2 "init --san" -- "$fedlung" pki init --out ca --san localhost
t_expect 0 "init" -- "$fedlung" pki init --out ca --name "Lung consortium CA"
[ "$(mode ca/ca.key)" = 600 ] || t_fail "ca.key has mode $(mode ca/ca.key), not 600"
t_expect 1 "init over an existing CA" -- "$fedlung" pki init --out ca
grep -q "force" err.txt || t_fail "refusing to replace the CA does not mention --force"
t_expect 2 "issue without a role" -- "$fedlung" pki issue --ca ca --name server
t_expect 2 "issue --server --client" -- "$fedlung" pki issue --ca ca --name x --server --client
t_expect 2 "issue with a bad name" -- "$fedlung" pki issue --ca ca --name ../evil --client
t_expect 2 "issue named ca" -- "$fedlung" pki issue --ca ca --name ca --client
t_expect 1 "issue with a bad SAN" -- "$fedlung" pki issue --ca ca --name s --server --san 'bad host'
t_expect 1 "issue from a missing CA" -- "$fedlung" pki issue --ca nope --name s --server
grep -q "nope/ca.crt" err.txt || t_fail "the error does not name nope/ca.crt: $(cat err.txt)"
t_expect 0 "issue server" -- "$fedlung" pki issue --ca ca --name fl-server --server \
  --san fl.example.org --san IP:10.1.2.3 --san DNS:localhost --out certs
t_expect 0 "issue client" -- "$fedlung" pki issue --ca ca --name hospital-a --client --out certs
t_expect 1 "issue over an existing certificate" -- "$fedlung" pki issue --ca ca \
  --name hospital-a --client --out certs
t_expect 0 "re-issue with --force" -- "$fedlung" pki issue --ca ca --name hospital-a --client \
  --out certs --force
for k in certs/fl-server.key certs/hospital-a.key; do
  [ "$(mode $k)" = 600 ] || t_fail "$k has mode $(mode $k), not 600"
done
ls certs | grep -q '\.tmp\.' && t_fail "a temporary file was left in certs/"
t_expect 0 "show" -- "$fedlung" pki show certs/fl-server.crt
grep -q "DNS:fl.example.org" out.txt || t_fail "show does not list DNS:fl.example.org"
fp=$(openssl x509 -noout -fingerprint -sha256 -in certs/fl-server.crt | sed 's/.*=//')
grep -q "$fp" out.txt || t_fail "show's fingerprint differs from openssl's $fp"
t_expect 0 "verify server" -- "$fedlung" pki verify --ca ca --server certs/fl-server.crt
t_expect 0 "verify client" -- "$fedlung" pki verify --ca ca/ca.crt --client certs/hospital-a.crt
t_expect 1 "verify a server certificate as a client" -- "$fedlung" pki verify --ca ca --client \
  certs/fl-server.crt
grep -q "serverAuth" err.txt || t_fail "the EKU refusal does not say serverAuth: $(cat err.txt)"

# ---- openssl's view ----
openssl verify -CAfile ca/ca.crt -purpose sslserver certs/fl-server.crt >/dev/null 2>&1 ||
  t_fail "openssl verify -purpose sslserver refuses the server certificate"
openssl verify -CAfile ca/ca.crt -purpose sslclient certs/hospital-a.crt >/dev/null 2>&1 ||
  t_fail "openssl verify -purpose sslclient refuses the client certificate"
openssl verify -CAfile ca/ca.crt -purpose sslclient certs/fl-server.crt >/dev/null 2>&1 &&
  t_fail "openssl verify accepts the server certificate as a client's"
openssl verify -CAfile ca/ca.crt -purpose sslserver certs/hospital-a.crt >/dev/null 2>&1 &&
  t_fail "openssl verify accepts the client certificate as a server's"
openssl x509 -noout -text -in certs/fl-server.crt >text.txt
for san in "DNS:localhost" "IP Address:127.0.0.1" "DNS:fl.example.org" "IP Address:10.1.2.3"; do
  grep -q "$san" text.txt || t_fail "the server certificate lacks $san"
done
[ "$(grep -o 'DNS:localhost' text.txt | wc -l)" -eq 1 ] || t_fail "DNS:localhost appears twice"
openssl x509 -noout -subject -in certs/hospital-a.crt | grep -q "CN = hospital-a$" ||
  t_fail "the client's subject is not CN = hospital-a"
openssl x509 -noout -text -in ca/ca.crt | grep -A1 "Basic Constraints: critical" |
  grep -q "CA:TRUE" || t_fail "ca.crt is not CA:TRUE critical"
openssl pkey -in certs/hospital-a.key -noout 2>/dev/null || t_fail "openssl cannot read the key"

# A rogue CA issuing a certificate with the same CN.
"$fedlung" pki init --out rogue >/dev/null 2>&1 &&
  "$fedlung" pki issue --ca rogue --name hospital-a --client >/dev/null 2>&1 ||
  t_fail "could not make the rogue CA"
t_expect 1 "verify a rogue certificate" -- "$fedlung" pki verify --ca ca --client \
  rogue/hospital-a.crt
openssl verify -CAfile ca/ca.crt rogue/hospital-a.crt >/dev/null 2>&1 &&
  t_fail "openssl verify accepts the rogue certificate"

# ---- a mutual-TLS handshake ----
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# handshake WHAT EXPECT [CERT KEY]: s_server requires and verifies a client certificate under
# ca.crt and echoes lines reversed (-rev); the client sends "hello" and must get "olleh" back
# (EXPECT=ok), or must not (EXPECT=refused, and the server logs why).
handshake() {
  local what=$1 want=$2 port
  shift 2
  local cert=()
  [ $# -eq 2 ] && cert=(-cert "$1" -key "$2")
  for attempt in 1 2 3; do
    port=$(free_port)
    rm -f srv.out srv.err
    timeout 30 openssl s_server -accept "127.0.0.1:$port" -cert certs/fl-server.crt \
      -key certs/fl-server.key -CAfile ca/ca.crt -Verify 1 -verify_return_error -rev \
      -naccept 1 >srv.out 2>srv.err &
    server_pid=$!
    for _ in $(seq 100); do
      grep -q ACCEPT srv.out 2>/dev/null && break
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    grep -q ACCEPT srv.out 2>/dev/null && break
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
  done
  [ -n "$server_pid" ] || { t_fail "$what: openssl s_server did not start: $(cat srv.err)"; return; }
  printf 'hello\nCLOSE\n' | timeout 15 openssl s_client -connect "127.0.0.1:$port" \
    "${cert[@]}" -CAfile ca/ca.crt -verify_return_error -verify_hostname localhost -quiet \
    >cli.out 2>cli.err
  local rc=$?
  timeout 5 tail --pid="$server_pid" -f /dev/null 2>/dev/null || kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=
  if [ "$want" = ok ]; then
    [ "$rc" -eq 0 ] && grep -q olleh cli.out ||
      t_fail "$what: the handshake failed (client exit $rc): $(grep -i error cli.err srv.err | head -3)"
  else
    grep -q olleh cli.out && t_fail "$what: the server accepted it"
    grep -qi "error" srv.err || t_fail "$what: the server logged no refusal"
  fi
}
handshake "hospital-a's certificate" ok certs/hospital-a.crt certs/hospital-a.key
handshake "a rogue CA's certificate" refused rogue/hospital-a.crt rogue/hospital-a.key
grep -q "unable to get local issuer" srv.err || t_fail "the rogue refusal is not about the issuer"
handshake "no client certificate" refused
handshake "the server's certificate as a client's" refused certs/fl-server.crt certs/fl-server.key

t_summary check_pki_openssl
