/* procs.c - the simulator's supervisor: starts the server and the hospitals' clients as
 * processes of this same binary (/proc/self/exe), each in its own folder, process group and
 * log, watches the server's rounds.csv, injects the faults asked for (a client killed, the
 * server killed and restarted on the same port, a slow client), and makes sure that no child
 * outlives the run. Not a scheduler: the server decides rounds; this only starts, kills and
 * reaps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim_impl.h"

#define POLL_S 0.5        /* how often rounds.csv is read */
#define TICK_S 0.1        /* how often children are reaped and faults checked */
#define FAULT_DELAY_S 1.5 /* from the start of a fault's round to the fault */
#define CLIENTS_GONE_S 30 /* a server left without any client is given up after this */
#define DONE_GRACE_S 30   /* clients finishing after the server's success */
#define STOP_GRACE_S 3    /* SIGTERM to SIGKILL */

extern char **environ;

typedef struct {
    char name[32];         /* "server", "hospital-2" */
    char dir[FL_SIM_PATH]; /* its working folder, where its config is */
    char log[FL_SIM_PATH]; /* its stdout and stderr */
    char args[8][32];      /* argv's strings */
    char *argv[9];
    pid_t pid;         /* 0 when not running */
    int ended, status; /* reaped, and waitpid's status */
    int dropped;       /* killed by --drop-client */
} sim_proc;

typedef struct {
    const fl_sim_options *o;
    const fl_sim_layout *L;
    sim_proc server;
    sim_proc clients[FL_SIM_MAX_HOSPITALS];
    char **env_server, **env_client; /* heap copies: environ plus the thread settings */
    pid_t self;
    int committed;                        /* the last round in the server's rounds.csv */
    double drop_at[FL_SIM_MAX_HOSPITALS]; /* when drops[i] fires; 0 not armed, -1 done */
    double kill_at;                       /* likewise for --kill-server-at */
    int restart_pending;                  /* the server was killed by us: start it again */
    int stopping;                         /* stop_all is ending the children: no reports */
    struct stat csv_seen;                 /* rounds.csv as last read */
} sim_run;

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal ends it early: the loop looks at the flag */
}

/* ---- environment, arguments ---- */

static void free_env(char **env) {
    for (size_t i = 0; env && env[i]; i++) free(env[i]);
    free(env);
}

/* environ without the thread and wait-policy settings, plus ours: threads engine threads that
 * sleep when idle (OMP_WAIT_POLICY=PASSIVE, so processes sharing cores do not spin against
 * each other; GOMP_SPINCOUNT, which would override it, is dropped). NULL when out of memory. */
static char **make_env(int threads) {
    static const char *const drop[] = {
        "OMP_WAIT_POLICY=", "OMP_NUM_THREADS=", "GOMP_SPINCOUNT=", "FEDLUNG_THREADS="};
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t d = 0; d < sizeof drop / sizeof *drop; d++)
            skip |= strncmp(environ[i], drop[d], strlen(drop[d])) == 0;
        if (!skip && !(env[k++] = strdup(environ[i]))) goto nomem;
    }
    char buf[64];
    const char *const ours[3] = {"OMP_WAIT_POLICY=PASSIVE", "OMP_NUM_THREADS=%d",
                                 "FEDLUNG_THREADS=%d"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, ours[i], threads);
        if (!(env[k++] = strdup(buf))) goto nomem;
    }
    return env;
nomem:
    free_env(env);
    return NULL;
}

/* Sets p's argv to "fedlung" followed by the n strings in args. */
static void set_args(sim_proc *p, int n, const char *const *args) {
    snprintf(p->args[0], sizeof p->args[0], "fedlung");
    for (int i = 0; i < n; i++) snprintf(p->args[i + 1], sizeof p->args[i + 1], "%s", args[i]);
    for (int i = 0; i <= n; i++) p->argv[i] = p->args[i];
    p->argv[n + 1] = NULL;
}

