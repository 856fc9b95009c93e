#!/bin/sh
# trial-setup.sh - prepares the one-host trial of deploy/compose.yaml: a throw-away consortium
# CA, the server's certificate (SAN "server", its compose name) and audit key, one certificate
# per hospital, a synthetic cohort split into three sites, and every configuration, made from
# deploy/server.conf.example and deploy/client.conf.example. `docker compose run --rm setup`
# runs it in the fedlung image; it is not a tool for a real deployment, where the CA stays with
# the coordinator and each key is made or delivered where it is used (docs/deploy.md).
#
# Every folder is a variable, so the script also runs outside a container:
#   FEDLUNG   the fedlung binary                      (default: fedlung on PATH)
#   DEPLOY    the deploy/ folder (examples, the plan) (default: /deploy)
#   TRIAL     where the volumes are mounted           (default: /trial)
# It writes TRIAL/coordinator (the CA), TRIAL/server-etc (the server's /etc/fedlung),
# TRIAL/hospital-X-etc (a hospital's /etc/fedlung) and TRIAL/hospital-X-data (its
# /srv/fedlung/cohort.h5), X = a, b, c. A second run changes nothing unless FORCE=1.
set -eu
fedlung=${FEDLUNG:-fedlung}
deploy=${DEPLOY:-/deploy}
trial=${TRIAL:-/trial}
hospitals="hospital-a hospital-b hospital-c"

if [ -e "$trial/coordinator/ca/ca.crt" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "trial-setup: $trial is set up already (FORCE=1 makes everything anew)" >&2
    exit 0
fi
umask 077
for d in coordinator server-etc/tls server-etc/audit; do mkdir -p "$trial/$d"; done
for h in $hospitals; do mkdir -p "$trial/$h-etc/tls" "$trial/$h-data"; done

# the coordinator: CA, server and hospital certificates
"$fedlung" pki init --out "$trial/coordinator/ca" --name "fedlung trial CA" --force
"$fedlung" pki issue --ca "$trial/coordinator/ca" --name fl-server --server --san server \
    --out "$trial/coordinator/issued" --force
for h in $hospitals; do
    "$fedlung" pki issue --ca "$trial/coordinator/ca" --name "$h" --client \
        --out "$trial/coordinator/issued" --force
done

# the server: its certificate, audit key, plan and configuration
cp "$trial/coordinator/ca/ca.crt" "$trial/coordinator/issued/fl-server.crt" \
    "$trial/coordinator/issued/fl-server.key" "$trial/server-etc/tls/"
"$fedlung" audit keygen --out "$trial/server-etc/audit" --name server --force
cp "$deploy/study.plan" "$trial/server-etc/study.plan"
cp "$deploy/server.conf.example" "$trial/server-etc/server.conf"
plan_hash=$(sha256sum "$trial/server-etc/study.plan" | cut -c1-64)

# the hospitals: certificate, configuration (dialling the compose service "server") and cohort
"$fedlung" cohort synth --out "$trial/coordinator/all.h5" --sites 3
"$fedlung" cohort split "$trial/coordinator/all.h5" --partition site --out "$trial/coordinator/parts"
i=1
for h in $hospitals; do
    cp "$trial/coordinator/ca/ca.crt" "$trial/coordinator/issued/$h.crt" \
        "$trial/coordinator/issued/$h.key" "$trial/$h-etc/tls/"
    # the trial approves the plan it runs; in a study each privacy officer writes this line
    sed -e "s|^server = fl.lung-consortium.org:50051|server = server:50051|" \
        -e "s|hospital-a|$h|g" \
        -e "s|^approve = [0-9a-f]*|approve = $plan_hash|" \
        "$deploy/client.conf.example" >"$trial/$h-etc/client-lung-demo.conf"
    cp "$trial/coordinator/parts/part-$i.h5" "$trial/$h-data/cohort.h5"
    i=$((i + 1))
done
rm -f "$trial/coordinator/issued/"*.key "$trial/coordinator/all.h5"
rm -rf "$trial/coordinator/parts"

# inside the image, the services run as the fedlung user
if [ "$(id -u)" = 0 ] && id fedlung >/dev/null 2>&1; then
    for d in server-etc $(for h in $hospitals; do echo "$h-etc $h-data"; done); do
        chown -R fedlung:fedlung "$trial/$d"
    done
fi
echo "trial-setup: ready; plan $plan_hash; the privacy officers' key: $trial/server-etc/audit/server.pub"
