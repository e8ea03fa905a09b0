#!/usr/bin/env python3
"""Scripted serial analyzer for Quantrac tests (pyserial), on one end of a pty pair.

Usage:
    serial_analyzer.py --device PATH --protocol line|bayern-hessen [--control FILE]

Line protocol (requests end with CR, optionally followed by LF):
    "RD?"  -> "COD=41.20;TSS=18.52;ST=<status>*<xor8>" CR LF
              <xor8>: two uppercase hex digits, XOR of every byte before them ("C" … "*").
    "PH?"  -> "pH 7.45" CR               (no checksum, CR only)
    other  -> "ERR" CR LF

Bayern-Hessen (requests STX "DA" aaa ETX bcc1 bcc2; a wrong block check is ignored, as analyzers do):
    address 001 -> MD03: 12.34, 5.678, 0.04567 (Thermo-style records: id value ss ff 0000000000)
    address 002 -> MD01: 45.6 (BAM-style record: id value ss ff 001 000000)
    other addresses get no answer.

The control file (JSON, re-read before every answer; missing = defaults) changes behaviour at run time:
    {"mode": "normal" | "garbage" | "silent" | "badcheck" | "partial",
     "line_status": "M",                      # status text of the RD? answer
     "bh_status": {"001": "04"},              # status byte (hex) per address, all its components
     "bh_error": {"002": "01"}}               # error byte (hex) per address
    garbage: noise bytes instead of the answer (with CR LF for the line protocol, so a line arrives);
    silent: no answer; badcheck: wrong checksum / block check; partial: the first half of the answer only.

Prints "READY 0" once the port is open; every request and answer is logged on stderr.
SIGTERM / SIGINT exit at once.
"""

import argparse
import json
import os
import signal
import sys
import time

# Foundation's Process starts children with SIGTERM/SIGINT blocked: unblock first.
signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_now(signum, _frame):
    try:
        sys.stderr.write(f"serial_analyzer: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

import serial  # noqa: E402  (pyserial)

STX, ETX = 0x02, 0x03
NOISE = bytes([0x15, 0xFF, 0x00, 0x7E]) + b"#@!garbage" + bytes([0x80, 0x9F])


def control(path):
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def bh_value(v):
    """Value as +mmmm+ee: mantissa with the decimal point after its first digit."""
    if v == 0:
        return "+0000+00"
    sign = "-" if v < 0 else "+"
    v = abs(v)
    e = 0
    while v >= 10:
        v /= 10
        e += 1
    while v < 1:
        v *= 10
        e -= 1
    m = int(round(v * 1000))
    if m >= 10000:
        m //= 10
        e += 1
    return f"{sign}{m:04d}{'-' if e < 0 else '+'}{abs(e):02d}"


def bcc(data):
    x = 0
    for b in data:
        x ^= b
    return x


def bh_frame(text, bad=False):
    body = bytes([STX]) + text.encode("ascii") + bytes([ETX])
    check = bcc(body) ^ (0x5A if bad else 0)
    return body + f"{check:02X}".encode("ascii")


def bh_answer(address, ctl):
    analyzers = {
        "001": [("001", 12.34), ("002", 5.678), ("003", 0.04567)],
        "002": [("001", 45.6)],
    }
    if address not in analyzers:
        return None
    status = ctl.get("bh_status", {}).get(address, "00")
    error = ctl.get("bh_error", {}).get(address, "00")
    parts = [f"MD{len(analyzers[address]):02d}"]
    for ident, value in analyzers[address]:
        extra = "0000000000" if address == "001" else "001 000000"
        parts.append(f"{ident} {bh_value(value)} {status} {error} {extra}")
    return bh_frame(" ".join(parts) + " ", bad=ctl.get("mode") == "badcheck")


def line_answer(request, ctl):
    if request == b"RD?":
        body = f"COD=41.20;TSS=18.52;ST={ctl.get('line_status', 'M')}*".encode("ascii")
        check = bcc(body) ^ (0x5A if ctl.get("mode") == "badcheck" else 0)
        return body + f"{check:02X}".encode("ascii") + b"\r\n"
    if request == b"PH?":
        return b"pH 7.45\r"
    return b"ERR\r\n"


def log(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def answer(port, reply, ctl, protocol):
    mode = ctl.get("mode", "normal")
    if reply is None or mode == "silent":
        log("  (no answer)")
        return
    if mode == "garbage":
        reply = NOISE + (b"\r\n" if protocol == "line" else b"")
    elif mode == "partial":
        reply = reply[: max(1, len(reply) // 2)]
    log(f"  -> {reply!r}")
    port.write(reply)
    port.flush()


def serve_line(port, control_path):
    buf = b""
    while True:
        chunk = port.read(64)
        if not chunk:
            continue
        buf += chunk
        while b"\r" in buf:
            line, _, rest = buf.partition(b"\r")
            if not rest:
                # Give a following LF a moment to arrive, then drop it with the request.
                time.sleep(0.01)
                rest = port.read(port.in_waiting or 0)
            buf = rest[1:] if rest.startswith(b"\n") else rest
            line = line.lstrip(b"\n")
            log(f"<- {line!r}")
            ctl = control(control_path)
            answer(port, line_answer(line, ctl), ctl, "line")


def serve_bayern_hessen(port, control_path):
    buf = b""
    while True:
        chunk = port.read(64)
        if not chunk:
            continue
        buf += chunk
        while True:
            start = buf.find(bytes([STX]))
            if start < 0:
                buf = b""
                break
            end = buf.find(bytes([ETX]), start)
            if end < 0 or len(buf) < end + 3:
                buf = buf[start:]
                break
            frame, buf = buf[start:end + 3], buf[end + 3:]
            log(f"<- {frame!r}")
            if frame[-2:] != f"{bcc(frame[:-2]):02X}".encode("ascii"):
                log("  bad block check, ignored")
                continue
            text = frame[1:-3].decode("ascii", "replace")
            if not text.startswith("DA"):
                log("  not a DA request, ignored")
                continue
            ctl = control(control_path)
            answer(port, bh_answer(text[2:].strip().zfill(3), ctl), ctl, "bayern-hessen")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", required=True)
    parser.add_argument("--protocol", choices=["line", "bayern-hessen"], required=True)
    parser.add_argument("--control")
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    port = serial.Serial(args.device, baudrate=args.baud, bytesize=8, parity="N", stopbits=1, timeout=0.05)
    sys.stdout.write("READY 0\n")
    sys.stdout.flush()
    if args.protocol == "line":
        serve_line(port, args.control)
    else:
        serve_bayern_hessen(port, args.control)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"serial_analyzer: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