static void init_procs(sim_run *r) {
    const fl_sim_layout *L = r->L;
    sim_proc *s = &r->server;
    snprintf(s->name, sizeof s->name, "server");
    fl_sim_path(s->dir, "%s/server", L->dir);
    fl_sim_path(s->log, "%s/server.log", s->dir);
    set_args(s, 3, (const char *const[]){"server", "--config", "server.conf"});
    char threads[16];
    snprintf(threads, sizeof threads, "%d", L->client_threads);
    for (int k = 0; k < L->n; k++) {
        sim_proc *c = &r->clients[k];
        snprintf(c->name, sizeof c->name, "hospital-%d", k + 1);
        fl_sim_path(c->dir, "%s/hospitals/%s", L->dir, c->name);
        fl_sim_path(c->log, "%s/client.log", c->dir);
        const char *args[7] = {"client", "--config", "client.conf", "--threads", threads};
        int n = 5;
        char delay[16];
        for (int i = 0; i < r->o->n_stragglers; i++)
            if (r->o->stragglers[i].hospital == k + 1) {
                snprintf(delay, sizeof delay, "%d", r->o->stragglers[i].value);
                args[n++] = "--delay-upload";
                args[n++] = delay;
            }
        set_args(c, n, args);
    }
}

/* ---- starting, reaping, stopping ---- */

/* Forks and executes p (this binary) in p->dir with env, stdin from /dev/null and stdout and
 * stderr appended to p->log (truncated when fresh). The child dies with us (PR_SET_PDEATHSIG)
 * and leads its own process group, so a Ctrl-C at the terminal reaches only the simulator,
 * which then stops the children in order. */
static fl_status spawn(sim_run *r, sim_proc *p, char **env, int fresh, fl_err *err) {
    int log = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) {
        int e = errno;
        if (log >= 0) close(log);
        if (null >= 0) close(null);
        return fl_fail(err, FL_EIO, "%s: %s", log < 0 ? p->log : "/dev/null", strerror(e));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* only async-signal-safe calls from here on */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != r->self) _exit(127); /* we died before prctl */
        setpgid(0, 0);
        if (dup2(null, 0) >= 0 && dup2(log, 1) >= 0 && dup2(log, 2) >= 0 && chdir(p->dir) == 0)
            execve("/proc/self/exe", p->argv, env);
        static const char msg[] = "fedlung simulate: cannot start this process\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    int e = errno;
    close(log);
    close(null);
    if (pid < 0) return fl_fail(err, FL_EIO, "cannot start the %s: fork: %s", p->name, strerror(e));
    setpgid(pid, pid); /* also here, so that a kill of the group cannot race the child's own */
    p->pid = pid;
    p->ended = 0;
    return FL_OK;
}

static void signal_proc(const sim_proc *p, int sig) {
    if (p->pid <= 0) return;
    if (kill(-p->pid, sig) != 0) kill(p->pid, sig);
}

static sim_proc *proc_of(sim_run *r, pid_t pid) {
    if (r->server.pid == pid) return &r->server;
    for (int k = 0; k < r->L->n; k++)
        if (r->clients[k].pid == pid) return &r->clients[k];
    return NULL;
}

static void describe_status(int status, char *buf, size_t cap) {
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status %d", status);
}

/* The last non-empty line of the file at path into buf ("" if none). */
static void last_line(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) snprintf(buf, cap, "%s", line);
    }
    if (f) fclose(f);
}

/* Reaps every child that ended; a client that failed is reported on stderr with the last
 * line of its log. */
static void reap(sim_run *r) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        sim_proc *p = proc_of(r, pid);
        if (!p) continue;
        p->pid = 0;
        p->ended = 1;
        p->status = status;
        if (p == &r->server || p->dropped || r->stopping) continue;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        char what[96], tail[1024];
        describe_status(status, what, sizeof what);
        last_line(p->log, tail, sizeof tail);
        fprintf(stderr, "fedlung simulate: %s's client stopped (%s%s%s); see %s\n", p->name, what,
                tail[0] ? ": " : "", tail, p->log);
    }
}

static int alive_clients(const sim_run *r) {
    int n = 0;
    for (int k = 0; k < r->L->n; k++) n += r->clients[k].pid > 0;
    return n;
}

/* Whether some client ended with exit 0 (it saw the study done). */
static int any_client_done(const sim_run *r) {
    for (int k = 0; k < r->L->n; k++) {
        const sim_proc *c = &r->clients[k];
        if (c->ended && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) return 1;
    }
    return 0;
}

/* Waits up to seconds for the running children to end by themselves; returns how many still
 * run. */
static int wait_children(sim_run *r, double seconds) {
    double until = fl_sim_now() + seconds;
    for (;;) {
        reap(r);
        int n = alive_clients(r) + (r->server.pid > 0);
        if (n == 0 || fl_sim_now() >= until) return n;
        sleep_s(TICK_S);
    }
}

