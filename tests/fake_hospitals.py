#!/usr/bin/python3
"""fake_hospitals.py - N hospitals that do everything a hospital does over the wire except
train: each is a grpcio client over mutual TLS with its own certificate (made by
`fedlung pki issue`) that joins, approving the plan's hash, and then follows NextTask: TRAIN ->
GetModel (the SHA-256 of the bytes checked against the header and the task) -> PutUpdate of a
delta of the right length (small random float32 values, the same block repeated, streamed in
1 MiB chunks; example_count EXACT); EVAL -> GetModel -> PutEval of an all-zero histogram;
DONE -> exit. It records when each step began and ended and the bytes moved, and prints JSON.

Not a client to copy (client/ is the real one) and not a test by itself: tests/
check_server_memory.sh and bench/round drive it. Optionally it starts the real
`fedlung server` as its own child first (--server, --config), so that the server's peak
memory is the server's alone: VmHWM sampled from /proc/PID/status while it runs, and
ru_maxrss from wait4(2) once it exited by itself after the study was done.

Clients run as threads of --procs worker processes (this script again, with --worker), so
that Python's GIL need not serialise them all. Run with /usr/bin/python3 (Debian's
python3-grpcio); the stubs come from --stubs (grpc_tools.protoc output of
proto/fedlung.proto) or are compiled into a temporary folder.
"""

import argparse
import hashlib
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_MESSAGE = (4 << 20) + (64 << 10)  # FL_RPC_MAX_MESSAGE
CHUNK = 1 << 20  # DataChunk payload, the real client's
WAIT_MS = 20000  # NextTask long poll
SOFTWARE = "0.1.0"


