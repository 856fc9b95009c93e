# lib.sh - shell helpers shared by the tests/check_*.sh scripts. Source it, do not run it:
#   source "$(dirname "$0")/lib.sh"
# (ctest runs each script as `bash tests/check_X.sh /path/to/fedlung` from tests/.)
# Bash, not sh. Defines functions and t_* variables only; safe under `set -euo pipefail`.
#
#   t_fail MESSAGE...        prints "${t_fail_prefix}MESSAGE" to stderr and counts a failure in
#                            $t_fails; returns 0, so `set -e` does not stop the checks after it.
#   t_expect CODE WHAT -- CMD...
#                            runs CMD with its stdout in ./out.txt and its stderr in ./err.txt;
#                            a t_fail (naming WHAT, the exit code, and the start of both files)
#                            unless CMD exits with CODE. Returns 0 either way. Under
#                            $t_expect_timeout (seconds; empty: none) CMD runs under timeout(1).
#   t_workdir [PREFIX]       makes a temporary directory ${TMPDIR:-/tmp}/PREFIX.XXXXXX (PREFIX:
#                            the script's name) in $work and removes it on exit, after running
#                            the commands t_on_exit registered. FL_KEEP_TEST_FILES=1 keeps it
#                            (and says where). Does not cd there.
#   t_on_exit COMMAND        COMMAND (a string, eval'd) runs on exit before $work is removed,
#                            e.g. to stop a server the script started.
#   t_sibling FEDLUNG NAME   prints the path of test binary NAME in the build tree of FEDLUNG
#                            (DIR/tests/NAME for DIR/fedlung); if it is not an executable, says
#                            so on stderr and returns 1:
#                              tu=$(t_sibling "$fedlung" test_umap) || exit 1
#   t_need_python MODULES HINT
#                            checks that $py (default /usr/bin/python3) can `import MODULES`
#                            (Python syntax: "numpy, sklearn"); if not, says so with HINT (how
#                            to install them) on stderr and returns 1:
#                              t_need_python "numpy, sklearn" "apt-get install ..." || exit 1
#   t_pki FEDLUNG SERVER CLIENT...
#                            a throw-away PKI in ./pki (`FEDLUNG pki init`), with a server
#                            certificate for SERVER and a client certificate for each CLIENT;
#                            each step is a t_expect 0.
#   t_free_port              prints a TCP port free on 127.0.0.1 now (asks $py's socket module).
#   t_start_server FEDLUNG CONFIG
#                            starts `FEDLUNG server --config CONFIG` in the background, its stderr
#                            appended to ./server.log (emptied first), its pid in $t_server_pid
#                            (killed on exit if still set), and waits 10 s at most for its SERVER_START
#                            line; on failure a t_fail with the log, and returns 1.
#   t_stop_server            SIGTERM to $t_server_pid, waits 10 s at most (then SIGKILL), clears
#                            it; returns the server's exit status (124 if it had to be killed),
#                            with a t_fail if server.log holds a sanitizer report.
#   t_wait_clients K...      waits for each hospital client K, started by the script with its pid
#                            in ${pid[cK]} (an associative array `pid` the script declares), to
#                            end within 60 s; a t_fail (with the end of ./hK.log) when it exits
#                            non-zero or is still running; unsets pid[cK].
#   t_wait_server [SECONDS]  waits SECONDS (60) at most for $t_server_pid to end by itself (then
#                            SIGKILL), clears it; returns the server's exit status (124 if it had
#                            to be killed).
#   t_federation_data FEDLUNG N SYNTH_OPTION...
#                            what a federation test needs in ./: a synthetic cohort pooled.h5 of N
#                            sites (`cohort synth --sites N SYNTH_OPTION...`), split by site into
#                            parts/part-K.h5, a PKI with fl-server and hospital-1..N (t_pki), and
#                            the server's audit key keys/server.key; each step is a t_expect 0.
#   t_study_confs STUDY N MIN [LINE]...
#                            a federation's configs in ./: server.conf (127.0.0.1:$port, a free
#                            port it sets; state_dir state; plan study.plan; audit_key
#                            keys/server.key; min_clients MIN; the PKI of `t_pki FEDLUNG fl-server
#                            hospital-1 ...`; allow hospital-1..N; each LINE added to [server])
#                            and hK.conf for K = 1..N (state_dir hK, approve = the SHA-256 of
#                            ./study.plan, which it sets in $hash; threads 1; cohort
#                            parts/part-K.h5).
#   t_summary NAME           prints "NAME: N failed"; returns 1 if N > 0, else 0. Meant as the
#                            script's last command, so that it is the exit status.

t_name=$(basename "$0" .sh)
t_fails=0
t_fail_prefix="FAIL: "
t_expect_timeout=
t_exit_cmds=()
work=

t_fail() {
    echo "${t_fail_prefix}$*" >&2
    t_fails=$((t_fails + 1))
}

t_expect() {
    local code=$1 what=$2 got=0
    shift 3
    if [ -n "$t_expect_timeout" ]; then
        timeout "$t_expect_timeout" "$@" >out.txt 2>err.txt || got=$?
    else
        "$@" >out.txt 2>err.txt || got=$?
    fi
    if [ "$got" -ne "$code" ]; then
        local o=
        [ -s out.txt ] && o="; stdout: $(head -c 300 out.txt)"
        t_fail "$what: exit $got, expected $code; stderr: $(head -c 300 err.txt)$o"
    fi
    return 0
}

t_on_exit() {
    t_exit_cmds+=("$1")
}