/* SIGTERM to every child, SIGKILL to those still there after STOP_GRACE_S, then reaps all. */
static void stop_all(sim_run *r) {
    sim_proc *all[FL_SIM_MAX_HOSPITALS + 1];
    int n = 0;
    all[n++] = &r->server;
    for (int k = 0; k < r->L->n; k++) all[n++] = &r->clients[k];
    r->stopping = 1;
    for (int i = 0; i < n; i++) signal_proc(all[i], SIGTERM);
    if (wait_children(r, STOP_GRACE_S) == 0) return;
    for (int i = 0; i < n; i++) signal_proc(all[i], SIGKILL);
    for (int i = 0; i < n; i++) {
        int status;
        if (all[i]->pid > 0 && waitpid(all[i]->pid, &status, 0) == all[i]->pid) {
            all[i]->pid = 0;
            all[i]->ended = 1;
            all[i]->status = status;
        }
    }
}

/* ---- watching ---- */

/* Reads the server's rounds.csv when it changed and prints the new rounds. */
static void poll_rounds(sim_run *r, int *printed) {
    char path[FL_SIM_PATH];
    fl_sim_path(path, "%s/server/state/rounds.csv", r->L->dir);
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (st.st_ino == r->csv_seen.st_ino && st.st_size == r->csv_seen.st_size &&
        st.st_mtim.tv_sec == r->csv_seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == r->csv_seen.st_mtim.tv_nsec)
        return;
    fl_sim_rounds rounds;
    fl_err err;
    if (fl_sim_rounds_load(path, &rounds, &err) != FL_OK) return; /* read it next time */
    r->csv_seen = st;
    /* Under DP, each hospital's epsilon: the round's update records are in the outboxes
     * before the round commits. privacy.csv follows the committed rounds, so that a run the
     * hospitals' budgets stop still has it. */
    fl_sim_eps eps = {0};
    int dp = r->L->dp && fl_sim_eps_load(r->L, &eps, &err) == FL_OK;
    if (dp && fl_sim_eps_write(r->L, &rounds, &eps, 0, &err) != FL_OK)
        fprintf(stderr, "fedlung simulate: warning: %s\n", err.msg);
    fl_sim_rounds_print(&rounds, dp ? &eps : NULL, printed, stdout);
    fl_sim_eps_destroy(&eps);
    r->committed = fl_sim_rounds_last(&rounds);
    fl_sim_rounds_destroy(&rounds);
}

/* Fires the faults whose round has started (the server committed the round before it) once
 * FAULT_DELAY_S has passed. */
static void inject_faults(sim_run *r) {
    const fl_sim_options *o = r->o;
    double now = fl_sim_now();
    for (int i = 0; i < o->n_drops; i++) {
        if (r->drop_at[i] < 0 || r->committed < o->drops[i].value - 1) continue;
        if (r->drop_at[i] == 0) r->drop_at[i] = now + FAULT_DELAY_S;
        if (now < r->drop_at[i]) continue;
        sim_proc *c = &r->clients[o->drops[i].hospital - 1];
        r->drop_at[i] = -1;
        if (c->pid <= 0) continue;
        c->dropped = 1;
        signal_proc(c, SIGKILL);
        fprintf(stderr, "fedlung simulate: fault: %s dropped out during round %d (SIGKILL)\n",
                c->name, r->committed + 1);
    }
    if (o->kill_server_at <= 0 || r->kill_at < 0 || r->committed < o->kill_server_at - 1) return;
    if (r->kill_at == 0) r->kill_at = now + FAULT_DELAY_S;
    if (now < r->kill_at || r->server.pid <= 0) return;
    r->kill_at = -1;
    signal_proc(&r->server, SIGKILL);
    r->restart_pending = 1;
    fprintf(stderr, "fedlung simulate: fault: the server killed during round %d (SIGKILL)\n",
            r->committed + 1);
}

/* What to do about a server that ended: restart it (our fault), succeed or fail. Returns 1
 * when the study is done, 0 to go on, or -1 with err set. */
