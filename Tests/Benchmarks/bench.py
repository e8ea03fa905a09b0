#!/usr/bin/env python3
"""`make bench`: Quantrac against the peers a station engineer would compare it with, on loopback.

1. acquisition — `quantrac-bench acquisition` (the daemon's poll/decode/status/store path, flat out)
   vs `mbpoll` reading the same 64 holding registers in one process, against a libmodbus C server.
2. footprint — `quantracd` polling 64 channels at 1 Hz vs `collectd` (modbus + csv) polling the same
   registers: CPU seconds, peak RSS, bytes written (/proc/PID/io write_bytes).
3. backlog — 2016 files (7 days of 5-minute files) in the outbox drained by `quantracd` vs
   `lftp mput` and a `curl -T` loop, to pyftpdlib and to vsftpd.
4. soak — 24 simulated hours (288 one-second intervals for 5-minute ones) with faults on: RSS, open
   descriptors, every file delivered.

Every peer is started and stopped here, on 127.0.0.1 only. Environment:
  BENCH_REPEATS    repeats of benchmarks 1 and 3 (default 5)
  BENCH_QUICK=1    a short smoke run (2 repeats, 1-minute footprint, 30-interval soak, 288-file backlog)
  BENCH_ONLY       comma-separated subset: acquisition,footprint,backlog,soak
  QUANTRAC_RELEASE_BIN  folder of the release binaries (default .build/bench-release/release: make bench builds
                   them there with --static-swift-stdlib, as `make deb` ships them)
  BENCH_OUT        output folder (default .build/bench): results.md, results.json, logs
  BENCH_WORK       working folder for data directories and receivers (default /var/tmp/quantrac-bench)
Prints one table (benchmark | Quantrac | peer | ratio | goal | met?) and writes it to BENCH_OUT/results.md.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPEATS = int(os.environ.get("BENCH_REPEATS", "2" if QUICK else "5"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
BIN = Path(os.environ.get("QUANTRAC_RELEASE_BIN", ROOT / ".build" / "bench-release" / "release"))
OUT = Path(os.environ.get("BENCH_OUT", ROOT / ".build" / "bench")).resolve()

ACQ_SECONDS = 3 if QUICK else 5
FOOTPRINT_SECONDS = 60 if QUICK else 600
FOOTPRINT_SLICE = 10 if QUICK else 60
BACKLOG_FILES = 288 if QUICK else 2016
SOAK_INTERVALS = 30 if QUICK else 288
CURL_REPEATS = min(REPEATS, 3)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stations  # noqa: E402  (Tests/Benchmarks/stations.py)


# ---------------------------------------------------------------- helpers

def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout, poll=0.05):
    """Polls `predicate` until true; raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def wait_port(port, timeout=10):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_until(f"127.0.0.1:{port} to accept", up, timeout)


class Proc:
    """A peer or daemon in its own session; stop() sends SIGTERM, then SIGKILL after 5 s."""

    def __init__(self, args, log_name, cwd=None, env=None, stdout=None):
        self.log_path = OUT / "logs" / log_name
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.log_path, "wb")
        self.p = subprocess.Popen([str(a) for a in args], stdout=stdout or self.log_file, stderr=self.log_file,
                                  cwd=cwd, env=env, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log_file.close()
        return self.p.returncode

    def log_text(self):
        return self.log_path.read_text(errors="replace")


def summary(values):
    """Median, min, max and spread ((max-min)/median) of a list of figures."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "spread": None, "n": 0}
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / med if med else 0.0, "n": len(values)}


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def proc_figures(pid):
    """CPU seconds (user+sys), peak RSS (kB) and write_bytes of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    write_bytes = 0
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                write_bytes = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"cpu": cpu, "hwm_kb": hwm, "rss_kb": rss, "write_bytes": write_bytes, "fds": fds}


def tree_files(root, suffix=".txt"):
    found = []
    for dirpath, _, files in os.walk(root):
        found += [os.path.join(dirpath, f) for f in files if f.endswith(suffix)]
    return found


def ensure_modbus_server():
    exe = OUT / "modbus_server"
    src = ROOT / "Tests" / "Benchmarks" / "peers" / "modbus_server.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libmodbus"], check=True, capture_output=True, text=True).stdout.split()
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)] + flags, check=True)
    return exe