def log(msg):
    print("fake_hospitals: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The plan (only what a fake hospital needs: the classes and the histogram bins)
# --------------------------------------------------------------------------------------------


def plan_values(text):
    """{section: {key: value}} from a study plan's INI text: comment lines start with '#' or
    ';', a comment after a value with ' ;'."""
    out, sec = {}, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sec = line.strip("[]").strip()
            out.setdefault(sec, {})
            continue
        k, _, v = line.partition("=")
        out.setdefault(sec, {})[k.strip()] = v.split(" ;")[0].strip()
    return out


# --------------------------------------------------------------------------------------------
# One hospital
# --------------------------------------------------------------------------------------------


class Hospital:
    """One fake hospital: its channel, its record of times (time.time(), seconds) and bytes."""

    def __init__(self, name, a, pb, pbg, update_block):
        import grpc

        self.grpc, self.pb, self.name, self.a = grpc, pb, name, a
        read = lambda p: open(p, "rb").read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(os.path.join(a.pki, "ca.crt")),
            private_key=read(os.path.join(a.pki, name + ".key")),
            certificate_chain=read(os.path.join(a.pki, name + ".crt")))
        opts = [("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE)]
        self.ch = grpc.secure_channel(a.target, creds, options=opts)
        self.stub = pbg.FederationStub(self.ch)
        self.block = update_block
        self.rec = {"name": name, "downloads": [], "tasks": []}

    def close(self):
        self.ch.close()

    def join(self):
        pb = self.pb
        rq = pb.JoinRequest(
            study_id=self.a.study, software_version=SOFTWARE, protocol_version=1,
            approved_plan_hashes=[self.a.plan_hash],
            data=pb.DataSummary(
                patients=100,
                modalities=[pb.ModalityCount(modality=pb.MODALITY_IMAGE, patients=100)] + [
                    # the server checks omics feature lists against the plan's fusion
                    # modalities even in a plan without a fusion phase: declare one each
                    pb.ModalityCount(modality=m, patients=100, features=1,
                                     features_sha256=hashlib.sha256(b"f\n").digest())
                    for m in (pb.MODALITY_RNA, pb.MODALITY_METHYLATION, pb.MODALITY_CLINICAL)]))
        t0 = time.time()
        # wait_for_ready: a connection that fails while ten hospitals connect at once is retried
        r = self.stub.Join(rq, timeout=60, wait_for_ready=True)
        self.rec["join"] = [t0, time.time()]
        if r.plan_hash != self.a.plan_hash:
            raise RuntimeError("%s: the server's plan hash differs from the approved one"
                               % self.name)
        v = plan_values(r.plan.decode())
        self.classes = len(v["study"]["classes"].split(","))
        self.bins = int(v["study"].get("bins", "1000"))

    def get_model(self, t, what):
        """Streams the task's model, hashing it as it comes; keeps nothing but the header.
        Checks the SHA-256 against the header's and the task's (none for the probe). Returns
        the header; records the start, the first chunk, the end and the bytes."""
        pb = self.pb
        h, off, sha = None, 0, hashlib.sha256()
        t0 = time.time()
        t1 = None
        for c in self.stub.GetModel(pb.ModelRequest(
                study_id=self.a.study, round=t.round, model_version=t.model_version,
                chunk_bytes=self.a.chunk_bytes), timeout=self.a.timeout):
            if t1 is None:
                t1 = time.time()
                if not c.HasField("header"):
                    raise RuntimeError("%s: the first ModelChunk has no header" % self.name)
                h = c.header
            if c.offset != off:
                raise RuntimeError("%s: chunk at offset %d, expected %d" % (self.name, c.offset,
                                                                             off))
            sha.update(c.data)
            off += len(c.data)
        t2 = time.time()
        if h is None or off != h.total_length:
            raise RuntimeError("%s: %d bytes of a %s-byte model" % (
                self.name, off, h.total_length if h else "?"))
        if sha.digest() != h.sha256 or (what != "probe" and h.sha256 != t.model_sha256):
            raise RuntimeError("%s: the model's SHA-256 differs from its header's or the task's"
                               % self.name)
        self.rec["downloads"].append({"what": what, "start": t0, "first": t1, "end": t2,
                                      "bytes": off})
        return h

    def put_update(self, t, h):
        pb = self.pb
        nb = h.n_buffers if t.update.send_buffers else 0
        length = 4 * (h.n_params + nb)
        sha = self.block.sha256(length)
        hdr = pb.UpdateHeader(
            study_id=self.a.study, round=t.round, model_version=t.model_version,
            encoding=pb.ENCODING_FLOAT32, length=length, sha256=sha, n_params=h.n_params,
            n_buffers=nb, count_kind=pb.COUNT_KIND_EXACT, example_count=100,
            mechanism=pb.DP_MECHANISM_NONE)

        def chunks():
            yield pb.UpdateChunk(header=hdr)
            for off, data in self.block.chunks(length):
                yield pb.UpdateChunk(data=pb.DataChunk(offset=off, data=data))

        t0 = time.time()
        r = self.stub.PutUpdate(chunks(), timeout=self.a.timeout)
        t1 = time.time()
        if r.length != length or r.sha256 != sha:
            raise RuntimeError("%s: the receipt names other bytes" % self.name)
        self.rec["upload"] = {"start": t0, "end": t1, "bytes": length}

    def put_eval(self, t):
        pb = self.pb
        t0 = time.time()
        self.stub.PutEval(pb.EvalReport(
            study_id=self.a.study, round=t.round, model_version=t.model_version,
            n_classes=self.classes, bins=self.bins,
            histogram=[0] * (self.classes * 2 * self.bins), loss_sum=0, patients=0),
            timeout=60)
        self.rec["eval"] = {"start": t0, "end": time.time()}

    def run(self):
        pb = self.pb
        self.join()
        last = 0
        while True:
            t = self.stub.NextTask(pb.TaskRequest(study_id=self.a.study, round=last,
                                                  wait_ms=WAIT_MS),
                                   timeout=WAIT_MS / 1000 + 30)
            now = time.time()
            if t.kind == pb.TASK_KIND_WAIT:
                continue
            kind = pb.TaskKind.Name(t.kind)
            self.rec["tasks"].append({"kind": kind, "round": t.round, "at": now})
            if t.kind == pb.TASK_KIND_TRAIN:
                h = self.get_model(t, "train")
                self.put_update(t, h)
            elif t.kind == pb.TASK_KIND_EVAL:
                self.get_model(t, "eval")
                self.put_eval(t)
            elif t.kind == pb.TASK_KIND_DONE:
                self.rec["done"] = now
                return
            else:
                raise RuntimeError("%s: task kind %d" % (self.name, t.kind))
            last = t.round

    def probe(self):
        """Join, then one GetModel of the current model alone (the best case of a download)."""
        pb = self.pb
        self.join()
        st = self.stub.Status(pb.StatusRequest(study_id=self.a.study), timeout=60)
        self.get_model(pb.Task(round=st.round, model_version=st.model_version), "probe")


class UpdateBlock:
    """The update's bytes: one 1 MiB block of small random float32 values, repeated (the last
    chunk a prefix of it), so that no client holds a model-sized buffer. The SHA-256 of each
    length is computed once per process."""

    def __init__(self, seed):
        rng = random.Random(seed)
        self.data = struct.pack("<%df" % (CHUNK // 4),
                                *(rng.gauss(0, 1e-3) for _ in range(CHUNK // 4)))
        self.lock = threading.Lock()
        self.sums = {}

    def chunks(self, length):
        for off in range(0, length, CHUNK):
            n = min(CHUNK, length - off)
            yield off, self.data if n == CHUNK else self.data[:n]

    def sha256(self, length):
        with self.lock:
            if length not in self.sums:
                h = hashlib.sha256()
                for _, d in self.chunks(length):
                    h.update(d)
                self.sums[length] = h.digest()
            return self.sums[length]


def load_stubs(a):
    if a.stubs:
        sys.path.insert(0, os.path.abspath(a.stubs))
    else:
        from grpc_tools import protoc

        out = tempfile.mkdtemp(prefix="fake-hospitals-stubs-")
        proto = os.path.join(REPO, "proto")
        if protoc.main(["protoc", "-I" + proto, "--python_out=" + out,
                        "--grpc_python_out=" + out, os.path.join(proto, "fedlung.proto")]):
            raise RuntimeError("grpc_tools.protoc failed on proto/fedlung.proto")
        sys.path.insert(0, out)
    import fedlung_pb2
    import fedlung_pb2_grpc

    return fedlung_pb2, fedlung_pb2_grpc


def worker(a):
    """Runs the hospitals a.names in threads of this process; prints their records as JSON."""
    pb, pbg = load_stubs(a)
    block = UpdateBlock(a.seed)
    hs = [Hospital(n, a, pb, pbg, block) for n in a.names]
    errors = []

    def go(h):
        try:
            h.probe() if a.probe else h.run()
        except Exception as e:  # report it with the others, not as a traceback per thread
            if isinstance(e, h.grpc.RpcError) and hasattr(e, "code"):
                e = "%s: %s" % (e.code().name, e.details())
            h.rec["error"] = str(e)
            errors.append([time.time(), "%s: %s" % (h.name, e)])
            # the round cannot end without this hospital: end the others' calls too, so that
            # this process exits and the driver stops the server instead of waiting
            for other in hs:
                other.close()

    threads = [threading.Thread(target=go, args=(h,)) for h in hs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in hs:
        h.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"hospitals": [h.rec for h in hs], "errors": errors,
                      "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss": ru.ru_maxrss * 1024}))
    return 1 if errors else 0


# --------------------------------------------------------------------------------------------
# The driver: the server (optional), the probe (optional), the workers, the summary
# --------------------------------------------------------------------------------------------


def die_with_parent():
    """In the server's child, before exec: SIGKILL when this driver dies (prctl
    PR_SET_PDEATHSIG), so that no server outlives a killed test."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


class Server:
    """`fedlung server --config C` as this process's child, its stderr in log; VmHWM sampled."""

    def __init__(self, exe, config, logpath, trace=None):
        self.trace = open(trace, "w") if trace else None
        self.logf = open(logpath, "ab")
        self.logpath = logpath
        self.p = subprocess.Popen([exe, "server", "--config", config], stdout=subprocess.DEVNULL,
                                  stderr=self.logf, preexec_fn=die_with_parent)
        self.stopped = None
        self.hwm, self.rss_max, self.done = 0, 0, False
        self.sampler = threading.Thread(target=self.sample, daemon=True)
        self.sampler.start()
        self.t_start = time.time()

    def sample(self):
        path = "/proc/%d/status" % self.p.pid
        while not self.done:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
                        elif line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) * 1024
                            self.rss_max = max(self.rss_max, rss)
                            if self.trace:
                                self.trace.write("%.3f %d\n" % (time.time(), rss))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    def stop(self, why):
        """Kills the server (once), remembering why."""
        if self.stopped is None and self.p.poll() is None:
            self.stopped = why
            self.p.kill()

    def wait_started(self, limit_s=60):
        end = time.time() + limit_s
        while time.time() < end:
            with open(self.logpath, "rb") as f:
                if b"fedlung server: SERVER_START" in f.read():
                    return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the server did not start: " + self.tail())

    def tail(self, n=5):
        with open(self.logpath, "rb") as f:
            return " | ".join(f.read().decode(errors="replace").strip().splitlines()[-n:])

    def wait(self, limit_s):
        """Waits for the server to exit by itself (killing it after limit_s). Returns
        {exit, vm_hwm, ru_maxrss, wall_s, cpu_s}."""
        end = time.time() + limit_s
        killed = False
        while True:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > end and not killed:
                self.p.kill()
                killed = True
            time.sleep(0.02)
        self.done = True
        self.sampler.join()
        if self.trace:
            self.trace.close()
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.logf.close()
        return {"exit": self.p.returncode, "killed": killed or self.stopped is not None,
                "stopped_because": self.stopped, "vm_hwm": self.hwm,
                "vm_rss_max": self.rss_max, "ru_maxrss": ru.ru_maxrss * 1024,
                "wall_s": time.time() - self.t_start, "cpu_s": ru.ru_utime + ru.ru_stime}


def run_workers(a, names, procs, probe=False, on_failure=None):
    """Starts procs worker processes over names and waits for them; the first worker that
    fails calls on_failure() (which stops the server, so that the others, waiting for a round
    that cannot end, fail too rather than hang). Returns (hospital records, worker stats,
    errors)."""
    groups = [names[i::procs] for i in range(procs)]
    groups = [g for g in groups if g]
    base = [sys.executable, os.path.abspath(__file__), "--worker", "--target", a.target,
            "--study", a.study, "--pki", a.pki, "--plan", a.plan, "--chunk-bytes",
            str(a.chunk_bytes), "--timeout", str(a.timeout), "--seed", str(a.seed)]
    if a.stubs:
        base += ["--stubs", a.stubs]
    if probe:
        base += ["--probe"]
    ps = [subprocess.Popen(base + ["--names", ",".join(g)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for g in groups]
    outs = [None] * len(ps)

    def collect(i):
        outs[i] = ps[i].communicate()
        if ps[i].returncode != 0 and on_failure:
            on_failure()

    ts = [threading.Thread(target=collect, args=(i,)) for i in range(len(ps))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    recs, stats, errors = [], [], []
    for p, (out, err) in zip(ps, outs):
        lines = out.strip().splitlines()
        if not lines:
            errors.append([time.time(), "a worker exited %d without a report: %s" % (
                p.returncode, err.strip()[-500:])])
            continue
        r = json.loads(lines[-1])
        recs += r["hospitals"]
        errors += r["errors"]
        stats.append({"cpu_s": r["cpu_s"], "peak_rss": r["peak_rss"]})
    # the first failure first: the later ones are often its consequences
    return recs, stats, [e for _, e in sorted(errors)]


def span(pairs):
    pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
    if not pairs:
        return None
    return min(p[0] for p in pairs), max(p[1] for p in pairs)


def step(items):
    """The window from the first start to the last end of items ({start, end, bytes}), with
    the bytes moved in it and their rate (GB/s = 1e9 bytes/s)."""
    s = span([(d["start"], d["end"]) for d in items])
    if not s:
        return None
    b = sum(d.get("bytes", 0) for d in items)
    return {"start": s[0], "end": s[1], "s": s[1] - s[0], "bytes": b,
            "GBps": b / max(s[1] - s[0], 1e-9) / 1e9,
            "per_client_s": [d["end"] - d["start"] for d in items]}


def summarize(recs, ev):
    """The round's steps over all hospitals. recs: the hospitals' records (their clocks);
    ev: the server's events {KIND: [times]} (the same clock, ms resolution), or {}.

    A reply that ends a step (the last update's Receipt, the last evaluation's) leaves the
    server only after the step's work (aggregation; the commit), which runs in the call, so
    where the server's events are known the steps end at them:
      download     first GetModel start .. last GetModel end (hospitals)
      upload       first PutUpdate start .. last UPDATE_ACCEPTED (server)
      aggregate    last UPDATE_ACCEPTED .. AGGREGATE (the new global model and its SHA-256)
      eval step    AGGREGATE .. last EVALUATION (the EVAL tasks, the downloads, PutEval)
      commit       last EVALUATION .. ROUND_COMMITTED (model file, state, journal)
      round        ROUND_STARTED .. ROUND_COMMITTED"""
    def task_at(r, kind):
        return next((t["at"] for t in r["tasks"] if t["kind"] == kind), None)

    def last(kind):
        return max(ev[kind]) if ev.get(kind) else None

    def first(kind):
        return min(ev[kind]) if ev.get(kind) else None

    out = {"clients": sum(1 for r in recs if r["tasks"])}  # the probe has no task
    dls = {w: [d for r in recs for d in r["downloads"] if d["what"] == w]
           for w in ("train", "eval", "probe")}
    some = dls["train"] or dls["eval"] or dls["probe"]
    out["model_bytes"] = some[0]["bytes"] if some else 0
    out["download"] = step(dls["train"])
    out["eval_download"] = step(dls["eval"])
    out["probe"] = step(dls["probe"])
    ups = [dict(r["upload"]) for r in recs if "upload" in r]
    accepted = last("UPDATE_ACCEPTED")
    out["upload_client"] = step(ups)  # to the last Receipt, aggregation included
    if ups and accepted:
        out["upload"] = step([{"start": min(u["start"] for u in ups), "end": accepted,
                               "bytes": sum(u["bytes"] for u in ups)}])
    if accepted and first("AGGREGATE"):
        out["aggregate_s"] = first("AGGREGATE") - accepted
    if out.get("upload") and "aggregate_s" in out:
        out["upload_aggregate_s"] = out["upload"]["s"] + out["aggregate_s"]
    if first("AGGREGATE") and last("EVALUATION"):
        out["eval_step_s"] = last("EVALUATION") - first("AGGREGATE")
    if last("EVALUATION") and first("ROUND_COMMITTED"):
        out["commit_s"] = first("ROUND_COMMITTED") - last("EVALUATION")
    if first("MODEL_SAVED") and last("EVALUATION"):
        out["model_save_s"] = first("MODEL_SAVED") - last("EVALUATION")
    if first("ROUND_STARTED") and first("ROUND_COMMITTED"):
        out["round_s"] = first("ROUND_COMMITTED") - first("ROUND_STARTED")
    train_at = [task_at(r, "TASK_KIND_TRAIN") for r in recs]
    done_at = [r.get("done") for r in recs]
    if all(train_at) and all(done_at):
        out["round_clients_s"] = max(done_at) - min(train_at)
    return out


def server_events(logpath):
    """{KIND: [times, s]} of the server's event lines in its stderr
    ("2026-11-26T18:13:51.164Z fedlung server: UPDATE_ACCEPTED hospital-1 ...")."""
    import datetime

    ev = {}
    try:
        lines = open(logpath, errors="replace").read().splitlines()
    except OSError:
        return ev
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[1:3] != ["fedlung", "server:"]:
            continue
        try:
            t = datetime.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            continue
        ev.setdefault(parts[3].split(" ", 1)[0], []).append(t)
    return ev


def driver(a):
    names = a.names
    procs = max(1, min(a.procs, len(names)))
    srv = None
    result = {"target": a.target, "clients": len(names), "procs": procs}
    if a.server:
        srv = Server(os.path.abspath(a.server), a.config, a.server_log, a.rss_trace)
        srv.wait_started()
        # a stuck round must not hang the caller: stop the server at the deadline
        timer = threading.Timer(a.deadline, srv.stop, args=("the %g s deadline passed"
                                                             % a.deadline,))
        timer.daemon = True
        timer.start()
    stop = (lambda: srv.stop("a hospital failed")) if srv else None
    errors, recs, hrecs = [], [], []
    try:
        if a.probe:
            precs, _, perrs = run_workers(a, names[:1], 1, probe=True, on_failure=stop)
            errors += perrs
            recs += precs
        t0 = time.time()
        hrecs, stats, werrs = run_workers(a, names, procs, on_failure=stop)
        recs += hrecs
        errors += werrs
        result["clients_wall_s"] = time.time() - t0
        result["workers"] = stats
    finally:
        if srv:
            result["server"] = srv.wait(a.server_wait)
            timer.cancel()
            if srv.stopped:
                errors.append("the server was killed: %s" % srv.stopped)
            elif srv.p.returncode != 0:
                errors.append("the server exited %d: %s" % (srv.p.returncode, srv.tail()))
    result["summary"] = summarize(recs, server_events(a.server_log) if srv or a.server_log_given
                                  else {})
    if a.records:
        result["hospitals"] = recs
    if any("done" not in r for r in hrecs):
        errors.append("%d of %d hospitals did not reach DONE" % (
            sum("done" not in r for r in hrecs), len(hrecs)))
    result["errors"] = errors
    text = json.dumps(result, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)
    for e in errors:
        log(e)
    return 1 if errors else 0


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="fake_hospitals.py",
        description="Fake hospitals over mTLS against a fedlung server: join, then GetModel / "
        "PutUpdate / PutEval as the tasks say, without training; prints timings and bytes as "
        "JSON.",
        epilog="Exit status: 0 when every hospital reached DONE and the server (if started "
        "here) exited 0; 1 otherwise.")
    ap.add_argument("--target", required=True, help="the server, HOST:PORT")
    ap.add_argument("--study", required=True, help="the study id")
    ap.add_argument("--plan", required=True, help="the plan file (its SHA-256 is approved)")
    ap.add_argument("--pki", required=True,
                    help="folder with ca.crt and NAME.crt / NAME.key for each hospital")
    ap.add_argument("--names", required=True, help="comma-separated hospital names (CNs)")
    ap.add_argument("--procs", type=int, default=1,
                    help="worker processes the hospitals are spread over (default 1)")
    ap.add_argument("--chunk-bytes", type=int, default=0,
                    help="ModelRequest.chunk_bytes (default 0: the server's 1 MiB)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="deadline of each GetModel and PutUpdate call, s (default 600)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the update's values")
    ap.add_argument("--stubs", help="folder with fedlung_pb2.py and fedlung_pb2_grpc.py "
                    "(default: compile proto/fedlung.proto into a temporary folder)")
    ap.add_argument("--probe", action="store_true",
                    help="before the round, the first hospital joins and downloads the model "
                    "alone once (the best case of one GetModel)")
    ap.add_argument("--server", metavar="FEDLUNG",
                    help="start `FEDLUNG server --config CONFIG` first, as a child, and wait for "
                    "it to exit after the study; report its peak memory")
    ap.add_argument("--config", help="the server's configuration (with --server)")
    ap.add_argument("--server-log",
                    help="the server's stderr: where --server appends it (default server.log), "
                    "or the log of a server started elsewhere, read for its event times")
    ap.add_argument("--server-wait", type=float, default=120,
                    help="seconds to wait for the server to exit after the hospitals are done "
                    "(then it is killed; default 120)")
    ap.add_argument("--deadline", type=float, default=600,
                    help="with --server: kill the server if the study has not ended this many "
                    "seconds after it started (default 600)")
    ap.add_argument("--rss-trace", metavar="FILE",
                    help="with --server: write 'time rss_bytes' lines, sampled every 20 ms")
    ap.add_argument("--records", action="store_true",
                    help="include every hospital's raw record in the JSON")
    ap.add_argument("--json", help="also write the JSON to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.names = [n.strip() for n in a.names.split(",") if n.strip()]
    if not a.names:
        ap.error("--names lists no hospital")
    if a.server and not a.config:
        ap.error("--server needs --config")
    a.server_log_given = a.server_log is not None
    if a.server_log is None:
        a.server_log = "server.log"
    with open(a.plan, "rb") as f:
        a.plan_hash = hashlib.sha256(f.read()).digest()
    return a


def main(argv):
    a = parse_args(argv)
    return worker(a) if a.worker else driver(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
