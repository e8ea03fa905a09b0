"""Benchmark 4 of bench.py: an accelerated day with faults.

quantrac-sim serves the demo station's analyzers with the faults of soak-scenario.toml (timeouts,
exceptions, garbage, power cycles, calibration); quantracd polls every 200 ms and builds one file per
1-s interval (each standing for 5 minutes: 288 of them are a day) and delivers them to pyftpdlib.
Every 2 s the daemon's RSS and open descriptors are sampled. Checked at the end: RSS growth from the
end of the first 10 % of the run ≤ 10 %, descriptor count stable, every interval from the first file
to the last built one has a file and the receiver holds each, byte-identical to sent/.
"""

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(BIN, OUT, intervals, RESULTS, row, log, Proc, free_port, wait_until, wait_port, proc_figures, run_dir,
        write_password, FTPReceiver):
    log(f"4. soak: {intervals} one-second intervals (= {intervals * 5 / 60:.1f} h of 5-minute files), simulator faults on")
    d = run_dir("soak")
    recv = FTPReceiver("pyftpdlib", d)
    sim = daemon = None
    try:
        station = d / "station.toml"
        sim = Proc([BIN / "quantrac-sim", "--scenario", HERE / "soak-scenario.toml", "--port", "sim=0", "--station-out", station,
                    "--data-dir", d / "data"], "soak-sim.log", stdout=subprocess.PIPE)
        line = sim.p.stdout.readline().decode().split()
        if len(line) != 3 or line[0] != "READY":
            raise RuntimeError(f"quantrac-sim did not start: {line} {sim.log_text()[-1000:]}")
        text = station.read_text()
        text = re.sub(r'(?m)^record_interval = .*$', 'record_interval = "1s"', text)
        text = re.sub(r'(?m)^poll_interval = .*$', 'poll_interval = "200ms"\nrecord_delay = "1s"', text)
        text = re.sub(r'(?m)^timeout = .*$', 'timeout = "150ms"\nreconnect_max = "1s"', text)
        text = text[:text.index("[[target]]")] if "[[target]]" in text else text
        pw = write_password(d, recv.password)
        text += (f'\n[[target]]\nname = "dept"\nurl = "ftp://127.0.0.1:{recv.port}/in"\nuser = "{recv.user}"\n'
                 f'password_file = "{pw}"\nretry_max = "2s"\n')
        station.write_text(text)

        daemon = Proc([BIN / "quantracd", "--config", station, "--log-level", "notice"], "soak-quantracd.log")
        db = d / "data" / "quantrac.sqlite"
        wait_until("the daemon's database", db.exists, 20)
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < intervals:
            if not daemon.alive():
                raise RuntimeError(f"quantracd exited: {daemon.log_text()[-2000:]}")
            f = proc_figures(daemon.pid)
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_kb": f["rss_kb"], "fds": f["fds"], "cpu": f["cpu"]})
            time.sleep(2)

        def built():
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                return [r[0] for r in con.execute("SELECT name FROM file WHERE product = '5m' ORDER BY interval_end")], \
                       [r[0] for r in con.execute("SELECT interval_end FROM file WHERE product = '5m' ORDER BY interval_end")]
            finally:
                con.close()
        names, _ = built()
        wait_until("the receiver to hold every built file", lambda: set(names) <= set(os.listdir(recv.inbox)), 60, 0.2)
        end_fig = proc_figures(daemon.pid)
        daemon_rc = daemon.stop()
        names, ends = built()
    finally:
        if daemon:
            daemon.stop()
        if sim:
            sim.stop()
        recv.stop()

    gaps = [(a, b) for a, b in zip(ends, ends[1:]) if b - a != 1]
    received = set(os.listdir(recv.inbox))
    missing = [n for n in names if n not in received]
    sent_dir = d / "data" / "sent"
    differ = [n for n in names if n in received and (recv.inbox / n).read_bytes() != (sent_dir / n).read_bytes()]
    faults = 0
    for n in names:
        if n in received:
            faults += b"\t02\r\n" in (recv.inbox / n).read_bytes()
    warm = [s for s in samples if s["t"] >= intervals * 0.1] or samples
    rss_start, rss_end = warm[0]["rss_kb"], end_fig["rss_kb"]
    growth = (rss_end - rss_start) / rss_start
    fds = [s["fds"] for s in warm] + [end_fig["fds"]]
    fd_stable = max(fds) - min(fds) <= 2 and fds[-1] <= fds[0] + 1
    sim_faults = sum(1 for l in sim.log_path.read_text().splitlines() if "start" in l.lower())
    RESULTS["raw"]["soak"] = {"intervals_run_s": intervals, "files": len(names), "gaps": gaps[:10], "missing": missing[:10],
                              "differ": differ[:10], "files_with_02": faults, "rss_kb_start": rss_start, "rss_kb_end": rss_end,
                              "rss_growth": growth, "fds": {"min": min(fds), "max": max(fds), "end": fds[-1]},
                              "daemon_exit": daemon_rc, "simulator_fault_lines": sim_faults, "samples": samples}
    log(f"   soak: {len(names)} files, {len(missing)} missing, {len(gaps)} gaps, {faults} with a 02 line; "
        f"RSS {rss_start / 1024:.1f} → {rss_end / 1024:.1f} MB; fds {min(fds)}–{max(fds)}")
    ok_files = not missing and not gaps and not differ and len(names) >= intervals - 5
    row(f"4. soak {intervals} × 1 s intervals, faults on: RSS MB start → end",
        f"{rss_start / 1024:.1f} → {rss_end / 1024:.1f} ({growth * 100:+.1f}%)", "-", 1 + growth, "growth ≤ 10%", growth <= 0.10)
    row("4. soak: open descriptors (min–max, end)", f"{min(fds)}–{max(fds)}, end {fds[-1]}", "-", None, "stable", fd_stable)
    row("4. soak: files built / at the receiver", f"{len(names)} / {len(names) - len(missing)}, {len(gaps)} gaps, "
        f"{faults} with 02 lines", "-", None, "none missing", ok_files,
        f"{sim_faults} simulator fault events")