class ModbusServer:
    def __init__(self, name):
        exe = ensure_modbus_server()
        self.proc = Proc([exe, 0], f"{name}-modbus-server.log", stdout=subprocess.PIPE)
        line = self.proc.p.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "READY":
            raise RuntimeError(f"modbus_server did not start: {line}")
        self.port = int(line[1])

    def stop(self):
        self.proc.stop()


# Working folders (data directories, receivers, collectd's CSV) live outside the repository: collectd's csv
# plugin refuses any path with a component starting with a dot (".build"), and /var/tmp is never a tmpfs,
# so write_bytes counts real disk writes for every program alike.
WORK = Path(os.environ.get("BENCH_WORK", "/var/tmp/quantrac-bench"))


def run_dir(name):
    d = WORK / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def write_password(d, password):
    p = d / "password"
    p.write_text(password + "\n")
    p.chmod(0o600)
    return p


RESULTS = {"rows": [], "raw": {}}


def row(benchmark, quantrac, peer, ratio, goal, met, note=""):
    RESULTS["rows"].append({"benchmark": benchmark, "quantrac": quantrac, "peer": peer, "ratio": ratio,
                            "goal": goal, "met": met, "note": note})


# ---------------------------------------------------------------- 1. acquisition

def bench_acquisition():
    log("1. acquisition: quantrac-bench acquisition vs mbpoll, 64 holding registers, libmodbus C server")
    server = ModbusServer("acquisition")
    try:
        q_tps, m_tps, ratios = [], [], []
        mbpoll_rate = 6000.0
        for r in range(REPEATS + 1):  # the first pair is a warm-up
            d = run_dir(f"acquisition-{r}")
            cfg = d / "station.toml"
            cfg.write_text(stations.acquisition_station(d / "data", server.port))
            out = subprocess.run([BIN / "quantrac-bench", "acquisition", "--config", cfg, "--seconds", str(ACQ_SECONDS)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"quantrac-bench acquisition failed: {out.stdout}{out.stderr}")
            q = json.loads(out.stdout.strip().splitlines()[-1])

            # The slave list is one argument: at most 128 KiB (MAX_ARG_STRLEN), so at most 60 000 transactions.
            n = min(60000, max(2000, int(mbpoll_rate * ACQ_SECONDS)))
            out_path = d / "mbpoll.out"
            slaves = ",".join(["1"] * n)
            start = time.perf_counter()
            with open(out_path, "wb") as f:
                rc = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(server.port), "-a", slaves, "-r", "1", "-c", "64",
                                     "-t", "4", "-1", "127.0.0.1"], stdout=f, stderr=subprocess.STDOUT).returncode
            elapsed = time.perf_counter() - start
            done = out_path.read_bytes().count(b"\n[1]:")
            if rc != 0 or done != n:
                raise RuntimeError(f"mbpoll: exit {rc}, {done} of {n} transactions answered (see {out_path})")
            mbpoll_rate = n / elapsed
            if r == 0:
                continue
            q_tps.append(q["tps"])
            m_tps.append(mbpoll_rate)
            ratios.append(q["tps"] / mbpoll_rate)
            log(f"   repeat {r}: quantrac {q['tps']:.0f}/s ({q['channels']} channels, {q['readings_stored']} readings stored), "
                f"mbpoll {mbpoll_rate:.0f}/s, ratio {q['tps'] / mbpoll_rate:.2f}")

        # The same path committing every tick (commit_window = 0): what the window saves.
        d = run_dir("acquisition-window0")
        cfg = d / "station.toml"
        cfg.write_text(stations.acquisition_station(d / "data", server.port))
        out = subprocess.run([BIN / "quantrac-bench", "acquisition", "--config", cfg, "--seconds", "2", "--commit-window-ms", "0"],
                             capture_output=True, text=True)
        w0 = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    finally:
        server.stop()
    qs, ms, rs = summary(q_tps), summary(m_tps), summary(ratios)
    RESULTS["raw"]["acquisition"] = {"quantrac_tps": qs, "mbpoll_tps": ms, "ratio": rs, "commit_every_tick": w0,
                                     "seconds_per_run": ACQ_SECONDS}
    row("1. acquisition, transactions/s (64 registers)",
        f"{fmt(qs['median'], 0)} (±{fmt(qs['spread'] * 100, 0)}%)", f"mbpoll {fmt(ms['median'], 0)} (±{fmt(ms['spread'] * 100, 0)}%)",
        rs["median"], "≥ 0.8× mbpoll", rs["median"] is not None and rs["median"] >= 0.8)
    if w0:
        row("1b. acquisition with commit_window = 0", f"{fmt(w0['tps'], 0)}", "-", None, "(information)", None,
            "one fsync'd commit per tick")