t_cleanup_() {
    local c
    for c in ${t_exit_cmds[@]+"${t_exit_cmds[@]}"}; do
        eval "$c" || true
    done
    if [ -n "$work" ] && [ -z "${FL_KEEP_TEST_FILES:-}" ]; then
        rm -rf "$work"
    fi
}

t_workdir() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/${1:-$t_name}.XXXXXX") || exit 1
    [ -n "${FL_KEEP_TEST_FILES:-}" ] && echo "$t_name: files kept in $work"
    trap t_cleanup_ EXIT
}

t_sibling() {
    local t
    t="$(dirname "$1")/tests/$2"
    if [ ! -x "$t" ]; then
        echo "$t_name: $t is not an executable (build the $2 target)" >&2
        return 1
    fi
    echo "$t"
}

t_need_python() {
    local py=${py:-/usr/bin/python3}
    if ! "$py" -c "import $1" 2>/dev/null; then
        echo "$t_name: $py cannot import $1 ($2)" >&2
        return 1
    fi
}

t_server_pid=

t_pki() {
    local fedlung=$1 server=$2 c
    shift 2
    t_expect 0 "pki init" -- "$fedlung" pki init --out pki
    t_expect 0 "pki issue $server" -- "$fedlung" pki issue --ca pki --name "$server" --server
    for c in "$@"; do
        t_expect 0 "pki issue $c" -- "$fedlung" pki issue --ca pki --name "$c" --client
    done
}

t_free_port() {
    "${py:-/usr/bin/python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

t_start_server() {
    : >server.log
    "$1" server --config "$2" 2>>server.log &
    t_server_pid=$!
    t_on_exit '[ -n "$t_server_pid" ] && kill -KILL "$t_server_pid" 2>/dev/null'
    local _
    for _ in $(seq 100); do
        grep -q "fedlung server: SERVER_START" server.log 2>/dev/null && return 0
        kill -0 "$t_server_pid" 2>/dev/null || break
        sleep 0.1
    done
    t_fail "the server did not start: $(cat server.log)"
    return 1
}

t_stop_server() {
    kill -TERM "$t_server_pid"
    local rc=124 _
    for _ in $(seq 100); do
        if ! kill -0 "$t_server_pid" 2>/dev/null; then
            wait "$t_server_pid"
            rc=$?
            break
        fi
        sleep 0.1
    done
    [ "$rc" -eq 124 ] && kill -KILL "$t_server_pid" 2>/dev/null
    t_server_pid=
    # a sanitizer build reports errors and leaks on stderr at exit
    grep -q "Sanitizer" server.log && t_fail "sanitizer report: $(grep -A8 Sanitizer server.log | head -20)"
    return "$rc"
}

t_wait_clients() {
    local k
    for k in "$@"; do
        if timeout 60 tail --pid="${pid[c$k]}" -f /dev/null; then
            wait "${pid[c$k]}" || t_fail "$(pwd): hospital-$k exited $?: $(tail -3 h$k.log)"
        else
            t_fail "$(pwd): hospital-$k still runs after 60 s: $(tail -3 h$k.log)"
        fi
        unset "pid[c$k]"
    done
}

t_wait_server() {
    local rc=124
    if timeout "${1:-60}" tail --pid="$t_server_pid" -f /dev/null; then
        wait "$t_server_pid"
        rc=$?
    else
        kill -KILL "$t_server_pid" 2>/dev/null
    fi
    t_server_pid=
    return "$rc"
}

t_summary() {
    echo "$1: $t_fails failed"
    [ "$t_fails" -eq 0 ]
}

t_study_confs() {
    local study=$1 n=$2 min=$3 k allow=""
    shift 3
    hash=$(sha256sum study.plan | cut -d' ' -f1)
    port=$(t_free_port)
    for k in $(seq "$n"); do allow="$allow${allow:+, }hospital-$k"; done
    {
        printf '[server]\nlisten = 127.0.0.1:%s\nstudy = %s\nstate_dir = state\n' "$port" "$study"
        printf 'plan = study.plan\naudit_key = keys/server.key\nmin_clients = %s\n' "$min"
        for k in "$@"; do printf '%s\n' "$k"; done
        printf '[tls]\nca = pki/ca.crt\ncert = pki/fl-server.crt\nkey = pki/fl-server.key\n'
        printf '[clients]\nallow = %s\n' "$allow"
    } >server.conf
    for k in $(seq "$n"); do
        {
            printf '[client]\nserver = 127.0.0.1:%s\nstudy = %s\nname = hospital-%s\n' \
                "$port" "$study" "$k"
            printf 'state_dir = h%s\napprove = %s\nthreads = 1\n' "$k" "$hash"
            printf '[tls]\nca = pki/ca.crt\ncert = pki/hospital-%s.crt\n' "$k"
            printf 'key = pki/hospital-%s.key\n[data]\ncohort = parts/part-%s.h5\n' "$k" "$k"
        } >h$k.conf
    done
}

t_federation_data() {
    local fedlung=$1 n=$2 k names=()
    shift 2
    t_expect 0 "synth" -- "$fedlung" cohort synth --out pooled.h5 --sites "$n" "$@"
    t_expect 0 "split by site" -- "$fedlung" cohort split pooled.h5 --partition site --out parts
    for k in $(seq "$n"); do names+=("hospital-$k"); done
    t_pki "$fedlung" fl-server "${names[@]}"
    t_expect 0 "audit keygen" -- "$fedlung" audit keygen --out keys --name server
}