static int server_ended(sim_run *r, fl_err *err) {
    const sim_proc *s = &r->server;
    if (r->restart_pending) {
        r->restart_pending = 0;
        FILE *f = fopen(s->log, "a");
        if (f) {
            fprintf(f,
                    "--- fedlung simulate: server killed (--kill-server-at %d); restarted "
                    "with the same config and port ---\n",
                    r->o->kill_server_at);
            fclose(f);
        }
        fprintf(stderr, "fedlung simulate: restarting the server on 127.0.0.1:%d\n", r->L->port);
        return spawn(r, &r->server, r->env_server, 0, err) == FL_OK ? 0 : -1;
    }
    if (WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0) return 1;
    char what[96], tail[1024];
    describe_status(s->status, what, sizeof what);
    last_line(s->log, tail, sizeof tail);
    if (WIFEXITED(s->status) && WEXITSTATUS(s->status) == 3)
        fl_fail(err, FL_EIO,
                "the server stopped the study: too few hospitals remained (%s); see %s and "
                "%s/hospitals/*/client.log",
                tail, s->log, r->L->dir);
    else
        fl_fail(err, FL_EIO, "the server failed (%s%s%s); see %s", what, tail[0] ? ": " : "", tail,
                s->log);
    return -1;
}

static fl_status watch(sim_run *r, int *printed, fl_err *err) {
    double next_poll = 0, clients_gone = 0;
    for (;;) {
        if (r->o->interrupted && *r->o->interrupted)
            return fl_fail(err, FL_EIO, "interrupted: the server and the clients were stopped");
        reap(r);
        double now = fl_sim_now();
        if (now >= next_poll) {
            poll_rounds(r, printed);
            next_poll = now + POLL_S;
        }
        if (r->server.pid <= 0) {
            int done = server_ended(r, err);
            if (done) return done > 0 ? FL_OK : FL_EIO;
        }
        inject_faults(r);
        if (alive_clients(r) > 0) {
            clients_gone = 0;
        } else if (clients_gone == 0) {
            clients_gone = now;
        } else if (now - clients_gone > CLIENTS_GONE_S || !any_client_done(r)) {
            return fl_fail(err, FL_EIO,
                           "every hospital's client has stopped and the server has not finished "
                           "the study; see %s/hospitals/*/client.log and %s",
                           r->L->dir, r->server.log);
        }
        sleep_s(TICK_S);
    }
}

fl_status fl_sim_run(const fl_sim_options *o, const fl_sim_layout *L, int *printed, fl_err *err) {
    sim_run *r = calloc(1, sizeof *r);
    if (!r) return fl_fail(err, FL_ENOMEM, "out of memory");
    r->o = o;
    r->L = L;
    r->self = getpid();
    init_procs(r);
    fl_status s = FL_OK;
    r->env_server = make_env(L->server_threads);
    r->env_client = make_env(L->client_threads);
    if (!r->env_server || !r->env_client) s = fl_fail(err, FL_ENOMEM, "out of memory");
    if (s == FL_OK && o->interrupted && *o->interrupted)
        s = fl_fail(err, FL_EIO, "interrupted before the federation started");
    if (s == FL_OK) {
        fprintf(stderr,
                "fedlung simulate: starting the server on 127.0.0.1:%d and %d client%s (%d "
                "engine thread%s each); logs in %s/server and %s/hospitals\n",
                L->port, L->n, L->n == 1 ? "" : "s", L->client_threads,
                L->client_threads == 1 ? "" : "s", L->dir, L->dir);
        s = spawn(r, &r->server, r->env_server, 1, err);
    }
    for (int k = 0; k < L->n && s == FL_OK; k++)
        s = spawn(r, &r->clients[k], r->env_client, 1, err);
    if (s == FL_OK) s = watch(r, printed, err);
    if (s == FL_OK && wait_children(r, DONE_GRACE_S) > 0)
        fprintf(stderr,
                "fedlung simulate: stopping the clients still running %d s after the "
                "study ended\n",
                DONE_GRACE_S);
    stop_all(r);
    for (int i = 0; i < o->n_drops && s == FL_OK; i++)
        if (r->drop_at[i] >= 0)
            fprintf(stderr,
                    "fedlung simulate: warning: --drop-client %d@%d did not happen: the "
                    "study ended first\n",
                    o->drops[i].hospital, o->drops[i].value);
    if (s == FL_OK && o->kill_server_at > 0 && r->kill_at >= 0)
        fprintf(stderr,
                "fedlung simulate: warning: --kill-server-at %d did not happen: the study "
                "ended first\n",
                o->kill_server_at);
    free_env(r->env_server);
    free_env(r->env_client);
    free(r);
    return s;
}