# ---------------------------------------------------------------- 2. footprint

def bench_footprint():
    log(f"2. footprint: quantracd vs collectd, 64 channels at 1 Hz for {FOOTPRINT_SECONDS} s (all at once)")
    server = ModbusServer("footprint")
    procs = {}
    try:
        d = run_dir("footprint")
        for name, window in (("quantracd", "10s"), ("quantracd-window0", "0s")):
            sub = d / name
            sub.mkdir()
            cfg = sub / "station.toml"
            cfg.write_text(stations.footprint_station(sub / "data", server.port, commit_window=window))
            procs[name] = Proc([BIN / "quantracd", "--config", cfg, "--log-level", "notice"], f"footprint-{name}.log")
        cd = d / "collectd"
        cd.mkdir()
        conf = cd / "collectd.conf"
        conf.write_text(stations.collectd_conf(cd, server.port))
        check = subprocess.run(["collectd", "-t", "-C", conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"collectd -t: {check.stdout}{check.stderr}")
        procs["collectd"] = Proc(["collectd", "-f", "-C", conf], "footprint-collectd.log")

        # Settle: every process has polled and stored once.
        wait_until("quantracd's first tick", lambda: (d / "quantracd" / "data" / "quantrac.sqlite").exists(), 20)
        wait_until("collectd's first CSV line", lambda: len(tree_files(cd / "csv", "")) > 0, 20)
        time.sleep(3)
        for name, p in procs.items():
            if not p.alive():
                raise RuntimeError(f"{name} exited early: {p.log_text()[-2000:]}")
        start = {n: proc_figures(p.pid) for n, p in procs.items()}
        slices = {n: [] for n in procs}
        last = dict(start)
        t0 = time.monotonic()
        peak_fds = {n: start[n]["fds"] for n in procs}
        while time.monotonic() - t0 < FOOTPRINT_SECONDS:
            time.sleep(min(FOOTPRINT_SLICE, FOOTPRINT_SECONDS - (time.monotonic() - t0)))
            for n, p in procs.items():
                if not p.alive():
                    raise RuntimeError(f"{n} exited during the run: {p.log_text()[-2000:]}")
                now = proc_figures(p.pid)
                slices[n].append({"cpu": now["cpu"] - last[n]["cpu"], "write_bytes": now["write_bytes"] - last[n]["write_bytes"],
                                  "rss_kb": now["rss_kb"], "hwm_kb": now["hwm_kb"]})
                peak_fds[n] = max(peak_fds[n], now["fds"])
                last[n] = now
        elapsed = time.monotonic() - t0
        end = dict(last)
        csv_bytes = sum(os.path.getsize(f) for f in tree_files(cd / "csv", ""))
        db_bytes = {n: sum(os.path.getsize(f) for f in tree_files(d / n / "data", "")) for n in ("quantracd", "quantracd-window0")}
    finally:
        for p in procs.values():
            p.stop()
        server.stop()

    figures = {}
    for n in procs:
        figures[n] = {
            "cpu_s": end[n]["cpu"] - start[n]["cpu"],
            "peak_rss_mb": end[n]["hwm_kb"] / 1024,
            "write_bytes": end[n]["write_bytes"] - start[n]["write_bytes"],
            "cpu_per_slice": summary([s["cpu"] for s in slices[n]]),
            "write_per_slice": summary([s["write_bytes"] for s in slices[n]]),
            "fds_start": start[n]["fds"], "fds_peak": peak_fds[n],
            "rss_mb_per_slice": [round(s["rss_kb"] / 1024, 1) for s in slices[n]],
        }
    RESULTS["raw"]["footprint"] = {"seconds": elapsed, "slice_seconds": FOOTPRINT_SLICE, "figures": figures,
                                   "collectd_csv_bytes": csv_bytes, "quantrac_data_dir_bytes": db_bytes}
    q, c, w0 = figures["quantracd"], figures["collectd"], figures["quantracd-window0"]
    cpu_ratio = q["cpu_s"] / c["cpu_s"] if c["cpu_s"] else None
    wr_ratio = q["write_bytes"] / c["write_bytes"] if c["write_bytes"] else None
    per = f"per {FOOTPRINT_SLICE} s"
    row(f"2. footprint CPU s ({int(elapsed)} s, 64 ch, 1 Hz)",
        f"{fmt(q['cpu_s'])} ({per}: {fmt(q['cpu_per_slice']['min'])}–{fmt(q['cpu_per_slice']['max'])})",
        f"collectd {fmt(c['cpu_s'])} ({fmt(c['cpu_per_slice']['min'])}–{fmt(c['cpu_per_slice']['max'])})",
        cpu_ratio, "≤ 1.5× collectd", cpu_ratio is not None and cpu_ratio <= 1.5)
    row("2. footprint peak RSS MB", fmt(q["peak_rss_mb"], 1), f"collectd {fmt(c['peak_rss_mb'], 1)}",
        q["peak_rss_mb"] / c["peak_rss_mb"] if c["peak_rss_mb"] else None, "≤ 40 MB", q["peak_rss_mb"] <= 40)
    row("2. footprint bytes written (write_bytes)",
        f"{fmt(q['write_bytes'] / 1024, 0)} KiB (commit_window 10s)",
        f"collectd {fmt(c['write_bytes'] / 1024, 0)} KiB (CSV files {fmt(csv_bytes / 1024, 0)} KiB)",
        wr_ratio, "≤ 2× collectd", wr_ratio is not None and wr_ratio <= 2.0)
    row("2b. bytes written, commit_window = 0", f"{fmt(w0['write_bytes'] / 1024, 0)} KiB", "-",
        w0["write_bytes"] / c["write_bytes"] if c["write_bytes"] else None, "(information)", None, "a commit per tick")


# ---------------------------------------------------------------- 3. backlog

class FTPReceiver:
    """pyftpdlib (user/password) or vsftpd (anonymous upload) on 127.0.0.1, files under root/in/."""

    def __init__(self, kind, d):
        self.kind = kind
        self.port = free_port()
        self.root = d / "ftp-root"
        self.inbox = self.root / "in"
        if kind == "pyftpdlib":
            self.user, self.password = "station", "s3cret"
            self.inbox.mkdir(parents=True)
            self.proc = Proc([sys.executable, "-c", PYFTPD, str(self.port), str(self.root), self.user, self.password],
                             f"backlog-{kind}.log")
        else:
            self.user, self.password = "anonymous", "bench@"
            empty = d / "vsftpd-empty"
            empty.mkdir()
            self.root.mkdir()
            self.root.chmod(0o755)
            self.inbox.mkdir()
            shutil.chown(self.inbox, "ftp", "ftp")
            conf = d / "vsftpd.conf"
            conf.write_text("\n".join([
                "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={self.port}", "background=NO",
                "anonymous_enable=YES", "local_enable=NO", "write_enable=YES", "anon_upload_enable=YES",
                "anon_mkdir_write_enable=YES", "anon_other_write_enable=YES", "anon_umask=022", f"anon_root={self.root}",
                "no_anon_password=YES", f"secure_chroot_dir={empty}", "seccomp_sandbox=NO", "pasv_enable=YES",
                "pasv_address=127.0.0.1", "xferlog_enable=NO",
                "dirmessage_enable=NO", "connect_from_port_20=NO", "max_clients=50", "max_per_ip=50", ""]))
            self.proc = Proc(["/usr/sbin/vsftpd", conf], f"backlog-{kind}.log")
        wait_port(self.port)

    def clear(self):
        for f in os.listdir(self.inbox):
            p = self.inbox / f
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def count(self):
        return len([f for f in os.listdir(self.inbox) if f.endswith(".txt")])

    def stop(self):
        self.proc.stop()


PYFTPD = """
import logging, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.WARNING)
port, root, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elradfmwMT")
handler = FTPHandler
handler.authorizer = auth
handler.passive_ports = None
server = FTPServer(("127.0.0.1", port), handler)
server.serve_forever()
"""


def bench_backlog():
    log(f"3. backlog: {BACKLOG_FILES} files, quantracd vs lftp mput vs a curl -T loop")
    for kind in ("pyftpdlib", "vsftpd"):
        d = run_dir(f"backlog-{kind}")
        recv = FTPReceiver(kind, d)
        try:
            pw = write_password(d, recv.password)
            template = d / "template"
            cfg = d / "fill.toml"
            cfg.write_text(stations.backlog_station(template, recv.port, recv.user, pw))
            fill = subprocess.run([BIN / "quantrac-bench", "backlog", "--config", cfg, "--count", str(BACKLOG_FILES)],
                                  capture_output=True, text=True)
            if fill.returncode != 0:
                raise RuntimeError(f"quantrac-bench backlog: {fill.stdout}{fill.stderr}")
            info = json.loads(fill.stdout.strip().splitlines()[-1])
            log(f"   {kind}: outbox filled with {info['files']} files in {info['build_seconds']:.0f} s")
            files = sorted(tree_files(template / "outbox"))
            assert len(files) == BACKLOG_FILES, len(files)
            times = {"quantracd": [], "quantracd-direct": [], "lftp": [], "curl": []}
            for r in range(REPEATS):
                # Quantrac: the real daemon on a copy of the filled data directory; publish by rename (the
                # default: NAME.part, then RNFR/RNTO) and publish = "direct" (STOR NAME, as lftp's mput does).
                for variant, publish in (("quantracd", "rename"), ("quantracd-direct", "direct")):
                    recv.clear()
                    data = d / f"run-{r}-{publish}"
                    shutil.copytree(template, data)
                    run_cfg = d / f"run-{r}-{publish}.toml"
                    run_cfg.write_text(stations.backlog_station(data, recv.port, recv.user, pw, publish=publish))
                    start = time.perf_counter()
                    daemon = Proc([BIN / "quantracd", "--config", run_cfg, "--log-level", "notice"], f"backlog-{kind}-{variant}-{r}.log")
                    try:
                        wait_until(f"{BACKLOG_FILES} files at {kind}", lambda: recv.count() >= BACKLOG_FILES or not daemon.alive(), 600, 0.02)
                        elapsed = time.perf_counter() - start
                    finally:
                        daemon.stop()
                    if recv.count() < BACKLOG_FILES:
                        raise RuntimeError(f"quantracd delivered {recv.count()} files: {daemon.log_text()[-2000:]}")
                    for sample in files[:: max(1, len(files) // 16)]:
                        if (recv.inbox / os.path.basename(sample)).read_bytes() != Path(sample).read_bytes():
                            raise RuntimeError(f"{sample} differs at the receiver")
                    times[variant].append(elapsed)
                    shutil.rmtree(data)

                # lftp: one connection, mput of every file.
                recv.clear()
                start = time.perf_counter()
                lf = subprocess.run(["lftp", "-c", f"set cmd:fail-exit yes; set ftp:passive-mode yes; "
                                     f"open -u {recv.user},{recv.password} -p {recv.port} 127.0.0.1; cd in; "
                                     f"mput {template}/outbox/*.txt"], capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if lf.returncode != 0 or recv.count() != BACKLOG_FILES:
                    raise RuntimeError(f"lftp: exit {lf.returncode}, {recv.count()} files: {lf.stderr[-2000:]}")
                times["lftp"].append(elapsed)

                # curl: one process (and connection) per file; ~20 ms a file, so at most 3 repeats.
                if r >= CURL_REPEATS:
                    log(f"   {kind} repeat {r + 1}: quantracd {times['quantracd'][-1]:.2f} s (direct {times['quantracd-direct'][-1]:.2f} s), "
                        f"lftp {times['lftp'][-1]:.2f} s")
                    continue
                recv.clear()
                start = time.perf_counter()
                cu = subprocess.run(["bash", "-c", 'for f in "$1"/*.txt; do curl -sS -T "$f" --user "$2" "$3" || exit 1; done',
                                     "curl-loop", f"{template}/outbox", f"{recv.user}:{recv.password}",
                                     f"ftp://127.0.0.1:{recv.port}/in/"], capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if cu.returncode != 0 or recv.count() != BACKLOG_FILES:
                    raise RuntimeError(f"curl loop: exit {cu.returncode}, {recv.count()} files: {cu.stderr[-2000:]}")
                times["curl"].append(elapsed)
                log(f"   {kind} repeat {r + 1}: quantracd {times['quantracd'][-1]:.2f} s (direct {times['quantracd-direct'][-1]:.2f} s), "
                    f"lftp {times['lftp'][-1]:.2f} s, curl loop {times['curl'][-1]:.2f} s")
        finally:
            recv.stop()
        s = {k: summary(v) for k, v in times.items()}
        ratios = summary([l / q for l, q in zip(times["lftp"], times["quantracd"])])
        direct = summary([l / q for l, q in zip(times["lftp"], times["quantracd-direct"])])
        RESULTS["raw"][f"backlog-{kind}"] = {"files": BACKLOG_FILES, "seconds": s, "speed_vs_lftp": ratios,
                                              "speed_vs_lftp_direct": direct, "fill": info}
        row(f"3. backlog {BACKLOG_FILES} files → {kind}, s (publish = \"direct\", lftp's protocol)",
            f"{fmt(s['quantracd-direct']['median'])} (±{fmt(s['quantracd-direct']['spread'] * 100, 0)}%)",
            f"lftp {fmt(s['lftp']['median'])} (±{fmt(s['lftp']['spread'] * 100, 0)}%), curl loop {fmt(s['curl']['median'])}",
            direct["median"], "speed ≥ 1.0× lftp", direct["median"] is not None and direct["median"] >= 1.0)
        row(f"3b. backlog → {kind}, default publish = \"rename\"",
            f"{fmt(s['quantracd']['median'])} (±{fmt(s['quantracd']['spread'] * 100, 0)}%)", f"lftp {fmt(s['lftp']['median'])}",
            ratios["median"], "(information)", None, "RNFR + RNTO: 2 more commands a file")


# ---------------------------------------------------------------- 4. soak

def bench_soak():
    import soak
    soak.run(BIN, OUT, SOAK_INTERVALS, RESULTS, row, log, Proc, free_port, wait_until, wait_port, proc_figures, run_dir,
             write_password, FTPReceiver)


# ---------------------------------------------------------------- machine and table

def machine():
    def cmd(args):
        try:
            return subprocess.run(args, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    cpu = next((l.split(":", 1)[1].strip() for l in cmd(["lscpu"]).splitlines() if l.startswith("Model name")), platform.processor())
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1), "kernel": platform.release(),
            "swift": cmd(["swift", "--version"]).splitlines()[0] if cmd(["swift", "--version"]) else "?",
            "load": open("/proc/loadavg").read().split()[:3]}


def table():
    lines = ["| benchmark | Quantrac | peer | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for r in RESULTS["rows"]:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['benchmark']} | {r['quantrac']} | {r['peer']}{note} | {ratio} | {r['goal']} | {met} |")
    return "\n".join(lines)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for exe in ("quantracd", "quantrac-bench", "quantrac-sim"):
        if not (BIN / exe).exists():
            sys.exit(f"bench: {BIN / exe} is missing; `make bench` builds it")
    RESULTS["machine_start"] = machine()
    started = time.time()
    log(f"machine: {RESULTS['machine_start']}; repeats {REPEATS}{', quick' if QUICK else ''}")
    benches = [("acquisition", bench_acquisition), ("footprint", bench_footprint), ("backlog", bench_backlog), ("soak", bench_soak)]
    failed = []
    for name, fn in benches:
        if ONLY and name not in ONLY:
            continue
        try:
            fn()
        except Exception as e:  # one failing benchmark still leaves the others' figures
            failed.append(name)
            log(f"{name} FAILED: {e}")
            row(name, "FAILED", str(e)[:200], None, "-", False)
    RESULTS["machine_end"] = machine()
    RESULTS["minutes"] = round((time.time() - started) / 60, 1)
    text = table()
    m = RESULTS["machine_start"]
    header = (f"Quantrac benchmarks — {time.strftime('%Y-%m-%d %H:%M')}, {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
              f"Linux {m['kernel']}, {m['swift']}; load {' '.join(m['load'])} → {' '.join(RESULTS['machine_end']['load'])}; "
              f"repeats {REPEATS}{' (quick)' if QUICK else ''}; {RESULTS['minutes']} min")
    (OUT / "results.md").write_text(header + "\n\n" + text + "\n")
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=2, default=str))
    print()
    print(header)
    print()
    print(text)
    print(f"\n(raw figures: {OUT / 'results.json'})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
